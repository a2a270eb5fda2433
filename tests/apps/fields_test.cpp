// Field tables (engine/util/fields.hpp) and the command-line adapter (apps/cli_fields.hpp): strict
// JSON reading, writing, ranges and choices, nested members; the run config's tables write the
// same documents and keys as the hand-written code they replaced.
#include <gtest/gtest.h>

#include "apps/cli_fields.hpp"
#include "apps/config.hpp"
#include "calib/calibrate.hpp"
#include "engine/util/fields.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {
namespace {

using nlohmann::json;

struct Inner {
  double rate = 0.125;
};

struct Sample {
  int count = 3;
  int64_t big = 0;
  uint64_t seed = 1;
  double ratio = 0.25;
  bool on = true;
  std::string mode = "a";
  std::vector<std::string> names;
  Inner inner;
};

const std::vector<fields::Field<Sample>> kSampleFields = {
    {.key = "count",
     .ref = fields::at<&Sample::count>,
     .help = "How many",
     .min = 1,
     .max = 1000,
     .flag = "--count"},
    {.key = "big", .ref = fields::at<&Sample::big>, .help = "Big", .min = 0},
    {.key = "seed", .ref = fields::at<&Sample::seed>, .help = "Seed", .flag = "--seed"},
    {.key = "ratio",
     .ref = fields::at<&Sample::ratio>,
     .help = "Ratio",
     .min = 0,
     .max = 1,
     .max_open = true},
    {.key = "on", .ref = fields::at<&Sample::on>, .help = "Switch", .flag = "--on,!--off"},
    {.key = "mode",
     .ref = fields::at<&Sample::mode>,
     .help = "Mode",
     .choices = {"a", "b", "c"},
     .flag = "--mode"},
    {.key = "names", .ref = fields::at<&Sample::names>, .help = "Names"},
    {.key = "rate",
     .ref = fields::at<&Sample::inner, &Inner::rate>,
     .help = "Nested",
     .min = 0,
     .also = [](const Sample& s) { return s.inner.rate <= s.ratio; },
     .rule = "must be in [0, ratio]"},
};

Sample read_sample(const std::string& text) {
  Sample s;
  const json j = json::parse(text);
  fields::Reader r(j, "sample", "s.json");
  fields::read<Sample>(r, kSampleFields, s);
  r.finish();
  return s;
}

std::string read_error(const std::string& text) {
  try {
    read_sample(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string range_error(const Sample& s) {
  try {
    fields::validate<Sample>(kSampleFields, s, "s.json", "sample");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Fields, ReadAndWriteEveryTypeIncludingNestedMembers) {
  const Sample s = read_sample(
      R"({"count": 1e2, "big": 9000000000, "seed": 18446744073709551615, "ratio": 0.5,
          "on": false, "mode": "b", "names": ["x", "y"], "rate": 0.125})");
  EXPECT_EQ(s.count, 100);
  EXPECT_EQ(s.big, 9000000000);
  EXPECT_EQ(s.seed, 18446744073709551615ull);
  EXPECT_EQ(s.ratio, 0.5);
  EXPECT_FALSE(s.on);
  EXPECT_EQ(s.mode, "b");
  EXPECT_EQ(s.names, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(s.inner.rate, 0.125);
  const json j = fields::to_json<Sample>(kSampleFields, s);
  EXPECT_EQ(j.dump(), R"({"big":9000000000,"count":100,"mode":"b","names":["x","y"],"on":false,)"
                      R"("rate":0.125,"ratio":0.5,"seed":18446744073709551615})");
  EXPECT_TRUE(j["count"].is_number_integer());
  EXPECT_TRUE(j["seed"].is_number_unsigned());
  const Sample back = read_sample(j.dump());
  EXPECT_EQ(fields::to_json<Sample>(kSampleFields, back), j);
  // Absent keys keep their values.
  EXPECT_EQ(read_sample("{}").count, 3);
}

TEST(Fields, StrictReadingNamesTheSourceAndTheKey) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {R"({"count": "3"})", R"(s.json: "sample.count" must be an integer)"},
      {R"({"count": 2.5})", R"(s.json: "sample.count" must be an integer)"},
      {R"({"count": 1e11})", R"(s.json: "sample.count" must be an integer of at most 10 digits)"},
      {R"({"seed": -1})", R"(s.json: "sample.seed" must be a non-negative integer)"},
      {R"({"ratio": true})", R"(s.json: "sample.ratio" must be a number)"},
      {R"({"on": 1})", R"(s.json: "sample.on" must be true or false)"},
      {R"({"mode": 1})", R"(s.json: "sample.mode" must be a string)"},
      {R"({"names": "x"})", R"(s.json: "sample.names" must be an array of strings)"},
      {R"({"names": [1]})", R"(s.json: "sample.names" must be an array of strings)"},
      {R"({"cont": 1})",
       R"(s.json: unknown key "sample.cont"; known keys here: big, count, mode, names, on, rate, )"
       R"(ratio, seed)"},
      {"[]", R"(s.json: "sample" must be a JSON object)"},
  };
  for (const Case& c : cases) EXPECT_EQ(read_error(c.text), c.error) << c.text;
}

TEST(Fields, RangesChoicesAndRulesBetweenFields) {
  Sample s;
  EXPECT_EQ(range_error(s), "");
  s.count = 0;
  EXPECT_EQ(range_error(s), R"(s.json: "sample.count" must be in [1, 1000])");
  s.count = 1000;
  EXPECT_EQ(range_error(s), "");
  s.big = -1;
  EXPECT_EQ(range_error(s), R"(s.json: "sample.big" must be >= 0)");
  s.big = 0;
  s.ratio = 1;
  EXPECT_EQ(range_error(s), R"(s.json: "sample.ratio" must be in [0, 1))");
  s.ratio = NAN;
  EXPECT_EQ(range_error(s), R"(s.json: "sample.ratio" must be in [0, 1))");
  s.ratio = 0.25;
  s.mode = "d";
  EXPECT_EQ(range_error(s), R"(s.json: "sample.mode" must be a, b or c)");
  s.mode = "c";
  s.inner.rate = 0.3;  // above ratio: the rule between fields
  EXPECT_EQ(range_error(s), R"(s.json: "sample.rate" must be in [0, ratio])");
  s.inner.rate = -1;
  EXPECT_EQ(range_error(s), R"(s.json: "sample.rate" must be in [0, ratio])");
}

TEST(Fields, CommandLineOptionsComeFromTheTable) {
  Sample s;
  CLI::App app("test");
  const auto opts = add_field_options<Sample>(app, kSampleFields, s);
  EXPECT_EQ(opts.size(), 4u);  // count, seed, on, mode have flags
  EXPECT_TRUE(opts.count("--on,!--off"));
  const std::string help = app.help();
  EXPECT_NE(help.find("How many"), std::string::npos) << help;
  EXPECT_NE(help.find("--count"), std::string::npos) << help;
  EXPECT_EQ(help.find("--big"), std::string::npos) << help;
  app.parse("--count 9 --seed 7 --off --mode b", false);
  EXPECT_EQ(s.count, 9);
  EXPECT_EQ(s.seed, 7u);
  EXPECT_FALSE(s.on);
  EXPECT_EQ(s.mode, "b");
  EXPECT_EQ(s.ratio, 0.25);  // no flag: untouched
}

// The run config's JSON as the hand-written code wrote it before the field tables.
json legacy_run_config_json(const RunConfig& c) {
  json j;
  j["format"] = kRunConfigFormat;
  j["budget"] = c.budget;
  j["dataset"] = c.dataset;
  j["spaces"] = c.spaces;
  j["search"] = {{"metric", c.search.metric},        {"grid_from", c.search.grid_from},
                 {"grid_to", c.search.grid_to},      {"n_init", c.search.ga.n_init},
                 {"n_steps", c.search.ga.n_steps},   {"n_eval", c.search.ga.n_eval},
                 {"clusters", c.search.ga.clusters}, {"n_rescore", c.search.ga.n_rescore},
                 {"n_val", c.search.n_val}};
  j["candidates"] = {{"per_window", c.candidates.per_window},
                     {"max_flops", c.candidates.max_flops},
                     {"max_models", c.candidates.max_models},
                     {"per_constraint", c.candidates.per_constraint},
                     {"references", c.candidates.references}};
  j["calibration"] = {{"profile", c.calibration.profile},
                      {"models", c.calibration.models},
                      {"repeats", c.calibration.repeats},
                      {"rounds", c.calibration.rounds},
                      {"threads", c.calibration.threads}};
  const TrainRecipe& t = c.training;
  j["training"] = {{"epochs", t.epochs},
                   {"batch", t.batch},
                   {"optimizer", t.optimizer},
                   {"lr", t.lr},
                   {"momentum", t.momentum},
                   {"nesterov", t.nesterov},
                   {"weight_decay", t.weight_decay},
                   {"schedule", t.schedule},
                   {"warmup_epochs", t.warmup_epochs},
                   {"augment", t.augment},
                   {"train_images", t.train_images}};
  j["formats"] = c.formats;
  j["tolerance"] = c.tolerance;
  j["eval"] = {{"images", c.eval.images}, {"batch", c.eval.batch}};
  j["constraints"] = json::array();
  for (const Constraint& k : c.constraints) {
    json o = {{"name", k.name}, {"max_weight_bytes", k.max_weight_bytes}};
    if (k.max_latency_ms) o["max_latency_ms"] = *k.max_latency_ms;
    j["constraints"].push_back(o);
  }
  j["seeds"] = {{"search", c.seeds.search},
                {"select", c.seeds.select},
                {"train", c.seeds.train},
                {"calibrate", c.seeds.calibrate}};
  j["backend"] = c.backend;
  j["threads"] = c.threads;
  return j;
}

TEST(Fields, RunConfigWritesTheSameDocumentAndKeysAsBefore) {
  for (const auto& b : budget_names()) {
    RunConfig c = budget_preset(b);
    EXPECT_EQ(run_config_to_json(c).dump(), legacy_run_config_json(c).dump()) << b;
    c.constraints.push_back({"x", 100, 0.5});
    c.seeds.train = 18446744073709551615ull;
    c.training.train_images = 2000;
    EXPECT_EQ(run_config_to_json(c).dump(), legacy_run_config_json(c).dump()) << b;
    EXPECT_EQ(recipe_json(c).dump(), legacy_run_config_json(c)["training"].dump()) << b;
  }
  // The recipe is part of every training run's key: its text is frozen.
  EXPECT_EQ(recipe_json(budget_preset("quick")).dump(),
            R"({"augment":"auto","batch":128,"epochs":3,"lr":0.05,"momentum":0.9,)"
            R"("nesterov":true,"optimizer":"sgd","schedule":"cosine","train_images":0,)"
            R"("warmup_epochs":0.0,"weight_decay":0.0005})");
}

TEST(Fields, MeasureFieldsRangesAreTheMeasureConfigChecks) {
  const auto checks = [](const calib::MeasureConfig& m) {
    bool table = true, library = true;
    try {
      fields::validate(calib::measure_fields(), m, "x", "");
    } catch (const Error&) {
      table = false;
    }
    try {
      calib::check_measure_config(m);
    } catch (const Error&) {
      library = false;
    }
    return std::pair(table, library);
  };
  calib::MeasureConfig m;
  EXPECT_EQ(checks(m), std::pair(true, true));
  for (auto change : std::vector<std::function<void(calib::MeasureConfig&)>>{
           [](auto& c) { c.threads = 0; }, [](auto& c) { c.threads = 1025; },
           [](auto& c) { c.repeats = 0; }, [](auto& c) { c.warmup = -1; },
           [](auto& c) { c.warmup_ms = 60001; }, [](auto& c) { c.noise_threshold = 0; },
           [](auto& c) { c.max_attempts = 101; }}) {
    calib::MeasureConfig bad;
    change(bad);
    EXPECT_EQ(checks(bad), std::pair(false, false));
  }
}

}  // namespace
}  // namespace iotnas::apps
