// Answers from a run directory: a store filled here with synthetic results of three real models
// (accuracies per format, sweeps, latencies), then `iotnas solve`, `front`, `export` and `report`
// run as the user would, checked against brute force over the rows, and bad input refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/config.hpp"
#include "apps/report.hpp"
#include "apps/store/store.hpp"
#include "engine/model.hpp"
#include "kernels/round/round.hpp"
#include "quant/format.hpp"
#include "results.hpp"
#include "search/front.hpp"
#include "search/space.hpp"
#include "tamper.hpp"
#include "test_util.hpp"

namespace iotnas::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::TempDir;

using Cli = test::Shell;

Cli iotnas(const std::string& args, const fs::path& scratch) {
  return test::shell(std::string("OMP_NUM_THREADS=1 '") + IOTNAS_BINARY + "' " + args, scratch);
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const auto p = t.rfind('\n');
  return p == std::string::npos ? t : t.substr(p + 1);
}

// A synthetic accuracy for a model of quality `base` in T(w,t): falls off with few bits.
double synthetic_accuracy(double base, int w, int t) {
  if (w < 3) return 0.1;
  return 0.1 + (base - 0.1) * (1 - std::exp(-double(t) / 2.0)) * (w >= 4 ? 1.0 : 0.9);
}

struct Filled {
  std::vector<int64_t> model_ids;
  std::vector<int64_t> inference_params;
};

// Three plain-space models with trained-looking rows; model 2 has no measured latency.
Filled fill_store(const std::string& dir) {
  Store s = Store::open(dir);
  s.set_meta("device", "test-device");
  const search::Space& plain = search::find_space("plain");
  std::vector<int> small = plain.min_vector(), big = plain.min_vector();
  for (size_t v = 0; v < big.size(); ++v)
    big[v] = plain.vars[v].value(std::min(plain.vars[v].count() - 1, 3));
  std::vector<int> mid = small;
  mid[0] = plain.vars[0].value(std::min(plain.vars[0].count() - 1, 5));
  const std::vector<std::vector<int>> vecs = {small, mid, big};
  const double base[] = {0.70, 0.80, 0.90};
  Filled f;
  for (int k = 0; k < 3; ++k) {
    const ModelSpec spec = search::build_spec(plain, vecs[k], {1, 28, 28}, 10);
    const Model model = make_model(spec, uint64_t(k + 1));
    const Analytics a = analyze(model.graph);
    ModelRow m;
    m.space = "plain";
    m.name = spec.name;
    m.vars_json = json(vecs[k]).dump();
    m.spec_json = spec_to_json(spec);
    m.analytics = a;
    const int64_t id = s.put_model(m);
    RunRow r;
    r.key = unit_key({"run", m.spec_json, "synthetic", "{}", "1"});
    r.model_id = id;
    r.data = "synthetic";
    r.recipe_json = "{}";
    r.seed = 1;
    r.test_accuracy = base[k];
    r.record_json = "{}";
    r.params = model.params;
    r.state = model.state;
    const int64_t rid = s.put_run(r);
    SweepRow sw{rid, "eval", base[k], 1000, a.inference_params, 0, 0, 0.005, 1.0};
    double best_bits = 99;
    for (const auto fmt : quant::all_formats()) {
      const double acc = synthetic_accuracy(base[k], fmt.w, fmt.t);
      s.put_accuracy({rid, "eval", fmt.w, fmt.t, acc, quant::weight_bytes(a.inference_params, fmt),
                      1000, 0.01});
      if (acc >= base[k] - 0.005 && 1 + fmt.w + fmt.t < best_bits) {
        best_bits = 1 + fmt.w + fmt.t;
        sw.best_w = fmt.w;
        sw.best_t = fmt.t;
      }
    }
    s.put_sweep(sw);
    const double lat = 0.05 * (k + 1);
    if (k < 2) s.put_latency({id, "test-device", "measured", lat, lat, lat, lat * 0.9, 10, ""});
    s.put_latency({id, "test-device", "predicted", lat * 1.1, 0, 0, 0, 0, "loglog_global"});
    f.model_ids.push_back(id);
    f.inference_params.push_back(a.inference_params);
  }
  s.put_artifact("config", "run",
                 R"({"constraints": [{"name": "c1", "max_weight_bytes": 2000},
                                     {"name": "c2", "max_weight_bytes": 1, "max_latency_ms": 1}]})");
  return f;
}

// Brute force over the store: the most accurate (model, format) within the limits.
struct Best {
  double accuracy = -1;
  int64_t weight_bytes = 0;
};
Best brute_best(Store& s, int64_t max_bytes, double max_ms) {
  Best b;
  for (const auto& a : s.accuracies()) {
    const auto run = s.run(a.run_id, false);
    const auto lat = s.latency(run->model_id, "test-device", "measured");
    const auto pred = s.latency(run->model_id, "test-device", "predicted");
    const double ms = lat ? lat->latency_ms : pred->latency_ms;
    if (a.weight_bytes <= max_bytes && ms <= max_ms &&
        (a.accuracy > b.accuracy || (a.accuracy == b.accuracy && a.weight_bytes < b.weight_bytes)))
      b = {a.accuracy, a.weight_bytes};
  }
  return b;
}

