// The experiment store: keys (SHA-256 against FIPS 180-4 examples), units written once however
// often they are put, lookups, fronts replaced whole, foreign files and other schema versions
// refused without being touched, and a store that survives its writer being killed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/store.hpp"
#include "kernels/base/error.hpp"
#include "test_util.hpp"

namespace iotnas::apps {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("iotnas_store_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(test::fresh_seed() % 1000000007));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

ModelRow model_row(int i) {
  ModelRow m;
  m.space = "plain";
  m.name = "plain[" + std::to_string(i) + "]";
  m.vars_json = "[" + std::to_string(i) + "]";
  m.spec_json = R"({"format":"iotnas-model/1","name":")" + m.name + R"("})";
  m.analytics.params = 1000 * i;
  m.analytics.inference_params = 1000 * i - 1;
  m.analytics.flops = 123456789012LL * i;
  m.analytics.peak_activation_bytes = 77;
  m.analytics.total_activation_bytes = 99;
  m.analytics.num_layers = 4;
  return m;
}

RunRow run_row(int64_t model_id, uint64_t seed) {
  RunRow r;
  r.key = unit_key({"run", std::to_string(model_id), "fashion-mnist", "{}", std::to_string(seed)});
  r.model_id = model_id;
  r.data = "fashion-mnist";
  r.recipe_json = R"({"epochs":1})";
  r.seed = seed;
  r.test_accuracy = 0.875;
  r.train_seconds = 1.5;
  r.record_json = "{}";
  r.params = {1.f, -2.5f, 3e-20f, 0.f};
  r.state = {0.5f, 2.f};
  return r;
}

TEST(Store, UnitsAreWrittenOnceAndReadBack) {
  TempDir dir;
  Store s = Store::open(dir.str() + "/nested/run");
  EXPECT_EQ(s.meta("schema_version"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(s.integrity_check(), "ok");

  const ModelRow m = model_row(3);
  const int64_t id = s.put_model(m);
  EXPECT_EQ(s.put_model(m), id);  // same spec: same model
  EXPECT_EQ(s.count("models"), 1);
  const auto back = s.model(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, model_key(m.spec_json));
  EXPECT_EQ(back->spec_json, m.spec_json);
  EXPECT_EQ(back->analytics.flops, m.analytics.flops);
  EXPECT_EQ(back->analytics.inference_params, m.analytics.inference_params);
  EXPECT_EQ(s.model_by_key(back->key)->id, id);
  EXPECT_FALSE(s.model(id + 100));

  LawsRow l;
  l.key = unit_key({"laws", "plain", "1e3"});
  l.space = "plain";
  l.metric = "params";
  l.window_lo = 1e3;
  l.window_hi = 2e3;
  l.coverage = "inside";
  l.laws_json = "{}";
  const int64_t lid = s.put_laws(l);
  EXPECT_EQ(s.put_laws(l), lid);
  EXPECT_EQ(s.all_laws().size(), 1u);
  EXPECT_EQ(s.laws_by_key(l.key)->window_hi, 2e3);

  LatencyRow lat{id, "this-machine", "measured", 0.25, 0.3, 0.25, 0.2, 10, ""};
  s.put_latency(lat);
  lat.latency_ms = 9;  // a rerun does not replace a measurement
  s.put_latency(lat);
  EXPECT_EQ(s.latency(id, "this-machine", "measured")->latency_ms, 0.25);
  LatencyRow pred{id, "this-machine", "predicted", 0.3, 0, 0, 0, 0, "linear"};
  s.put_latency(pred);
  pred.latency_ms = 0.28;  // a refit replaces a prediction
  s.put_latency(pred);
  EXPECT_EQ(s.latency(id, "this-machine", "predicted")->latency_ms, 0.28);
  EXPECT_EQ(s.latencies().size(), 2u);
  EXPECT_EQ(s.latencies("pi").size(), 0u);
  EXPECT_EQ(s.devices(), std::vector<std::string>{"this-machine"});
  EXPECT_THROW(s.put_latency({id, "x", "guessed", 1, 0, 0, 0, 0, ""}), Error);

  const RunRow r = run_row(id, 7);
  const int64_t rid = s.put_run(r);
  EXPECT_EQ(s.put_run(r), rid);
  EXPECT_EQ(s.count("runs"), 1);
  EXPECT_TRUE(s.run_by_key(r.key));
  EXPECT_TRUE(s.run_by_key(r.key)->params.empty());  // without weights by default
  const auto full = s.run(rid);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->params, r.params);
  EXPECT_EQ(full->state, r.state);
  EXPECT_EQ(full->seed, 7u);
  EXPECT_EQ(full->val_accuracy, -1);
  EXPECT_FALSE(s.run_by_key(unit_key({"other"})));

  for (int w = 1; w <= 8; ++w) {
    for (int t = 1; t <= 23; ++t) {
      EXPECT_FALSE(s.has_accuracy(rid, "eval", w, t));
      s.put_accuracy({rid, "eval", w, t, 0.5 + 0.01 * t, 10 * (1 + w + t), 2000, 0.1});
    }
  }
  s.put_accuracy({rid, "eval", 8, 23, 0.0, 0, 0, 0});  // ignored: already there
  EXPECT_EQ(s.count("accuracies"), 184);
  EXPECT_TRUE(s.has_accuracy(rid, "eval", 4, 3));
  EXPECT_FALSE(s.has_accuracy(rid, "other-eval", 4, 3));
  EXPECT_EQ(s.accuracies(rid, "eval").size(), 184u);
  EXPECT_EQ(s.accuracies(rid + 1).size(), 0u);
  EXPECT_DOUBLE_EQ(s.accuracies(rid, "eval").back().accuracy, 0.5 + 0.23);

  s.put_sweep({rid, "eval", 0.73, 2000, 999, 4, 3, 0.005, 12.5});
  s.put_sweep({rid, "eval", 0.1, 1, 1, 1, 1, 0.1, 1});
  EXPECT_EQ(s.sweeps().size(), 1u);
  EXPECT_EQ(s.sweep(rid, "eval")->best_w, 4);
  EXPECT_FALSE(s.sweep(rid, "x"));

  s.replace_front("memory:float32", "weight_bytes",
                  {{rid, 8, 23, 0.9, 4000}, {rid, 8, 23, 0.95, 8000}});
  s.replace_front("memory:float32", "weight_bytes", {{rid, 8, 23, 0.91, 4000}});
  EXPECT_EQ(s.front("memory:float32").size(), 1u);
  EXPECT_EQ(s.front("memory:float32")[0].accuracy, 0.91);
  EXPECT_EQ(s.front_names(), std::vector<std::string>{"memory:float32"});

  s.put_artifact("config", "run", R"({"a":1})");
  s.put_artifact("config", "run", R"({"a":2})");
  EXPECT_EQ(s.artifact("config", "run"), R"({"a":2})");
  EXPECT_FALSE(s.artifact("config", "none"));
  EXPECT_EQ(s.artifact_keys("config"), std::vector<std::string>{"run"});
  EXPECT_THROW(s.count("sqlite_master; DROP TABLE runs"), Error);
  EXPECT_EQ(s.integrity_check(), "ok");

  // Reopened: everything is still there.
  Store again = Store::open(dir.str() + "/nested/run", false);
  EXPECT_EQ(again.count("accuracies"), 184);
  EXPECT_EQ(again.models().size(), 1u);
}

TEST(Store, TransactionsAreAllOrNothing) {
  TempDir dir;
  Store s = Store::open(dir.str());
  EXPECT_THROW(s.transaction([&] {
    s.put_model(model_row(1));
    s.put_model(model_row(2));
    fail("stop");
  }),
               Error);
  EXPECT_EQ(s.count("models"), 0);
  s.transaction([&] {
    s.put_model(model_row(1));
    s.put_model(model_row(2));
  });
  EXPECT_EQ(s.count("models"), 2);
}

TEST(Store, RefusesForeignFilesAndOtherVersionsWithoutTouchingThem) {
  TempDir dir;
  EXPECT_THROW(Store::open(dir.str(), false), Error);  // missing, not created
  EXPECT_FALSE(fs::exists(dir.path));

  fs::create_directories(dir.path);
  const fs::path file = dir.path / kStoreFile;
  {
    std::ofstream f(file, std::ios::binary);
    f << "this is not a database, and it is long enough to have a header of 100 bytes or so ....."
         "..................";
  }
  const std::string before = read_bytes(file);
  try {
    Store::open(dir.str());
    FAIL() << "opened a text file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an SQLite database"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(file), before);

  // An SQLite database of someone else.
  fs::remove(file);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  const std::string foreign = read_bytes(file);
  try {
    Store::open(dir.str());
    FAIL() << "opened a foreign database";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an iotnas experiment store"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(read_bytes(file), foreign);

  // A store of another schema version.
  fs::remove(file);
  {
    Store s = Store::open(dir.str());
    s.set_meta("schema_version", "999");
  }
  try {
    Store::open(dir.str());
    FAIL() << "opened a store of another version";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 999"), std::string::npos) << e.what();
  }
}

// A child process writes units in a loop and is killed with SIGKILL at a random moment; the store
// must pass the integrity check, hold whole units only, and accept the rest on a rerun.
TEST(Store, SurvivesItsWriterBeingKilled) {
  TempDir dir;
  const uint64_t seed = test::fresh_seed();
  { Store::open(dir.str()); }
  auto write_all = [&](int from) {
    Store s = Store::open(dir.str());
    for (int i = from; i < 400; ++i) {
      const int64_t id = s.put_model(model_row(i + 1));
      const RunRow r = run_row(id, 1);
      if (s.run_by_key(r.key)) continue;
      s.transaction([&] {
        const int64_t rid = s.put_run(r);
        s.put_accuracy({rid, "e", 8, 23, 0.5, 1, 1, 0});
      });
    }
  };
  for (int round = 0; round < 3; ++round) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        write_all(0);
      } catch (...) {
        _exit(3);
      }
      _exit(0);
    }
    // Kill once the child has committed a random number of runs (it is then somewhere inside
    // the next units), or after 20 s.
    const int64_t target = 1 + int64_t((seed >> (8 * round)) % 300);
    bool reaped = false;
    for (int wait = 0; wait < 20000 && !reaped; ++wait) {
      Store reader = Store::open(dir.str());
      if (reader.count("runs") >= target) break;
      reaped = waitpid(pid, nullptr, WNOHANG) == pid;
      usleep(1000);
    }
    if (!reaped) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    Store s = Store::open(dir.str());
    ASSERT_EQ(s.integrity_check(), "ok") << test::seed_note(seed);
    // Runs and their accuracy were committed together.
    EXPECT_EQ(s.count("runs"), s.count("accuracies")) << test::seed_note(seed);
    EXPECT_LE(s.count("runs"), s.count("models"));
    std::printf("round %d: killed after %lld of 400 runs\n", round, (long long)s.count("runs"));
  }
  write_all(0);
  Store s = Store::open(dir.str());
  EXPECT_EQ(s.count("models"), 400);
  EXPECT_EQ(s.count("runs"), 400);
  EXPECT_EQ(s.count("accuracies"), 400);
  EXPECT_EQ(s.integrity_check(), "ok");
}

}  // namespace
}  // namespace iotnas::apps
