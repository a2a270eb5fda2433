// Run configs: presets, overrides on top of them, a round trip through JSON, and every kind of
// bad input as one clear error naming the key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "apps/config.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {
namespace {

std::string error_of(std::string_view text, std::string_view budget = "") {
  try {
    parse_run_config(text, "run.json", budget);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RunConfig, PresetsAreValidAndOrderedBySize) {
  for (const auto& b : budget_names()) {
    const RunConfig c = budget_preset(b);
    EXPECT_NO_THROW(validate(c, b)) << b;
    EXPECT_EQ(c.budget, b);
    EXPECT_GE(c.spaces.size(), 3u) << b;
  }
  EXPECT_LT(budget_preset("smoke").training.epochs, budget_preset("quick").training.epochs);
  EXPECT_LT(budget_preset("quick").search.grid_to, budget_preset("paper").search.grid_to);
  EXPECT_EQ(budget_preset("quick").format_list().size(), 184u);
  EXPECT_GE(budget_preset("quick").eval.images, 2000);
  EXPECT_LE(budget_preset("quick").candidates.max_flops, 1e7);
  EXPECT_LE(budget_preset("quick").calibration.models, 50);
  EXPECT_THROW(budget_preset("huge"), Error);
}

TEST(RunConfig, FileOverridesItsPreset) {
  const RunConfig c = parse_run_config(R"({
    "budget": "smoke",
    "dataset": "synthetic:train=500,test=200",
    "spaces": ["plain", "densenet"],
    "training": {"epochs": 2, "lr": 0.1, "train_images": 1e3},
    "constraints": [{"max_weight_bytes": 1000}, {"name": "fast", "max_weight_bytes": 5000,
                     "max_latency_ms": 0.5}],
    "formats": "half,4:3,float",
    "seeds": {"train": 18446744073709551615}
  })",
                                       "run.json");
  EXPECT_EQ(c.budget, "smoke");
  EXPECT_EQ(c.dataset, "synthetic:train=500,test=200");
  EXPECT_EQ(c.spaces, (std::vector<std::string>{"plain", "densenet"}));
  EXPECT_EQ(c.training.epochs, 2);
  EXPECT_EQ(c.training.lr, 0.1);
  EXPECT_EQ(c.training.train_images, 1000);
  EXPECT_EQ(c.training.batch, budget_preset("smoke").training.batch);  // kept from the preset
  EXPECT_EQ(c.eval.images, budget_preset("smoke").eval.images);
  ASSERT_EQ(c.constraints.size(), 2u);
  EXPECT_EQ(c.constraints[0].name, "c1");
  EXPECT_FALSE(c.constraints[0].max_latency_ms);
  EXPECT_EQ(c.constraints[1].name, "fast");
  EXPECT_EQ(c.constraints[1].max_latency_ms, 0.5);
  EXPECT_EQ(c.format_list().size(), 3u);
  EXPECT_EQ(c.seeds.train, 18446744073709551615ull);
  // The command line's budget wins over the file's.
  EXPECT_EQ(parse_run_config(R"({"budget": "smoke"})", "x", "paper").budget, "paper");
  EXPECT_EQ(parse_run_config("{}", "x").budget, "quick");
}

TEST(RunConfig, RoundTripsThroughJson) {
  RunConfig c = budget_preset("quick");
  c.constraints.push_back({"tight", 123, 0.25});
  c.seeds.select = 99;
  c.training.nesterov = false;
  c.candidates.per_constraint = 2;
  c.candidates.references = {"ref:plain-1k", "ref:plain-14k"};
  const std::string text = run_config_to_json(c).dump();
  const RunConfig back = parse_run_config(text, "round-trip");
  EXPECT_EQ(run_config_to_json(back), run_config_to_json(c));
  // The recipe is a stable part of a training run's key.
  EXPECT_EQ(recipe_json(back).dump(), recipe_json(c).dump());
}

TEST(RunConfig, BadInputIsOneClearErrorNamingTheKey) {
  struct Case {
    const char* text;
    const char* needle;
  };
  const Case cases[] = {
      {"{", "not valid JSON"},
      {"[]", "JSON object"},
      {R"({"datset": "mnist"})", "unknown key \"datset\""},
      {R"({"training": {"epoch": 3}})", "unknown key \"training.epoch\""},
      {R"({"training": {"epochs": "3"}})", "\"training.epochs\" must be an integer"},
      {R"({"training": {"epochs": 0}})", "training.epochs"},
      {R"({"training": {"epochs": 2.5}})", "must be an integer"},
      {R"({"budget": "huge"})", "unknown budget 'huge'"},
      {R"({"dataset": "imagenet"})", "imagenet"},
      {R"({"spaces": []})", "spaces"},
      {R"({"spaces": ["plain", "plain"]})", "twice"},
      {R"({"spaces": ["vgg"]})", "vgg"},
      {R"({"formats": "9:3"})", "formats"},
      {R"({"search": {"grid_from": 3000}})", "powers of ten"},
      {R"({"search": {"grid_from": 1e5, "grid_to": 1e3}})", "powers of ten"},
      {R"({"calibration": {"models": 51}})", "calibration.models"},
      {R"({"candidates": {"per_constraint": -1}})", "candidates.per_constraint"},
      {R"({"candidates": {"references": ["ref:nope"]}})", "candidates.references"},
      {R"({"candidates": {"references": "ref:plain-1k"}})", "candidates.references"},
      {R"({"constraints": {"max_weight_bytes": 1}})", "array"},
      {R"({"constraints": [{"max_weight_bytes": 0}]})", "max_weight_bytes must be a positive"},
      {R"({"constraints": [{"max_weight_bytes": 10, "max_latency_ms": -1}]})", "max_latency_ms"},
      {R"({"constraints": [{"max_weight_bytes": 10, "limit": 3}]})", "constraints[0].limit"},
      {R"({"constraints": [{"name": "a", "max_weight_bytes": 1},
                           {"name": "a", "max_weight_bytes": 2}]})",
       "named 'a'"},
      {R"({"seeds": {"train": -1}})", "non-negative"},
      {R"({"format": "iotnas-run/2"})", "iotnas-run/1"},
      {R"({"backend": "tpu"})", "backend"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of(c.text);
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.text << " -> '" << e << "'";
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    if (!e.empty()) {
      EXPECT_EQ(e.rfind("run.json", 0), 0u) << e;
    }
  }
  EXPECT_NE(error_of("{}", "tiny").find("unknown budget"), std::string::npos);
  EXPECT_THROW(load_run_config("/nonexistent/run.json"), Error);
}

