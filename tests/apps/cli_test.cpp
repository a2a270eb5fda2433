// The `iotnas` binary on bad input: each case exits non-zero (2 for a usage error, 1 for bad
// data or files) with one "iotnas: error: ..." line on stderr and nothing on stdout, and leaves
// no partial output file. Also what scripts rely on: `spec --list` and `train --json`.
// The binary is the one CMake built (IOTNAS_BINARY); runs use small synthetic datasets.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "calib/profile.hpp"
#include "engine/graph.hpp"
#include "engine/reference_models.hpp"
#include "test_util.hpp"

namespace iotnas {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

struct Result {
  int status = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};

// Runs `iotnas ARGS` through the shell with stdout and stderr captured apart and stdin from
// /dev/null (or `stdin_path`).
Result iotnas(const std::string& args, const std::string& stdin_path = "/dev/null") {
  static TempDir dir;
  static int counter = 0;
  const std::string out = dir / ("out" + std::to_string(counter));
  const std::string err = dir / ("err" + std::to_string(counter++));
  const std::string cmd = std::string("OMP_NUM_THREADS=2 '") + IOTNAS_BINARY + "' " + args + " <'" +
                          stdin_path + "' >'" + out + "' 2>'" + err + "'";
  const int raw = std::system(cmd.c_str());
  Result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) v.push_back(l);
  return v;
}

// A failed run: `status`, stdout empty, and stderr ending in one "iotnas: error: " line that
// contains every string in `want`. With `progress`, plain progress lines ("loading ...") may come
// before it (errors found while reading data); without, the error must be the only line (bad
// flags and values are caught before anything is loaded).
void expect_error(const Result& r, int status, std::initializer_list<const char*> want,
                  bool progress = false) {
  EXPECT_EQ(r.status, status) << "stderr: " << r.err;
  EXPECT_EQ(r.out, "") << "stdout should be empty on an error";
  const auto l = lines(r.err);
  ASSERT_FALSE(l.empty()) << "no error message";
  if (!progress) {
    EXPECT_EQ(l.size(), 1u) << "stderr should be one line, got:\n" << r.err;
  }
  for (size_t i = 0; i + 1 < l.size(); ++i) {
    EXPECT_EQ(l[i].find("error"), std::string::npos) << "error before the last line: " << r.err;
  }
  const std::string& last = l.back();
  EXPECT_EQ(last.rfind("iotnas: error: ", 0), 0u) << last;
  for (const char* w : want) {
    EXPECT_NE(last.find(w), std::string::npos) << "stderr lacks \"" << w << "\": " << last;
  }
}

// Tiny, fast data for runs that get as far as training.
const char* kSynthetic = "synthetic:shape=1x12x12,classes=3,train=96,test=32,seed=1";

// A small valid spec for kSynthetic's images, as JSON text.
std::string small_spec_json() {
  return R"({"format": "iotnas-model/1", "name": "small", "input": [1, 12, 12], "layers": [
    {"name": "c1", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
    {"name": "r1", "op": "relu"},
    {"name": "p1", "op": "max_pool", "kernel": 2},
    {"name": "gap", "op": "global_avg_pool"},
    {"name": "fc", "op": "dense", "units": 3}]})";
}

TEST(Cli, UsageErrorsExitTwo) {
  // CLI11 does not name the word it did not expect here, only that a subcommand is missing.
  expect_error(iotnas("frobnicate"), 2, {"subcommand"});
  expect_error(iotnas(""), 2, {"subcommand"});
  expect_error(iotnas("train --model ref:plain-1k --data synthetic --bogus-flag"), 2,
               {"--bogus-flag"});
  expect_error(iotnas("train --data synthetic"), 2, {"--model"});
  expect_error(iotnas("train --model ref:plain-1k"), 2, {"--data"});
  expect_error(iotnas("train --model ref:plain-1k --data synthetic --epochs two"), 2, {"--epochs"});
  expect_error(iotnas("train --model ref:plain-1k --data synthetic --augment maybe"), 2,
               {"--augment"});
  expect_error(iotnas("eval --data synthetic"), 2, {"--model"});
}

