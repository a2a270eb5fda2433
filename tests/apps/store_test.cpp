// The experiment store: keys (SHA-256 against FIPS 180-4 examples), units written once however
// often they are put, lookups, fronts replaced whole, a store written before apps/store/ read back
// row for row, migrations (committed whole or leaving the file untouched), foreign files and newer
// or unknown schema versions refused without being touched, and a store that survives its writer
// being killed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <tuple>

#include "apps/store/store.hpp"
#include "kernels/base/error.hpp"
#include "test_util.hpp"

namespace iotnas::apps {
namespace {

namespace fs = std::filesystem;

using test::read_bytes;
using test::TempDir;

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

// Every field of a row, for comparisons that name the field that differs.
auto fields(const LawsRow& r) {
  return std::tie(r.id, r.key, r.space, r.metric, r.window_lo, r.window_hi, r.coverage, r.laws_json,
                  r.in_window, r.seconds);
}
auto fields(const ModelRow& r) {
  const Analytics& a = r.analytics;
  return std::tie(r.id, r.key, r.space, r.name, r.vars_json, r.spec_json, a.params,
                  a.inference_params, a.flops, a.peak_activation_bytes, a.total_activation_bytes,
                  a.num_layers);
}
auto fields(const LatencyRow& r) {
  return std::tie(r.model_id, r.device, r.kind, r.latency_ms, r.mean_ms, r.median_ms, r.min_ms,
                  r.repetitions, r.source);
}
auto fields(const RunRow& r) {
  return std::tie(r.id, r.key, r.model_id, r.data, r.recipe_json, r.seed, r.test_accuracy,
                  r.val_accuracy, r.train_seconds, r.record_json, r.params, r.state,
                  r.checkpoint_path);
}
auto fields(const AccuracyRow& r) {
  return std::tie(r.run_id, r.eval_key, r.w, r.t, r.accuracy, r.weight_bytes, r.images, r.seconds);
}
auto fields(const SweepRow& r) {
  return std::tie(r.run_id, r.eval_key, r.float32_accuracy, r.images, r.inference_params, r.best_w,
                  r.best_t, r.tolerance, r.seconds);
}
auto fields(const FrontPoint& r) {
  return std::tie(r.run_id, r.w, r.t, r.accuracy, r.cost);
}

template <class Row>
void expect_rows(const std::vector<Row>& got, const std::vector<Row>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(fields(got[i]), fields(want[i])) << what << i;
}

// The rows of tests/apps/data/store_v1.db: a store of schema version 1 written through put_*
// by the store of commit cb01347 (before apps/store/ and its generic row mapper), with its meta
// rows iotnas_version and created_at overwritten to the values below. Values probe the storage:
// a seed above 2^63, doubles that need 17 digits, a float blob with a subnormal, NULL blobs.
struct Version1Rows {
  std::vector<LawsRow> laws;
  std::vector<ModelRow> models;
  std::vector<LatencyRow> latencies;  // in (model_id, device, kind) order
  std::vector<RunRow> runs;
  std::vector<AccuracyRow> accuracies;  // in (run_id, eval_key, w, t) order
  std::vector<SweepRow> sweeps;         // in (run_id, eval_key) order
  std::vector<FrontPoint> front_memory, front_latency;
};

Version1Rows version1_rows() {
  Version1Rows v;
  v.laws.push_back({1, unit_key({"laws", "plain", "1"}), "plain", "params", 1e3, 2e3, "inside",
                    R"({"laws":[1,2]})", 0.1 + 0.2, 12.5});
  v.laws.push_back({2, unit_key({"laws", "resnet", "2"}), "resnet", "flops", 1e-300, 1e300,
                    "unreachable", "", 0, 0});
  ModelRow m = model_row(3);
  m.id = 1;
  m.key = model_key(m.spec_json);
  m.analytics.flops = 123456789012345LL;
  v.models.push_back(m);
  m = model_row(4);
  m.id = 2;
  m.key = model_key(m.spec_json);
  m.space = "";
  m.vars_json = "[]";
  v.models.push_back(m);
  v.latencies.push_back({1, "raspberry-pi-4", "predicted", 1.0 / 3, 0, 0, 0, 0, "linear"});
  v.latencies.push_back({1, "this-machine", "measured", 0.25, 0.3, 0.25, 0.2, 10, "p.json"});
  v.latencies.push_back({2, "this-machine", "measured", 7.5, 8, 7.5, 7, 3, ""});
  RunRow r = run_row(1, std::numeric_limits<uint64_t>::max());
  r.id = 1;
  r.val_accuracy = 0.8125;
  r.params = {1.f, -2.5f, 3e-20f, 1e-45f, -0.f};
  v.runs.push_back(r);
  r = run_row(2, 5);
  r.id = 2;
  r.params.clear();
  r.state.clear();
  r.checkpoint_path = "checkpoints/run2.ckpt";
  v.runs.push_back(r);
  v.accuracies.push_back({1, "eval-a", 4, 3, 0.75, 123, 2000, 0.5});
  v.accuracies.push_back({1, "eval-a", 8, 23, 0.8125, 4000, 2000, 0.25});
  v.accuracies.push_back({1, "eval-b", 1, 1, 0.1, 1, 10, 0});
  v.accuracies.push_back({2, "eval-a", 2, 7, 1.0 / 7, 999999999999LL, 1, 1e-9});
  v.sweeps.push_back({1, "eval-a", 0.8125, 2000, 999, 4, 3, 0.005, 12.5});
  v.sweeps.push_back({2, "eval-a", 0.5, 1, 1, 0, 0, 0.01, 1});
  v.front_memory = {{1, 4, 3, 0.75, 123}, {2, 2, 7, 1.0 / 7, 999999999999.0}};
  v.front_latency = {{1, 8, 23, 0.8125, 0.25}};
  return v;
}

fs::path version1_fixture() {
  return fs::path(IOTNAS_SOURCE_DIR) / "tests" / "apps" / "data" / "store_v1.db";
}

// A copy of the version-1 fixture as DIR/iotnas.sqlite (the fixture itself is never opened).
void copy_version1_store(const fs::path& dir) {
  fs::create_directories(dir);
  fs::copy_file(version1_fixture(), dir / kStoreFile);
}

// Every row of the version-1 fixture, read through every lookup of the store.
void expect_version1_rows(Store& s) {
  const Version1Rows v = version1_rows();
  EXPECT_EQ(s.meta("iotnas_version"), "0.1.0");
  EXPECT_EQ(s.meta("created_at"), "2025-01-02T03:04:05Z");
  EXPECT_EQ(s.meta("fixture"), "store_v1");
  EXPECT_EQ(s.count("meta"), 4);
  expect_rows(s.all_laws(), v.laws, "laws ");
  for (const LawsRow& l : v.laws) EXPECT_EQ(fields(*s.laws_by_key(l.key)), fields(l));
  expect_rows(s.models(), v.models, "models ");
  for (const ModelRow& m : v.models) {
    EXPECT_EQ(fields(*s.model(m.id)), fields(m));
    EXPECT_EQ(fields(*s.model_by_key(m.key)), fields(m));
  }
  expect_rows(s.latencies(), v.latencies, "latencies ");
  expect_rows(s.latencies("raspberry-pi-4"), {v.latencies[0]}, "pi latencies ");
  for (const LatencyRow& l : v.latencies)
    EXPECT_EQ(fields(*s.latency(l.model_id, l.device, l.kind)), fields(l));
  EXPECT_EQ(s.devices(), (std::vector<std::string>{"raspberry-pi-4", "this-machine"}));
  expect_rows(s.runs(true), v.runs, "runs ");
  std::vector<RunRow> light = v.runs;  // as read without weights
  for (size_t i = 0; i < light.size(); ++i) {
    EXPECT_EQ(fields(*s.run(v.runs[i].id)), fields(v.runs[i]));
    light[i].params.clear();
    light[i].state.clear();
    EXPECT_EQ(fields(*s.run_by_key(light[i].key)), fields(light[i]));
    EXPECT_EQ(fields(*s.run(light[i].id, false)), fields(light[i]));
  }
  expect_rows(s.runs(), light, "runs without weights ");
  expect_rows(s.accuracies(), v.accuracies, "accuracies ");
  expect_rows(s.accuracies(1, "eval-b"), {v.accuracies[2]}, "accuracies of run 1 on eval-b ");
  for (const AccuracyRow& a : v.accuracies)
    EXPECT_TRUE(s.has_accuracy(a.run_id, a.eval_key, a.w, a.t));
  expect_rows(s.sweeps(), v.sweeps, "sweeps ");
  for (const SweepRow& w : v.sweeps) EXPECT_EQ(fields(*s.sweep(w.run_id, w.eval_key)), fields(w));
  expect_rows(s.front("memory:best"), v.front_memory, "memory front ");
  expect_rows(s.front("latency:this-machine"), v.front_latency, "latency front ");
  EXPECT_EQ(s.front_names(), (std::vector<std::string>{"latency:this-machine", "memory:best"}));
  EXPECT_EQ(s.artifact("config", "run"), R"({"budget":"smoke"})");
  EXPECT_EQ(s.artifact("search", "plain"), R"({"log10":[1,2,3]})");
  EXPECT_EQ(s.artifact_keys("config"), std::vector<std::string>{"run"});
  EXPECT_EQ(s.integrity_check(), "ok");
}

TEST(Store, UnitsAreWrittenOnceAndReadBack) {
  TempDir dir(false);
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
  Store again = Store::open_readonly(dir.str() + "/nested/run");
  EXPECT_EQ(again.count("accuracies"), 184);
  EXPECT_EQ(again.models().size(), 1u);
}

// A store written by the code before apps/store/ (version 1) opens and reads back every row.
TEST(Store, ReadsAVersion1StoreWrittenBeforeTheRowMapper) {
  TempDir dir(false);
  copy_version1_store(dir.path);
  Store s = Store::open(dir.str(), false);
  EXPECT_EQ(s.meta("schema_version"), "1");
  expect_version1_rows(s);
}

// The schema as SQLite keeps it: "type name table: sql" of every table and index, by name, with
// whitespace made canonical (one space, none before ',' or ')' or after '('): ALTER TABLE ADD
// COLUMN writes a column into the CREATE text with other spacing than a new line in kSchema.
std::vector<std::string> schema_of(const fs::path& file) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db,
                               "SELECT type || ' ' || name || ' ' || tbl_name || ': ' || "
                               "coalesce(sql, '') FROM sqlite_master ORDER BY name",
                               -1, &q, nullptr),
            SQLITE_OK);
  std::vector<std::string> out;
  while (sqlite3_step(q) == SQLITE_ROW) {
    std::string line;
    for (const char* p = reinterpret_cast<const char*>(sqlite3_column_text(q, 0)); *p; ++p) {
      const char c = std::isspace(static_cast<unsigned char>(*p)) ? ' ' : *p;
      const bool after_space_or_paren = !line.empty() && (line.back() == ' ' || line.back() == '(');
      if (c == ' ' && after_space_or_paren) continue;
      if ((c == ',' || c == ')') && !line.empty() && line.back() == ' ') line.pop_back();
      line += c;
    }
    out.push_back(line);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

// A new store's tables (kSchema) are those of a version-1 store migrated to today's version,
// constraints included; at version 1, also the same text (checked with sqlite3's .schema when
// kSchema moved into apps/store/tables.hpp).
TEST(Store, NewStoresHaveTheSchemaOfMigratedOldOnes) {
  TempDir dir(false);
  copy_version1_store(dir.path / "old");
  { Store::open((dir.path / "old").string(), false); }
  { Store::open((dir.path / "new").string()); }
  const auto old_schema = schema_of(dir.path / "old" / kStoreFile);
  EXPECT_EQ(old_schema.size(), 18u);  // 9 tables, 9 indexes of their keys
  EXPECT_EQ(schema_of(dir.path / "new" / kStoreFile), old_schema);
}

// A test migration: a column with a default, filled from other columns.
const StoreMigration kAddNote{2,
                              "ALTER TABLE artifacts ADD COLUMN note TEXT NOT NULL DEFAULT ''; "
                              "UPDATE artifacts SET note = kind || '/' || key;"};

TEST(Store, MigratesAnOlderStoreKeepingItsRowsAndRemovesTheCopy) {
  TempDir dir(false);
  copy_version1_store(dir.path);
  const fs::path file = dir.path / kStoreFile;
  const fs::path backup = dir.path / (std::string(kStoreFile) + ".v1.bak");
  const StoreMigration to2[] = {kAddNote};
  {
    Store s = Store::open(dir.str(), false, to2);
    EXPECT_EQ(s.meta("schema_version"), "2");
    expect_version1_rows(s);
    s.put_artifact("config", "new", "{}");  // the new column takes its default
    EXPECT_EQ(s.count("artifacts"), 3);
  }
  EXPECT_FALSE(fs::exists(backup));
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    ASSERT_EQ(
        sqlite3_prepare_v2(db, "SELECT group_concat(note, ' ') FROM artifacts", -1, &q, nullptr),
        SQLITE_OK);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)),
                 "config/run search/plain ");
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  // Reopened at version 2: nothing to migrate.
  const std::string migrated = read_bytes(file);
  { Store::open(dir.str(), false, to2); }
  EXPECT_EQ(read_bytes(file), migrated);
  EXPECT_FALSE(fs::exists(backup));
}