TEST(RunAnswers, SolveMatchesBruteForceAndExplainsItself) {
  TempDir dir(false);
  const Filled f = fill_store(dir.str() + "/run");
  Store s = Store::open_readonly(dir.str() + "/run");
  for (int64_t bytes : {300, 1000, 2000, 5000, 20000, 1000000}) {
    for (double ms : {0.06, 0.12, 1.0}) {
      const Cli c =
          iotnas("solve --run '" + dir.str() + "/run' --max-weight-bytes " + std::to_string(bytes) +
                     " --max-latency-ms " + std::to_string(ms) + " --json",
                 dir.path);
      const Best want = brute_best(s, bytes, ms);
      const json j = json::parse(last_line(c.out));
      if (want.accuracy < 0) {
        EXPECT_EQ(c.status, 3) << c.err;
        EXPECT_FALSE(j["feasible"].get<bool>());
        continue;
      }
      ASSERT_EQ(c.status, 0) << c.err << c.out;
      ASSERT_TRUE(j["feasible"].get<bool>());
      for (const char* key : {"feasible", "model_id", "space", "w", "t", "accuracy", "weight_bytes",
                              "latency_ms_measured", "latency_ms_predicted"})
        EXPECT_TRUE(j.contains(key)) << key;
      EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), want.accuracy) << bytes << " " << ms;
      EXPECT_LE(j["weight_bytes"].get<int64_t>(), bytes);
      EXPECT_EQ(j["space"], "plain");
      const int64_t id = j["model_id"].get<int64_t>();
      const auto lat = s.latency(id, "test-device", "measured");
      if (lat) {
        EXPECT_DOUBLE_EQ(j["latency_ms_measured"].get<double>(), lat->latency_ms);
      } else {
        EXPECT_TRUE(j["latency_ms_measured"].is_null());
      }
      EXPECT_DOUBLE_EQ(j["latency_ms_predicted"].get<double>(),
                       s.latency(id, "test-device", "predicted")->latency_ms);
      EXPECT_LE(j["runners_up"].size(), 3u);
    }
  }
  // Text output names the runners-up and why they lost.
  const Cli text = iotnas("solve --run '" + dir.str() + "/run' --max-weight-bytes 2000", dir.path);
  EXPECT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("best: model"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("runners-up"), std::string::npos) << text.out;
  (void)f;
}

TEST(RunAnswers, InfeasibleLimitsExitWithStatus3AndTheSmallestFeasibleValue) {
  TempDir dir(false);
  const Filled f = fill_store(dir.str());
  int64_t lightest = INT64_MAX;
  for (int64_t p : f.inference_params)
    lightest = std::min(lightest, quant::weight_bytes(p, {1, 1}));
  const Cli c = iotnas("solve --run '" + dir.str() + "' --max-weight-bytes 1 --json", dir.path);
  EXPECT_EQ(c.status, 3) << c.err;
  const json j = json::parse(last_line(c.out));
  EXPECT_FALSE(j["feasible"].get<bool>());
  EXPECT_EQ(j["limit"], "max_weight_bytes");
  EXPECT_EQ(j["smallest_feasible"].get<double>(), double(lightest));
  EXPECT_TRUE(j["model_id"].is_null());
  // Latency below every model's: the latency limit is named.
  const Cli l = iotnas(
      "solve --run '" + dir.str() + "' --max-weight-bytes 100000 --max-latency-ms 0.01 --json",
      dir.path);
  EXPECT_EQ(l.status, 3) << l.err;
  const json jl = json::parse(last_line(l.out));
  EXPECT_EQ(jl["limit"], "max_latency_ms");
  EXPECT_DOUBLE_EQ(jl["smallest_feasible"].get<double>(), 0.05);
  // Text form says so too.
  const Cli t = iotnas("solve --run '" + dir.str() + "' --max-weight-bytes 1", dir.path);
  EXPECT_EQ(t.status, 3);
  EXPECT_NE(t.out.find("infeasible"), std::string::npos) << t.out;
}

// `front` reads the store only (the store's fronts are those `iotnas run` wrote): the file is
// unchanged.
TEST(RunAnswers, FrontsArePrintedParetoOptimalAndWrittenAsCsv) {
  TempDir dir(false);
  fill_store(dir.str());
  const std::string before = read_file(dir.path / kStoreFile);
  const Cli c = iotnas("front --run '" + dir.str() + "'", dir.path);
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(read_file(dir.path / kStoreFile), before);
  for (const char* title : {"float32", "half", "T(4,3)", "best format", "latency"})
    EXPECT_NE(c.out.find(title), std::string::npos) << title;
  std::ifstream csv(dir.path / "fronts.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header,
            "front,position,model_id,space,name,params,w,t,accuracy,weight_bytes,latency_ms");
  std::map<std::string, int> rows;  // front -> points
  for (std::string line; std::getline(csv, line);) {
    const bool quoted = line[0] == '"';  // "memory:T(4,3)"
    rows[quoted ? line.substr(1, line.find('"', 1) - 1) : line.substr(0, line.find(','))]++;
  }
  for (const char* name :
       {"memory:float32", "memory:half", "memory:T(4,3)", "memory:best", "latency:test-device"})
    EXPECT_GT(rows[name], 0) << name;
  // The float32 front over three models whose accuracy grows with size holds all three.
  EXPECT_EQ(rows["memory:float32"], 3);
  Store s = Store::open_readonly(dir.str());
  // Nothing in the results beats a front point at its cost or less (Pareto-optimal).
  const Results r = load_results(s);
  for (const auto& f : compute_fronts(r)) {
    for (int i : f.points) {
      for (size_t j = 0; j < r.candidates.size(); ++j) {
        const bool same_family =
            r.candidates[j].w == r.candidates[i].w && r.candidates[j].t == r.candidates[i].t;
        if (!same_family || f.name == "memory:best" || f.name == "memory:all") continue;
        const double ci = search::cost_value(r.candidates[i], f.cost);
        const double cj = search::cost_value(r.candidates[j], f.cost);
        if (std::isnan(cj)) continue;
        EXPECT_FALSE(cj <= ci && r.candidates[j].accuracy > r.candidates[i].accuracy) << f.name;
      }
    }
  }
  // JSON form.
  const Cli j = iotnas("front --run '" + dir.str() + "' --json", dir.path);
  ASSERT_EQ(j.status, 0);
  EXPECT_EQ(json::parse(last_line(j.out))["memory:float32"].size(), 3u);
}