TEST(Cli, HelpGoesToStdoutAndExitsZero) {
  for (const char* cmd : {"--help", "train --help", "eval --help", "spec --help", "info --help",
                          "quant round --help"}) {
    SCOPED_TRACE(cmd);
    const Result r = iotnas(cmd);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
}

TEST(Cli, BadSpecFiles) {
  TempDir dir;
  expect_error(iotnas("spec '" + dir / "missing.json" + "'"), 1, {"missing.json"});
  expect_error(iotnas("train --model '" + dir / "missing.json" + "' --data " + kSynthetic), 1,
               {"missing.json"});

  write_file(dir / "broken.json", R"({"input": [1, 12, 12], "layers": [{"name": )");
  expect_error(iotnas("spec '" + dir / "broken.json" + "'"), 1, {"broken.json", "JSON"});
  expect_error(iotnas("train --model '" + dir / "broken.json" + "' --data " + kSynthetic), 1,
               {"broken.json", "JSON"});

  write_file(dir / "cycle.json", R"({"input": [1, 12, 12], "layers": [
      {"name": "a", "op": "relu", "in": "b"},
      {"name": "b", "op": "relu", "in": "a"},
      {"name": "fc", "op": "dense", "units": 3, "in": "b"}]})");
  expect_error(iotnas("spec '" + dir / "cycle.json" + "'"), 1, {"cycle"});

  write_file(dir / "unknown_op.json", R"({"input": [1, 12, 12], "layers": [
      {"name": "attn", "op": "attention"}, {"name": "fc", "op": "dense", "units": 3}]})");
  expect_error(iotnas("spec '" + dir / "unknown_op.json" + "'"), 1, {"attn", "attention"});

  write_file(dir / "shapes.json", R"({"input": [1, 12, 12], "layers": [
      {"name": "a", "op": "conv2d", "out_channels": 2, "kernel": 3, "in": "input"},
      {"name": "b", "op": "conv2d", "out_channels": 2, "kernel": 3, "padding": 1, "in": "input"},
      {"name": "sum", "op": "add", "in": ["a", "b"]},
      {"name": "fc", "op": "dense", "units": 3}]})");
  expect_error(iotnas("spec '" + dir / "shapes.json" + "'"), 1, {"sum"});

  expect_error(iotnas("spec ref:no-such-model"), 1, {"ref:no-such-model"});
  // A model that does not fit the data: 5 outputs for 3 classes.
  std::string wrong = small_spec_json();
  wrong.replace(wrong.find("\"units\": 3"), 10, "\"units\": 5");
  write_file(dir / "wrong_k.json", wrong);
  expect_error(iotnas("train --model '" + dir / "wrong_k.json" + "' --data " + kSynthetic), 1,
               {"3 classes"}, true);
}

TEST(Cli, BadDatasets) {
  expect_error(iotnas("train --model ref:plain-1k --data imagenet"), 1, {"imagenet"});
  expect_error(iotnas("train --model ref:plain-1k --data mnist:/nonexistent"), 1, {"/nonexistent"},
               true);
  expect_error(iotnas("train --model ref:plain-1k --data synthetic:classes=1"), 1, {"classes"});

  // An MNIST directory whose training images end 100 bytes early.
  TempDir dir;
  auto u32 = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  const int n = 20;
  write_file(dir / "train-images-idx3-ubyte",
             u32(0x803) + u32(n) + u32(28) + u32(28) + std::string(n * 784 - 100, '\x10'));
  write_file(dir / "train-labels-idx1-ubyte", u32(0x801) + u32(n) + std::string(n, '\x01'));
  write_file(dir / "t10k-images-idx3-ubyte",
             u32(0x803) + u32(n) + u32(28) + u32(28) + std::string(n * 784, '\x10'));
  write_file(dir / "t10k-labels-idx1-ubyte", u32(0x801) + u32(n) + std::string(n, '\x02'));
  expect_error(iotnas("train --model ref:plain-1k --data mnist:" + dir.path.string()), 1,
               {"train-images-idx3-ubyte", "truncated"}, true);
}

TEST(Cli, BadTrainingValues) {
  const std::string base = std::string("train --model ref:plain-1k --data ") +
                           "synthetic:shape=1x28x28,classes=10,train=32,test=16";
  expect_error(iotnas(base + " --epochs 0"), 1, {"--epochs"});
  expect_error(iotnas(base + " --epochs -3"), 1, {"--epochs"});
  expect_error(iotnas(base + " --batch 0"), 1, {"--batch"});
  expect_error(iotnas(base + " --lr -1"), 1, {"learning rate"});
  expect_error(iotnas(base + " --backend gpu9"), 1, {"gpu9"});
  expect_error(iotnas(base + " --threads -1"), 1, {"--threads"});
  expect_error(iotnas("eval --model x.ckpt --data synthetic --batch 0"), 1, {"--batch"});
}