// The second of two migrations fails after changing a table: the store is left as it was, byte for
// byte (the first migration rolled back too), with its copy beside it.
TEST(Store, FailedMigrationLeavesTheStoreUntouchedAndKeepsTheCopy) {
  TempDir dir(false);
  copy_version1_store(dir.path);
  const fs::path file = dir.path / kStoreFile;
  const fs::path backup = dir.path / (std::string(kStoreFile) + ".v1.bak");
  const std::string before = read_bytes(file);
  const StoreMigration to3[] = {
      kAddNote, {3, "DELETE FROM artifacts; INSERT INTO no_such_table VALUES (1);"}};
  try {
    Store::open(dir.str(), false, to3);
    FAIL() << "a failed migration opened the store";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot migrate " + file.string() + " from schema version 1 to 3"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("at version 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no_such_table"), std::string::npos) << msg;
    EXPECT_NE(msg.find(backup.string()), std::string::npos) << msg;
  }
  EXPECT_EQ(read_bytes(file), before);
  ASSERT_TRUE(fs::exists(backup));
  EXPECT_EQ(read_bytes(backup), before);
  // Today's iotnas still reads it.
  Store s = Store::open(dir.str(), false);
  EXPECT_EQ(s.meta("schema_version"), "1");
  expect_version1_rows(s);
}

TEST(Store, RefusesANewerStoreUntouched) {
  TempDir dir(false);
  const fs::path file = dir.path / kStoreFile;
  {
    Store s = Store::open(dir.str());
    s.put_model(model_row(1));
    s.set_meta("schema_version", std::to_string(kStoreSchemaVersion + 1));
  }
  const std::string before = read_bytes(file);
  try {
    Store::open(dir.str());
    FAIL() << "opened a newer store";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("schema version " + std::to_string(kStoreSchemaVersion + 1) + ", newer"),
              std::string::npos)
        << msg;
  }
  EXPECT_EQ(read_bytes(file), before);
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == kStoreFile || name == std::string(kStoreFile) + ".lock")
        << "left behind: " << entry.path();
  }
}

TEST(Store, TransactionsAreAllOrNothing) {
  TempDir dir(false);
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
  TempDir dir(false);
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
  TempDir dir(false);
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
      Store reader = Store::open_readonly(dir.str());  // while the child writes
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