// Every size of a run config has the range of the flag that sets it elsewhere: past it the config
// is refused up front (a search.n_val of 2e9 used to abort inside an OpenMP region on bad_alloc;
// 1e12 images used to mean "all of them").
TEST(RunConfig, EverySizeHasTheRangeOfItsFlag) {
  struct Case {
    const char* text;
    const char* needle;
  };
  const Case cases[] = {
      {R"({"search": {"n_val": 2000000000}})", "\"search.n_val\" must be in [1, 1000000]"},
      {R"({"search": {"n_val": 1000001}})", "search.n_val"},
      {R"({"search": {"n_val": 1000000, "clusters": 11}})", "n_val x clusters"},
      {R"({"search": {"n_init": 100001}})", "\"search.n_init\" must be in [2, 100000]"},
      {R"({"search": {"n_steps": 10000001}})", "search.n_steps"},
      {R"({"search": {"n_eval": 100001}})", "search.n_eval"},
      {R"({"search": {"n_rescore": 1}})", "search.n_rescore"},
      {R"({"search": {"n_rescore": 100001}})", "search.n_rescore"},
      {R"({"search": {"n_init": 3, "clusters": 2}})", "tournament"},
      {R"({"calibration": {"repeats": 100001}})", "calibration.repeats"},
      {R"({"calibration": {"rounds": 101}})", "calibration.rounds"},
      {R"({"training": {"epochs": 10001}})", "training.epochs"},
      {R"({"training": {"batch": 65537}})", "training.batch"},
      {R"({"training": {"lr": 11}})", "training.lr"},
      {R"({"training": {"weight_decay": 1}})", "training.weight_decay"},
      {R"({"training": {"epochs": 2000, "warmup_epochs": 1001}})", "training.warmup_epochs"},
      {R"({"training": {"train_images": 1e12}})",
       "\"training.train_images\" must be in [0, 2147483647]"},
      {R"({"eval": {"images": 1e12}})", "\"eval.images\" must be in [0, 2147483647]"},
      {R"({"eval": {"batch": 65537}})", "eval.batch"},
      {R"({"seeds": {"train": 18446744073709551616}})", "seeds.train"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of(c.text);
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.text << " -> '" << e << "'";
    EXPECT_EQ(e.rfind("run.json: ", 0), 0u) << e;
  }
  // The largest values are accepted.
  EXPECT_EQ(error_of(R"({"search": {"n_val": 1000000, "clusters": 10},
                         "training": {"train_images": 2147483647}, "eval": {"images": 0}})"),
            "");
}

// A reference model for another dataset is refused up front, naming the model, its class count
// and the dataset's (it used to be accepted and reported as a diverged training).
TEST(RunConfig, ReferenceModelsMustFitTheDataset) {
  const auto dir = std::filesystem::temp_directory_path() / "iotnas_config_test_refs";
  std::filesystem::create_directories(dir);
  const std::string five = (dir / "five.json").string();
  std::ofstream(five) << R"({"format": "iotnas-model/1", "name": "five", "input": [1, 28, 28],
    "layers": [{"name": "gap", "op": "global_avg_pool"}, {"name": "fc", "op": "dense", "units": 5}]})";
  const std::string big = (dir / "big.json").string();
  std::ofstream(big) << R"({"format": "iotnas-model/1", "name": "big", "input": [3, 32, 32],
    "layers": [{"name": "gap", "op": "global_avg_pool"}, {"name": "fc", "op": "dense", "units": 10}]})";
  std::string e = error_of(R"({"candidates": {"references": [")" + five + R"("]}})");
  for (const std::string& part : {std::string("candidates.references"), five,
                                  std::string("5 classes"), std::string("'fashion-mnist' has 10")})
    EXPECT_NE(e.find(part), std::string::npos) << e;
  e = error_of(R"({"candidates": {"references": [")" + big + R"("]}})");
  EXPECT_NE(e.find("takes input [3, 32, 32]"), std::string::npos) << e;
  // ref: models are built for the dataset, and a fitting file is accepted.
  EXPECT_EQ(error_of(R"({"dataset": "synthetic:classes=5",
                         "candidates": {"references": ["ref:plain-1k", ")" +
                     five + R"("]}})"),
            "");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace iotnas::apps