// A profile with a key of the wrong type is an input error (exit 1 naming the file and the key),
// not an internal one (exit 70); a latency model that gives no finite latency is an error, never
// "inf ms" with exit status 0.
TEST(Cli, CalibPredictOnBadProfiles) {
  TempDir dir;
  calib::Profile p;
  p.settings = calib::settings_for(calib::MeasureConfig{}, {1, 28, 28}, 10);
  p.devices.push_back(calib::describe_device(BackendKind::portable, 1));
  const nlohmann::json range = {{"params", {1e3, 1e6}}, {"flops", {1e4, 1e8}}};
  p.fit = {
      {"model",
       {{"kind", "loglog_global"}, {"models", 10}, {"range", range}, {"global", {0, 400, 0}}}}};
  const nlohmann::json good = calib::profile_to_json(p);
  const std::string path = dir / "p.json";
  const std::string predict = "calib predict --profile '" + path + "' --model ref:plain-1k";
  write_file(path, good.dump());
  expect_error(iotnas(predict), 1, {"p.json", "no finite latency"});
  nlohmann::json j = good;
  j["fit"]["model"]["global"] = {0, 1, 0};
  write_file(path, j.dump());
  EXPECT_EQ(iotnas(predict).status, 0);
  for (const char* pointer : {"/format", "/settings/warmup_ms", "/settings/input", "/devices/0"}) {
    j = good;
    j[nlohmann::json::json_pointer(pointer)] = pointer[1] == 'f' ? nlohmann::json(5) : "x";
    write_file(path, j.dump());
    const std::string key = std::string(pointer).substr(std::string(pointer).rfind('/') + 1);
    expect_error(iotnas(predict), 1, {"p.json", key.c_str()});
  }
}

TEST(Cli, QuantRoundRejectsBadFormats) {
  expect_error(iotnas("quant round --w 9 --t 3"), 2, {"--w 9"});
  expect_error(iotnas("quant round --w 5 --t 0"), 2, {"--t 0"});
  expect_error(iotnas("quant round --w 5"), 2, {"--t"});
}

// --out into a directory that does not exist: the run fails with the path named, prints no JSON,
// and no file (partial or temporary) appears anywhere under the existing parent.
TEST(Cli, OutIntoMissingDirectoryLeavesNoFile) {
  TempDir dir;
  write_file(dir / "small.json", small_spec_json());
  const std::string target = dir / "no/such/dir/model.ckpt";
  // Checked before any data is loaded or any epoch is trained: the only stderr line is the error.
  expect_error(iotnas("train --model '" + dir / "small.json" + "' --data " + kSynthetic +
                      " --epochs 1 --batch 32 --json --out '" + target + "'"),
               1, {target.c_str()});
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir.path)) {
    files.push_back(e.path().filename().string());
  }
  EXPECT_EQ(files, std::vector<std::string>{"small.json"});
}

TEST(Cli, SpecListPrintsOnlyReferenceNamesSmallestFirst) {
  const Result r = iotnas("spec --list");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto l = lines(r.out);
  ASSERT_GE(l.size(), 4u) << r.out;
  int64_t last = 0;
  for (const std::string& name : l) {
    ASSERT_EQ(name.rfind("ref:", 0), 0u) << "not a ref: line: '" << name << "'";
    const int64_t params = analyze(reference_model(name.substr(4))).params;
    EXPECT_GE(params, last) << name << " is listed after a larger model";
    last = params;
  }
  EXPECT_EQ(l.size(), reference_models().size());
}

// train --json: stdout is exactly one line, a JSON object with the documented keys; the
// checkpoint evaluates to the same accuracy; a damaged copy of it is refused.
TEST(Cli, TrainJsonAndEvalOfItsCheckpoint) {
  TempDir dir;
  write_file(dir / "small.json", small_spec_json());
  const std::string ckpt = dir / "small.ckpt";
  const Result r = iotnas("train --model '" + dir / "small.json" + "' --data " + kSynthetic +
                          " --epochs 2 --batch 32 --seed 5 --json --out '" + ckpt + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto l = lines(r.out);
  ASSERT_EQ(l.size(), 1u) << "stdout should hold only the JSON line:\n" << r.out;
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(l.back())) << l.back();
  ASSERT_TRUE(j.is_object());
  for (const char* key : {"test_accuracy", "train_seconds", "images_per_second", "params", "flops",
                          "peak_activation_bytes"}) {
    EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key << " missing in " << l.back();
  }
  const double acc = j.value("test_accuracy", -1.0);
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  EXPECT_GT(j.value("train_seconds", -1.0), 0.0);
  EXPECT_GT(j.value("images_per_second", -1.0), 0.0);
  // small.json by hand: conv 1->4 3x3: 36 + 4 params, 2*4*144*9 = 10,368 FLOPs; fc 4->3: 15
  // params, 24 FLOPs. Peak: while the relu runs, the conv's map and the relu's (576 values
  // each) are alive: 4,608 bytes.
  EXPECT_EQ(j.value("params", -1), 55);
  EXPECT_EQ(j.value("flops", -1), 10392);
  EXPECT_EQ(j.value("peak_activation_bytes", -1), 4608);
  ASSERT_TRUE(fs::exists(ckpt));

  const Result e = iotnas("eval --model '" + ckpt + "' --data " + kSynthetic + " --json");
  ASSERT_EQ(e.status, 0) << e.err;
  const auto el = lines(e.out);
  ASSERT_EQ(el.size(), 1u) << e.out;
  const auto ej = nlohmann::json::parse(el[0]);
  EXPECT_NEAR(ej.value("test_accuracy", -1.0), acc, 1e-9);

  // Damage: one byte flipped in the middle; and the file cut in half.
  std::string bytes = read_file(ckpt);
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() / 2] ^= 0x5a;
  write_file(dir / "flipped.ckpt", bytes);
  expect_error(iotnas("eval --model '" + dir / "flipped.ckpt" + "' --data " + kSynthetic), 1,
               {"flipped.ckpt"});
  write_file(dir / "half.ckpt", read_file(ckpt).substr(0, bytes.size() / 2));
  expect_error(iotnas("eval --model '" + dir / "half.ckpt" + "' --data " + kSynthetic), 1,
               {"half.ckpt"});
  // A spec file is not a checkpoint.
  expect_error(iotnas("eval --model '" + dir / "small.json" + "' --data " + kSynthetic), 1,
               {"small.json"});
  expect_error(iotnas("eval --model '" + dir / "none.ckpt" + "' --data " + kSynthetic), 1,
               {"none.ckpt"});
}

}  // namespace
}  // namespace iotnas