TEST(RunAnswers, ExportWritesTheSpecAndRoundedWeights) {
  TempDir dir(false);
  const Filled f = fill_store(dir.str());
  const fs::path out = dir.path / "model.json";
  const Cli c =
      iotnas("export --run '" + dir.str() + "' --model " + std::to_string(f.model_ids[1]) +
                 " --format 4:3 --out '" + out.string() + "'",
             dir.path);
  ASSERT_EQ(c.status, 0) << c.err;
  std::ifstream in(out);
  const json j = json::parse(in);
  EXPECT_EQ(j["format"], "iotnas-export/1");
  EXPECT_EQ(j["number_format"]["w"], 4);
  EXPECT_EQ(j["number_format"]["t"], 3);
  EXPECT_EQ(j["params"].size(), size_t(f.inference_params[1]));
  EXPECT_EQ(j["weight_bytes"].get<int64_t>(), quant::weight_bytes(f.inference_params[1], {4, 3}));
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), synthetic_accuracy(0.80, 4, 3));
  const ModelSpec spec = parse_spec(j["spec"].dump(), "export");
  EXPECT_EQ(build_graph(spec).num_params, f.inference_params[1]);
  int nonzero = 0;
  for (const auto& v : j["params"]) {
    const float x = v.get<float>();
    EXPECT_EQ(kernels::round_to_format(x, {4, 3}), x);  // representable in T(4,3)
    nonzero += x != 0;
  }
  EXPECT_GT(nonzero, 0);
  // Unknown model, bad format: errors, no file.
  const fs::path none = dir.path / "none.json";
  EXPECT_EQ(iotnas("export --run '" + dir.str() + "' --model 999 --format 4:3 --out '" +
                       none.string() + "'",
                   dir.path)
                .status,
            1);
  EXPECT_EQ(iotnas("export --run '" + dir.str() + "' --model 1 --format 9:3 --out '" +
                       none.string() + "'",
                   dir.path)
                .status,
            1);
  EXPECT_FALSE(fs::exists(none));
}

TEST(RunAnswers, ReportHasTablesAndPlots) {
  TempDir dir(false);
  fill_store(dir.str());
  const Cli c = iotnas("report --run '" + dir.str() + "'", dir.path);
  ASSERT_EQ(c.status, 0) << c.err;
  std::ifstream md(dir.path / "report.md");
  const std::string text(std::istreambuf_iterator<char>(md), {});
  EXPECT_NE(text.find("Constraint answers"), std::string::npos);
  EXPECT_NE(text.find("Fronts"), std::string::npos);
  EXPECT_NE(text.find("Trained models"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir.path / "report.html"));
  if (have_gnuplot()) {
    EXPECT_TRUE(fs::exists(dir.path / "plots" / "memory_fronts.svg"));
    EXPECT_TRUE(fs::exists(dir.path / "plots" / "memory_fronts.png"));
    EXPECT_NE(text.find("plots/memory_fronts.svg"), std::string::npos);
  }
}

TEST(RunAnswers, BadInputIsAClearErrorAndTouchesNothing) {
  TempDir dir(false);
  fs::create_directories(dir.path);
  // No store.
  Cli c = iotnas("solve --run '" + dir.str() + "/none' --max-weight-bytes 100", dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("no experiment store"), std::string::npos) << c.err;
  EXPECT_FALSE(fs::exists(dir.path / "none"));
  // A store of another version.
  {
    Store s = Store::open(dir.str() + "/old");
    s.set_meta("schema_version", "0");
  }
  c = iotnas("front --run '" + dir.str() + "/old'", dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("schema version 0"), std::string::npos) << c.err;
  EXPECT_FALSE(fs::exists(dir.path / "old" / "fronts.csv"));
  // An empty store: nothing to answer yet.
  { Store::open(dir.str() + "/empty"); }
  c = iotnas("solve --run '" + dir.str() + "/empty' --max-weight-bytes 100", dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("no evaluated models"), std::string::npos) << c.err;
  // Contradictory or malformed limits.
  fill_store(dir.str() + "/ok");
  c = iotnas("solve --run '" + dir.str() + "/ok' --max-weight-bytes -5", dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("--max-weight-bytes"), std::string::npos) << c.err;
  c = iotnas("solve --run '" + dir.str() + "/ok' --max-weight-bytes 100 --max-latency-ms 0",
             dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("--max-latency-ms"), std::string::npos) << c.err;
  c = iotnas("solve --run '" + dir.str() + "/ok'", dir.path);
  EXPECT_EQ(c.status, 2);  // a required flag is missing
  for (const Cli& x : {c}) EXPECT_EQ(std::count(x.err.begin(), x.err.end(), '\n'), 1) << x.err;
}