namespace iotnas {
namespace {

TEST(Cli, SweepOfATrainedCheckpoint) {
  TempDir dir;
  write_file(dir / "small.json", small_spec_json());
  const std::string ckpt = dir / "small.ckpt";
  ASSERT_EQ(iotnas("train --model '" + dir / "small.json" + "' --data " + kSynthetic +
                   " --epochs 2 --batch 32 --out '" + ckpt + "'")
                .status,
            0);
  const Result r = iotnas("sweep --model '" + ckpt + "' --data " + kSynthetic +
                          " --types half,4:3,float --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto l = lines(r.out);
  ASSERT_EQ(l.size(), 4u) << r.out;
  std::vector<nlohmann::json> rows;
  for (const auto& line : l) rows.push_back(nlohmann::json::parse(line));
  EXPECT_EQ(rows[0]["w"], 5);
  EXPECT_EQ(rows[0]["t"], 10);
  EXPECT_EQ(rows[0]["bits"], 16);
  EXPECT_EQ(rows[1]["type"], "4:3");
  EXPECT_EQ(rows[1]["weight_bytes"], (55 * 8 + 7) / 8);
  EXPECT_EQ(rows[2]["weight_bytes"], 55 * 4);
  EXPECT_EQ(rows[2]["test_accuracy"], rows[3]["float32_accuracy"]);  // T(8,23) is float32
  ASSERT_TRUE(rows[3].contains("best"));
  EXPECT_TRUE(rows[3]["best"].is_null() || rows[3]["best"]["bits"].get<int>() <= 32);
  // CSV, and bad values.
  const Result csv = iotnas("sweep --model '" + ckpt + "' --data " + kSynthetic +
                            " --types float --limit 12 --csv");
  ASSERT_EQ(csv.status, 0) << csv.err;
  const auto cl = lines(csv.out);
  ASSERT_EQ(cl.size(), 2u);
  EXPECT_EQ(cl[0], "type,w,t,bits,test_accuracy,weight_bytes");
  expect_error(iotnas("sweep --model '" + ckpt + "' --data " + kSynthetic + " --types 9:3"), 1,
               {"9:3"});
  expect_error(iotnas("sweep --model '" + ckpt + "' --data " + kSynthetic + " --limit 33"), 1,
               {"--limit"}, true);
  expect_error(iotnas("sweep --model '" + ckpt + "' --data " + kSynthetic + " --tolerance -1"), 1,
               {"--tolerance"});
}

TEST(Cli, SampleDrawsExactlyNAndSearchErrorsAreClear) {
  const Result r = iotnas("sample --space plain --uniform -n 37 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto l = lines(r.out);
  ASSERT_EQ(l.size(), 37u);
  for (const auto& line : l) {
    const auto j = nlohmann::json::parse(line);
    for (const char* key : {"law_index", "vars", "params", "flops", "activation_bytes"})
      EXPECT_TRUE(j.contains(key)) << key << " missing in " << line;
  }
  expect_error(iotnas("sample --space nope --uniform -n 3"), 1, {"nope"});
  expect_error(iotnas("laws --space plain --metric params --window 2e4:1e4"), 1, {"2e4"});
  expect_error(iotnas("laws --space plain --metric params --window 1e9:2e9"), 1, {"plain"});
}

}  // namespace
}  // namespace iotnas