using test::tamper;

// Exit status 1 and one error line, the last on stderr (`run` prints its progress before),
// holding every one of `parts`.
void expect_error(const Cli& c, std::initializer_list<std::string> parts, const std::string& what) {
  EXPECT_EQ(c.status, 1) << what << ": " << c.err;
  const std::string line = last_line(c.err);
  EXPECT_EQ(line.rfind("iotnas: error: ", 0), 0u) << what << ": " << c.err;
  EXPECT_EQ(c.err.find("iotnas: error: "), c.err.rfind("iotnas: error: ")) << what << ": " << c.err;
  for (const auto& p : parts) EXPECT_NE(line.find(p), std::string::npos) << what << ": " << c.err;
}

// A character device like /dev/full (minor 7) or /dev/null (3) at p; false where this process may
// not make or open one (not root, or a container's device rules).
bool make_device(const fs::path& p, unsigned minor) {
  if (::mknod(p.c_str(), S_IFCHR | 0666, makedev(1, minor)) != 0) return false;
  const int fd = ::open(p.c_str(), O_WRONLY);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

TEST(RunAnswers, OutputsGoThroughDevicesAndStdoutAndRefuseFolders) {
  TempDir dir(false);
  const Filled f = fill_store(dir.str());
  const std::string exp = "export --run '" + dir.str() + "' --model " +
                          std::to_string(f.model_ids[0]) + " --format 4:3";
  // Standard output: the JSON alone, the summary on stderr.
  Cli c = iotnas(exp + " --out -", dir.path);
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(json::parse(c.out)["format"], "iotnas-export/1");
  EXPECT_NE(c.err.find("wrote -"), std::string::npos) << c.err;
  // A folder: refused by name, with the system's reason rather than "Success".
  c = iotnas("front --run '" + dir.str() + "' --csv '" + dir.str() + "'", dir.path);
  expect_error(c, {"cannot write '" + dir.str() + "': it is a directory"}, "front --csv DIR");
  EXPECT_EQ(c.err.find("Success"), std::string::npos) << c.err;
  EXPECT_TRUE(fs::is_directory(dir.path));
  // Devices (copies of /dev/full and /dev/null, so a failure cannot replace the real ones).
  const fs::path full = dir.path / "full", null = dir.path / "null";
  if (!make_device(full, 7) || !make_device(null, 3))
    GTEST_SKIP() << "cannot make device nodes here (" << std::strerror(errno) << ")";
  c = iotnas(exp + " --out '" + full.string() + "'", dir.path);
  expect_error(c, {"cannot write '" + full.string() + "': No space left on device"}, "/dev/full");
  EXPECT_EQ(iotnas(exp + " --out '" + null.string() + "'", dir.path).status, 0);
  EXPECT_EQ(
      iotnas("front --run '" + dir.str() + "' --csv '" + null.string() + "'", dir.path).status, 0);
  for (const auto& p : {full, null}) EXPECT_TRUE(fs::is_character_file(fs::symlink_status(p))) << p;
}

// A 0-byte store (a run killed before it began): every reader refuses it and writes nothing.
TEST(RunAnswers, ReadersRefuseAnEmptyStoreUntouched) {
  TempDir dir;
  const fs::path scratch = dir.path / "scratch", run = dir.path / "run";
  fs::create_directories(scratch);
  fs::create_directories(run);
  std::ofstream(run / kStoreFile).close();
  const std::string r = " --run '" + run.string() + "'";
  for (const std::string& args :
       {"front" + r, "solve" + r + " --max-weight-bytes 100", "report" + r,
        "export" + r + " --model 1 --format 4:3 --out '" + (scratch / "m.json").string() + "'"})
    expect_error(iotnas(args, scratch), {run.string() + "/iotnas.sqlite is empty (0 bytes)"}, args);
  EXPECT_EQ(fs::file_size(run / kStoreFile), 0u);
  for (const auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename(), kStoreFile) << "written: " << e.path();
}

// An archived run (a folder this user cannot write, as on read-only media) answers as any other.
// Root writes anywhere, so the commands run as nobody.
TEST(RunAnswers, ReadersWorkOnAStoreTheyCannotWrite) {
  TempDir dir;
  const fs::path scratch = dir.path / "scratch", run = dir.path / "run";
  fs::create_directories(scratch);
  const std::string as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
  if (std::system((as_nobody + "'" + IOTNAS_BINARY + "' --help >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "cannot run iotnas as nobody (setpriv missing or refused, or not root)";
  const Filled f = fill_store(run.string());
  fs::remove(run / (std::string(kStoreFile) + ".lock"));
  fs::permissions(run, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
  const std::string before = read_file(run / kStoreFile);
  const std::string bin = as_nobody + "'" + IOTNAS_BINARY + "' ";
  const auto nobody = [&](const std::string& args) {
    const fs::path out = scratch / "stdout.txt", err = scratch / "stderr.txt";
    const int raw =
        std::system((bin + args + " >'" + out.string() + "' 2>'" + err.string() + "'").c_str());
    Cli c;
    c.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    c.out = read_file(out);
    c.err = read_file(err);
    return c;
  };
  const std::string r = " --run '" + run.string() + "'";
  Cli c = nobody("solve" + r + " --max-weight-bytes 100000");
  EXPECT_EQ(c.status, 0) << c.err;
  c = nobody("front" + r + " --csv -");
  EXPECT_EQ(c.status, 0) << c.err;
  EXPECT_NE(c.out.find("memory:float32"), std::string::npos) << c.out;
  c = nobody("export" + r + " --model " + std::to_string(f.model_ids[0]) + " --format 4:3 --out -");
  EXPECT_EQ(c.status, 0) << c.err;
  // Writing is refused with the system's reason.
  c = nobody("run --budget smoke --out '" + run.string() + "'");
  expect_error(c, {"Permission denied"}, "run as nobody");
  EXPECT_EQ(read_file(run / kStoreFile), before);
  for (const auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename(), kStoreFile) << "written: " << e.path();
}

// A row pointing at a deleted model, or text where a number belongs: every command that opens the
// store says so on one line, naming the table and key and how to recover.
TEST(RunAnswers, DamagedRowsAreOneLineErrorsForEveryCommand) {
  TempDir dir;
  const fs::path scratch = dir.path / "scratch", run = dir.path / "run";
  fs::create_directories(scratch);
  fill_store(run.string());
  tamper(run / kStoreFile,
         "PRAGMA foreign_keys = OFF; DELETE FROM latencies WHERE model_id = 2; "
         "DELETE FROM models WHERE id = 2");
  const std::string r = " --run '" + run.string() + "'";
  const std::vector<std::string> commands = {
      "front" + r, "solve" + r + " --max-weight-bytes 100000", "report" + r,
      "export" + r + " --model 1 --format 4:3 --out '" + (scratch / "m.json").string() + "'",
      "run --budget smoke --out '" + run.string() + "'"};
  for (const auto& args : commands)
    expect_error(iotnas(args, scratch),
                 {run.string() + "/iotnas.sqlite is damaged (table runs, row 2: its model_id 2 "
                                 "names no row of table models",
                  ".recover"},
                 args);
  fs::remove_all(run);
  fill_store(run.string());
  tamper(run / kStoreFile, "UPDATE accuracies SET accuracy = 'abc' WHERE w = 4 AND t = 3");
  for (const auto& args : {commands[0], commands[1], commands[2]})
    expect_error(iotnas(args, scratch),
                 {"is damaged (table accuracies, column accuracy of the row with run_id = 1, "
                  "eval_key = 'eval', w = 4, t = 3 holds TEXT 'abc' where the schema wants REAL"},
                 args);
}

// The whole loop on tiny synthetic data, a few formats: `iotnas run` fills the store; killed with
// SIGKILL at random points and rerun, it ends with the same results as an uninterrupted run.
const char* kTinyRun = R"({
  "budget": "smoke",
  "dataset": "synthetic:shape=1x16x16,classes=4,train=1000,test=200,seed=3",
  "spaces": ["plain", "mobilenet"],
  "search": {"grid_from": 1e3, "grid_to": 1e4},
  "candidates": {"max_models": 3, "max_flops": 3e5, "per_constraint": 0, "references": []},
  "calibration": {"models": 0},
  "training": {"epochs": 3, "batch": 32, "train_images": 0},
  "formats": "half,4:3,8:23,2:3",
  "eval": {"images": 100},
  "threads": 1,
  "constraints": [{"max_weight_bytes": 100000}]
})";

// Start `iotnas run` as a child process (no shell, so the signal reaches it).
pid_t start_run(const fs::path& config, const fs::path& out) {
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("OMP_NUM_THREADS", "1", 1);
    const int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(IOTNAS_BINARY, IOTNAS_BINARY, "run", "--config", config.c_str(), "--out", out.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

using test::results_of;

TEST(RunLoop, TinyRunFillsTheStoreAndResumesAfterSigkill) {
  TempDir dir(false);
  fs::create_directories(dir.path);
  const fs::path config = dir.path / "run.json";
  {
    std::ofstream f(config);
    f << kTinyRun;
  }
  // Uninterrupted.
  const Cli a = iotnas(
      "run --config '" + config.string() + "' --out '" + (dir.path / "a").string() + "'", dir.path);
  ASSERT_EQ(a.status, 0) << a.err;
  {
    Store s = Store::open_readonly((dir.path / "a").string());
    EXPECT_EQ(s.count("runs"), 3);
    EXPECT_EQ(s.count("sweeps"), 3);
    EXPECT_EQ(s.count("accuracies"), 12);
    EXPECT_GT(s.count("laws"), 0);
    EXPECT_FALSE(s.front("memory:float32").empty());
    EXPECT_EQ(s.integrity_check(), "ok");
    // T(8,23) equals float32 for every model.
    for (const auto& sw : s.sweeps()) {
      bool found = false;
      for (const auto& acc : s.accuracies(sw.run_id, sw.eval_key))
        if (acc.w == 8 && acc.t == 23) {
          found = true;
          EXPECT_EQ(acc.accuracy, sw.float32_accuracy);
        }
      EXPECT_TRUE(found);
    }
  }
  EXPECT_TRUE(fs::exists(dir.path / "a" / "report.md"));
  // A rerun does nothing new.
  const Cli again = iotnas(
      "run --config '" + config.string() + "' --out '" + (dir.path / "a").string() + "'", dir.path);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("0 trained, 3 reused"), std::string::npos) << again.err;

  // Killed at random points, then run to the end.
  const uint64_t seed = test::fresh_seed();
  const fs::path b = dir.path / "b";
  for (int round = 0; round < 3; ++round) {
    const pid_t pid = start_run(config, b);
    ASSERT_GT(pid, 0);
    usleep(useconds_t(100000 + (seed >> (10 * round)) % 2000000));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    if (fs::exists(b / kStoreFile)) {
      Store s = Store::open(b.string(), false);  // as a rerun would (0 bytes when killed early)
      ASSERT_EQ(s.integrity_check(), "ok") << test::seed_note(seed);
    }
  }
  const Cli done =
      iotnas("run --config '" + config.string() + "' --out '" + b.string() + "'", dir.path);
  ASSERT_EQ(done.status, 0) << done.err;
  Store sb = Store::open_readonly(b.string());
  EXPECT_EQ(sb.integrity_check(), "ok");
  EXPECT_EQ(sb.count("runs"), 3);
  EXPECT_EQ(sb.count("accuracies"), 12);
  EXPECT_EQ(results_of(b), results_of(dir.path / "a")) << test::seed_note(seed);
}

// Two runs started on one directory: the second exits at once naming the first, which finishes
// as if alone.
TEST(RunLoop, ASecondRunOnTheSameStoreIsRefusedAtOnce) {
  TempDir dir;
  const fs::path config = dir.path / "run.json";
  std::ofstream(config) << kTinyRun;
  const fs::path solo = dir.path / "solo", both = dir.path / "both";
  const Cli alone =
      iotnas("run --config '" + config.string() + "' --out '" + solo.string() + "'", dir.path);
  ASSERT_EQ(alone.status, 0) << alone.err;
  const pid_t first = start_run(config, both);
  ASSERT_GT(first, 0);
  // Wait until the first holds the lock ("pid@host" in the lock file).
  const fs::path lock = both / (std::string(kStoreFile) + ".lock");
  for (int i = 0; i < 3000 && read_file(lock).find('@') == std::string::npos; ++i) usleep(10000);
  ASSERT_NE(read_file(lock).find(std::to_string(first) + "@"), std::string::npos);
  const Cli second =
      iotnas("run --config '" + config.string() + "' --out '" + both.string() + "'", dir.path);
  int status = 0;
  waitpid(first, &status, 0);
  expect_error(second,
               {(both / kStoreFile).string() + " is being written by process " +
                std::to_string(first) + "@"},
               "second run");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(results_of(both), results_of(solo));
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// The smoke budget end to end on Fashion-MNIST: the store holds every unit once, all 184 formats
// per model (a few under the sanitizers, where the unoptimised sweep takes minutes), non-empty
// Pareto-optimal fronts, T(8,23) equal to float32, the constraint's extra candidate inside its
// byte range, and the reference model beside the fronts, never on them.
TEST(RunLoop, SmokeBudgetOnFashionMnist) {
  if (test::fashion_mnist_dir().empty())
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  TempDir dir(false);
  fs::create_directories(dir.path);
  std::string args = "run --budget smoke --out '" + (dir.path / "run").string() + "'";
  if (kSanitized) {
    std::ofstream(dir.path / "smoke.json")
        << R"({"formats": "half,4:3,8:23", "eval": {"images": 200}})";
    args += " --config '" + (dir.path / "smoke.json").string() + "'";
  }
  const Cli c = iotnas(args, dir.path);
  ASSERT_EQ(c.status, 0) << c.err;
  const RunConfig cfg = budget_preset("smoke");
  const int64_t formats = kSanitized ? 3 : 184;
  Store s = Store::open_readonly((dir.path / "run").string());
  EXPECT_EQ(s.integrity_check(), "ok");
  const auto runs = s.runs(false);
  // The wave (max_models), one per constraint unless the wave holds its pick, the reference.
  EXPECT_GE(int(runs.size()), cfg.candidates.max_models + 1);
  EXPECT_LE(int(runs.size()), cfg.candidates.max_models + 1 + int(cfg.constraints.size()));
  EXPECT_EQ(s.count("sweeps"), int64_t(runs.size()));
  EXPECT_EQ(s.count("accuracies"), formats * int64_t(runs.size()));
  for (const auto& sw : s.sweeps()) {
    bool found = false;
    for (const auto& acc : s.accuracies(sw.run_id, sw.eval_key))
      if (acc.w == 8 && acc.t == 23) {
        found = true;
        EXPECT_EQ(acc.accuracy, sw.float32_accuracy);
      }
    EXPECT_TRUE(found);
  }
  // Trained on real data: the best model leaves chance level (10 %) well behind.
  double best = 0;
  for (const auto& r : runs) best = std::max(best, r.test_accuracy);
  EXPECT_GT(best, 0.2);

  // The reference model is trained and swept but on no front and never an answer.
  const Results r = load_results(s);
  ASSERT_EQ(r.references.size(), size_t(formats));
  EXPECT_EQ(r.reference_info.front().name, "plain-1k");
  for (const auto& cand : r.candidates) EXPECT_NE(cand.space, kReferenceSpace);
  for (const auto& f : compute_fronts(r)) {
    EXPECT_FALSE(f.points.empty()) << f.name;
    for (int i : f.points)
      for (size_t j = 0; j < r.candidates.size(); ++j) {
        const auto& a = r.candidates[size_t(i)];
        const auto& b = r.candidates[j];
        if (f.name == "memory:best" || f.name == "memory:all" || a.w != b.w || a.t != b.t) continue;
        const double ca = search::cost_value(a, f.cost), cb = search::cost_value(b, f.cost);
        if (!std::isnan(cb)) {
          EXPECT_FALSE(cb <= ca && b.accuracy > a.accuracy) << f.name;
        }
      }
  }
  const auto refs = reference_points(r, "fashion-mnist");
  ASSERT_FALSE(refs.empty());
  EXPECT_EQ(refs.front().source, "this run");
  EXPECT_TRUE(fs::exists(dir.path / "run" / "reference_points.csv"));
  std::ifstream md(dir.path / "run" / "report.md");
  const std::string report((std::istreambuf_iterator<char>(md)), {});
  EXPECT_NE(report.find("## Reference points"), std::string::npos);
  EXPECT_NE(report.find("2 Conv <100K parameters"), std::string::npos);

  // Training follows the selection: the wave (max_models), the constraint's picks, the
  // reference. The constraint's picks have inference parameters in [B/4, B] for its byte limit B.
  const int64_t limit = cfg.constraints.front().max_weight_bytes;
  for (size_t i = size_t(cfg.candidates.max_models); i < runs.size(); ++i) {
    const auto m = s.model(runs[i].model_id);
    ASSERT_TRUE(m);
    if (m->space == kReferenceSpace) continue;
    EXPECT_GE(m->analytics.inference_params * 4, limit) << m->name;
    EXPECT_LE(m->analytics.inference_params, limit) << m->name;
  }
}

// Every unit of a store, one line each, sorted: law, model and run keys with model names, the
// (run, eval set, format) of each accuracy and sweep, front names and artifact keys. Accuracies
// themselves are left out (they depend on the CPU's kernels); the keys hash everything that
// determines a unit (specs, data, recipe, seeds, evaluation set), so equal lines mean the same
// work was chosen and recorded.
std::vector<std::string> units_of(const fs::path& dir, const std::set<std::string>& formats = {}) {
  Store s = Store::open_readonly(dir.string());
  std::vector<std::string> out;
  std::map<int64_t, std::string> model_name, run_key;
  for (const auto& l : s.all_laws()) out.push_back("laws " + l.key + " " + l.space);
  for (const auto& m : s.models()) {
    model_name[m.id] = m.name;
    out.push_back("model " + m.key + " " + m.name);
  }
  for (const auto& r : s.runs(false)) {
    run_key[r.id] = r.key;
    out.push_back("run " + r.key + " " + model_name.at(r.model_id));
  }
  for (const auto& a : s.accuracies()) {
    const std::string f = std::to_string(a.w) + ":" + std::to_string(a.t);
    if (formats.empty() || formats.count(f))
      out.push_back("accuracy " + run_key.at(a.run_id) + " " + a.eval_key + " " + f);
  }
  for (const auto& w : s.sweeps())
    out.push_back("sweep " + run_key.at(w.run_id) + " " + w.eval_key);
  for (const auto& f : s.front_names()) out.push_back("front " + f);
  for (const char* kind : {"config", "search", "calibration", "failed-run"})
    for (const auto& k : s.artifact_keys(kind))
      out.push_back(std::string("artifact ") + kind + " " + k);
  std::sort(out.begin(), out.end());
  return out;
}

// The smoke budget with one thread and no calibration stores the same units as the code before
// the structure change did (tests/apps/data/smoke_units.txt, written by that code with
// IOTNAS_WRITE_SMOKE_UNITS=1). A refactoring that changes which models are searched, chosen,
// trained or swept, or how units are keyed, fails here.
TEST(RunLoop, SmokeRunStoresTheSameUnitsAsBefore) {
  if (test::fashion_mnist_dir().empty())
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  TempDir dir(false);
  fs::create_directories(dir.path);
  const fs::path golden = fs::path(IOTNAS_SOURCE_DIR) / "tests/apps/data/smoke_units.txt";
  const bool write = std::getenv("IOTNAS_WRITE_SMOKE_UNITS") != nullptr;
  // Under the sanitizers three formats stand for the 184 (the unoptimised sweep takes minutes).
  const std::set<std::string> formats =
      kSanitized && !write ? std::set<std::string>{"5:10", "4:3", "8:23"} : std::set<std::string>{};
  std::string config = R"({"threads": 1, "calibration": {"models": 0})";
  if (!formats.empty()) config += R"(, "formats": "half,4:3,8:23")";
  std::ofstream(dir.path / "smoke.json") << config << "}";
  const Cli c = iotnas("run --budget smoke --config '" + (dir.path / "smoke.json").string() +
                           "' --out '" + (dir.path / "run").string() + "'",
                       dir.path);
  ASSERT_EQ(c.status, 0) << c.err;
  const std::vector<std::string> got = units_of(dir.path / "run", formats);
  if (write) {
    fs::create_directories(golden.parent_path());
    std::ofstream f(golden);
    for (const auto& l : got) f << l << "\n";
    GTEST_SKIP() << "wrote " << golden << " (" << got.size() << " units)";
  }
  std::ifstream f(golden);
  ASSERT_TRUE(f) << "missing " << golden;
  std::vector<std::string> want;
  for (std::string l; std::getline(f, l);) {
    if (l.rfind("accuracy ", 0) == 0 && !formats.empty() &&
        !formats.count(l.substr(l.rfind(' ') + 1)))
      continue;
    want.push_back(l);
  }
  ASSERT_GT(want.size(), 40u);
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < std::max(got.size(), want.size()); ++i) {
    const std::string g = i < got.size() ? got[i] : "(none)";
    const std::string w = i < want.size() ? want[i] : "(none)";
    ASSERT_EQ(g, w) << "first difference at line " << i + 1 << " of " << golden;
  }
}

TEST(RunLoop, SigtermStopsAfterTheUnitInHandAndARerunFinishes) {
  TempDir dir(false);
  fs::create_directories(dir.path);
  const fs::path config = dir.path / "run.json";
  {
    std::ofstream f(config);
    f << kTinyRun;
  }
  const fs::path out = dir.path / "out";
  const pid_t pid = start_run(config, out);
  ASSERT_GT(pid, 0);
  // The handler is installed before the store is opened: once the store exists (however slowly
  // the process started on a loaded machine), a SIGTERM must stop the run cleanly.
  for (int i = 0; i < 600 && !fs::exists(out / kStoreFile); ++i) usleep(50000);
  ASSERT_TRUE(fs::exists(out / kStoreFile)) << "the run never opened its store";
  usleep(300000);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of stopping cleanly";
  EXPECT_TRUE(WEXITSTATUS(status) == 75 || WEXITSTATUS(status) == 0) << WEXITSTATUS(status);
  {
    Store s = Store::open_readonly(out.string());
    EXPECT_EQ(s.integrity_check(), "ok");
  }
  const Cli done =
      iotnas("run --config '" + config.string() + "' --out '" + out.string() + "'", dir.path);
  ASSERT_EQ(done.status, 0) << done.err;
  EXPECT_EQ(Store::open_readonly(out.string()).count("accuracies"), 12);
}

TEST(RunLoop, DivergingTrainingIsRecordedAndSkipped) {
  TempDir dir(false);
  fs::create_directories(dir.path);
  const fs::path config = dir.path / "run.json";
  {
    std::ofstream f(config);
    // Within the ranges a config accepts (an lr of 1e30 is refused up front), but the weight
    // decay and momentum blow the weights up within a few steps.
    std::string text = kTinyRun;
    text.replace(text.find("\"epochs\": 3"), 11,
                 "\"epochs\": 3, \"lr\": 10, \"weight_decay\": 0.99, \"momentum\": 0.99, "
                 "\"nesterov\": false, \"schedule\": \"constant\"");
    f << text;
  }
  const std::string cmd =
      "run --config '" + config.string() + "' --out '" + (dir.path / "out").string() + "'";
  const Cli c = iotnas(cmd, dir.path);
  EXPECT_EQ(c.status, 1) << c.err;
  EXPECT_NE(c.err.find("lower training.lr"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("training failed, skipped"), std::string::npos) << c.err;
  Store s = Store::open_readonly((dir.path / "out").string());  // readers let a run write
  EXPECT_EQ(s.artifact_keys("failed-run").size(), 3u);
  EXPECT_EQ(s.count("runs"), 0);
  // A rerun does not train them again.
  const Cli again = iotnas(cmd, dir.path);
  EXPECT_NE(again.err.find("skipped (its training diverged"), std::string::npos) << again.err;
}

TEST(RunLoop, BadConfigIsAClearErrorAndWritesNothing) {
  TempDir dir(false);
  fs::create_directories(dir.path);
  const fs::path config = dir.path / "bad.json";
  {
    std::ofstream f(config);
    f << R"({"dataset": "imagenet"})";
  }
  Cli c =
      iotnas("run --config '" + config.string() + "' --out '" + (dir.path / "out").string() + "'",
             dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("imagenet"), std::string::npos) << c.err;
  EXPECT_FALSE(fs::exists(dir.path / "out"));
  c = iotnas("run --config '" + (dir.path / "none.json").string() + "' --out '" +
                 (dir.path / "out").string() + "'",
             dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("cannot read run config"), std::string::npos) << c.err;
  EXPECT_FALSE(fs::exists(dir.path / "out"));
  // Sizes past their flag's range: n_val 2e9 aborted (bad_alloc inside an OpenMP region), 1e12
  // images meant "all", an lr of 1e30 failed every training later.
  for (const char* bad :
       {R"({"search": {"n_val": 2000000000}})", R"({"training": {"train_images": 1e12}})",
        R"({"eval": {"images": 1e12}})", R"({"training": {"lr": 1e30}})"}) {
    std::ofstream(config) << bad;
    c = iotnas("run --config '" + config.string() + "' --out '" + (dir.path / "out").string() + "'",
               dir.path);
    EXPECT_EQ(c.status, 1) << bad << ": " << c.err;
    EXPECT_NE(c.err.find("bad.json"), std::string::npos) << c.err;
    EXPECT_FALSE(fs::exists(dir.path / "out"));
  }
  // A run directory of another store version is refused and left as it was.
  {
    Store s = Store::open((dir.path / "old").string());
    s.set_meta("schema_version", "0");
  }
  {
    std::ofstream f(config);
    f << kTinyRun;
  }
  const auto bytes = [&] {
    std::ifstream f(dir.path / "old" / kStoreFile, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string before = bytes();
  c = iotnas("run --config '" + config.string() + "' --out '" + (dir.path / "old").string() + "'",
             dir.path);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find("schema version 0"), std::string::npos) << c.err;
  EXPECT_EQ(bytes(), before);
}

}  // namespace
}  // namespace iotnas::apps
