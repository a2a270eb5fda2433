#include "apps/store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

std::string model_key(std::string_view spec_json) {
  return unit_key({"model", spec_json});
}

// ---------------------------------------------------------------------------------------------
// SQLite helpers.

namespace {

// One prepared statement; binds by position (1-based) and steps.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql, const std::string& path) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      fail(path_, ": SQLite error: ", sqlite3_errmsg(db), " (in: ", sql, ")");
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& bind(int i, int v) { return bind(i, int64_t(v)); }
  Stmt& bind(int i, uint64_t v) { return bind(i, int64_t(v)); }
  Stmt& bind(int i, double v) {
    check(sqlite3_bind_double(s_, i, v));
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind_floats(int i, const std::vector<float>& v) {
    if (v.empty()) {
      check(sqlite3_bind_null(s_, i));
    } else {
      check(sqlite3_bind_blob64(s_, i, v.data(), v.size() * sizeof(float), SQLITE_TRANSIENT));
    }
    return *this;
  }

  // Ready to bind and run again.
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

  // true: a row is ready; false: done.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(path_, ": SQLite error: ", sqlite3_errmsg(db_),
         rc == SQLITE_BUSY ? " (another process holds the store; wait for it to finish)" : "");
  }
  void run() {
    while (step()) {
    }
  }

  int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  double f64(int c) { return sqlite3_column_double(s_, c); }
  std::string text(int c) {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c)) : "";
  }
  std::vector<float> floats(int c) {
    const void* p = sqlite3_column_blob(s_, c);
    const int n = sqlite3_column_bytes(s_, c);
    std::vector<float> v(size_t(n) / sizeof(float));
    if (p && n) std::memcpy(v.data(), p, v.size() * sizeof(float));
    return v;
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(path_, ": SQLite bind error: ", sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  const std::string& path_;
};

void exec(sqlite3* db, const char* sql, const std::string& path) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    fail(path, ": ", msg);
  }
}

const char* kSchema = R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE laws (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  space TEXT NOT NULL,
  metric TEXT NOT NULL,
  window_lo REAL NOT NULL,
  window_hi REAL NOT NULL,
  coverage TEXT NOT NULL,
  laws_json TEXT NOT NULL,
  in_window REAL NOT NULL,
  seconds REAL NOT NULL
);
CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  space TEXT NOT NULL,
  name TEXT NOT NULL,
  vars_json TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  params INTEGER NOT NULL,
  inference_params INTEGER NOT NULL,
  flops INTEGER NOT NULL,
  peak_activation_bytes INTEGER NOT NULL,
  total_activation_bytes INTEGER NOT NULL,
  num_layers INTEGER NOT NULL
);
CREATE TABLE latencies (
  model_id INTEGER NOT NULL REFERENCES models(id),
  device TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('measured', 'predicted')),
  latency_ms REAL NOT NULL,
  mean_ms REAL NOT NULL,
  median_ms REAL NOT NULL,
  min_ms REAL NOT NULL,
  repetitions INTEGER NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (model_id, device, kind)
);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  model_id INTEGER NOT NULL REFERENCES models(id),
  data TEXT NOT NULL,
  recipe_json TEXT NOT NULL,
  seed INTEGER NOT NULL,
  test_accuracy REAL NOT NULL,
  val_accuracy REAL NOT NULL,
  train_seconds REAL NOT NULL,
  record_json TEXT NOT NULL,
  params BLOB,
  state BLOB,
  checkpoint_path TEXT NOT NULL
);
CREATE TABLE accuracies (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  eval_key TEXT NOT NULL,
  w INTEGER NOT NULL CHECK (w BETWEEN 1 AND 8),
  t INTEGER NOT NULL CHECK (t BETWEEN 1 AND 23),
  accuracy REAL NOT NULL,
  weight_bytes INTEGER NOT NULL,
  images INTEGER NOT NULL,
  seconds REAL NOT NULL,
  PRIMARY KEY (run_id, eval_key, w, t)
);
CREATE TABLE sweeps (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  eval_key TEXT NOT NULL,
  float32_accuracy REAL NOT NULL,
  images INTEGER NOT NULL,
  inference_params INTEGER NOT NULL,
  best_w INTEGER NOT NULL,
  best_t INTEGER NOT NULL,
  tolerance REAL NOT NULL,
  seconds REAL NOT NULL,
  PRIMARY KEY (run_id, eval_key)
);
CREATE TABLE fronts (
  name TEXT NOT NULL,
  position INTEGER NOT NULL,
  cost_unit TEXT NOT NULL,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  w INTEGER NOT NULL,
  t INTEGER NOT NULL,
  accuracy REAL NOT NULL,
  cost REAL NOT NULL,
  PRIMARY KEY (name, position)
);
CREATE TABLE artifacts (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  json TEXT NOT NULL,
  PRIMARY KEY (kind, key)
);
)sql";

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Store.

Store Store::open(const std::string& dir, bool create) {
  namespace fs = std::filesystem;
  Store s;
  s.path_ = (fs::path(dir) / kStoreFile).string();
  std::error_code ec;
  const bool exists = fs::exists(s.path_, ec);
  if (!exists && !create)
    fail("no experiment store at ", s.path_, "; run `iotnas run --out ", dir, "` first");
  if (exists && !fs::is_regular_file(s.path_, ec))
    fail(s.path_, " is not a file; give a run directory holding an iotnas store");
  if (!exists) {
    fs::create_directories(dir, ec);
    if (ec) fail("cannot create run directory ", dir, ": ", ec.message());
  }
  const int flags = SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(s.path_.c_str(), &s.db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = s.db_ ? sqlite3_errmsg(s.db_) : "out of memory";
    fail("cannot open ", s.path_, ": ", msg);
  }
  sqlite3_busy_timeout(s.db_, 30000);
  sqlite3_extended_result_codes(s.db_, 0);

  if (exists) {
    // Identify the file before changing anything in it (journal mode included).
    int64_t tables = 0, meta_tables = 0;
    try {
      Stmt q(s.db_,
             "SELECT count(*), count(CASE WHEN name = 'meta' THEN 1 END) FROM sqlite_master "
             "WHERE type = 'table'",
             s.path_);
      q.step();
      tables = q.i64(0);
      meta_tables = q.i64(1);
    } catch (const Error&) {
      fail(s.path_,
           " is not an SQLite database (an iotnas experiment store); give another --out "
           "directory");
    }
    if (tables == 0) {
      // An empty database: a store whose creation was interrupted before its schema committed.
      initialise(s);
      return s;
    }
    if (meta_tables == 0)
      fail(s.path_,
           " is an SQLite database but not an iotnas experiment store; give another "
           "--out directory");
    const auto version = s.meta("schema_version");
    if (!version)
      fail(s.path_,
           " has no schema version: not an iotnas experiment store; give another --out "
           "directory");
    if (*version != std::to_string(kStoreSchemaVersion))
      fail(s.path_, " is an experiment store of schema version ", *version,
           "; this iotnas reads version ", kStoreSchemaVersion,
           ": use a new --out directory, or the iotnas that wrote it");
    exec(s.db_, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
         s.path_);
    return s;
  }
  initialise(s);
  return s;
}

void Store::initialise(Store& s) {
  exec(s.db_, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
       s.path_);
  s.transaction([&] {
    exec(s.db_, kSchema, s.path_);
    s.set_meta("schema_version", std::to_string(kStoreSchemaVersion));
    s.set_meta("iotnas_version", IOTNAS_VERSION);
    s.set_meta("created_at", utc_now());
  });
}

Store::Store(Store&& o) noexcept : db_(o.db_), path_(std::move(o.path_)), depth_(o.depth_) {
  o.db_ = nullptr;
}

Store& Store::operator=(Store&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close_v2(db_);
    db_ = o.db_;
    path_ = std::move(o.path_);
    depth_ = o.depth_;
    o.db_ = nullptr;
  }
  return *this;
}

Store::~Store() {
  if (db_) sqlite3_close_v2(db_);
}

void Store::transaction(const std::function<void()>& body) {
  if (depth_ > 0) {
    ++depth_;
    try {
      body();
    } catch (...) {
      --depth_;
      throw;
    }
    --depth_;
    return;
  }
  exec(db_, "BEGIN IMMEDIATE", path_);
  depth_ = 1;
  try {
    body();
    exec(db_, "COMMIT", path_);
  } catch (...) {
    depth_ = 0;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  depth_ = 0;
}

std::optional<std::string> Store::meta(std::string_view key) {
  Stmt q(db_, "SELECT value FROM meta WHERE key = ?", path_);
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

void Store::set_meta(std::string_view key, std::string_view value) {
  Stmt q(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", path_);
  q.bind(1, key).bind(2, value).run();
}

// Laws ----------------------------------------------------------------------------------------

namespace {
const char* kLawsCols =
    "id, key, space, metric, window_lo, window_hi, coverage, laws_json, in_window, seconds";
LawsRow read_laws(Stmt& q) {
  LawsRow r;
  r.id = q.i64(0);
  r.key = q.text(1);
  r.space = q.text(2);
  r.metric = q.text(3);
  r.window_lo = q.f64(4);
  r.window_hi = q.f64(5);
  r.coverage = q.text(6);
  r.laws_json = q.text(7);
  r.in_window = q.f64(8);
  r.seconds = q.f64(9);
  return r;
}
}  // namespace

int64_t Store::put_laws(const LawsRow& r) {
  IOTNAS_ASSERT(!r.key.empty(), "laws row without a key");
  int64_t id = 0;
  transaction([&] {
    if (auto old = laws_by_key(r.key)) {
      id = old->id;
      return;
    }
    Stmt q(db_,
           "INSERT INTO laws (key, space, metric, window_lo, window_hi, coverage, laws_json, "
           "in_window, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
           path_);
    q.bind(1, r.key).bind(2, r.space).bind(3, r.metric).bind(4, r.window_lo).bind(5, r.window_hi);
    q.bind(6, r.coverage).bind(7, r.laws_json).bind(8, r.in_window).bind(9, r.seconds).run();
    id = sqlite3_last_insert_rowid(db_);
  });
  return id;
}

std::optional<LawsRow> Store::laws_by_key(std::string_view key) {
  Stmt q(db_, (std::string("SELECT ") + kLawsCols + " FROM laws WHERE key = ?").c_str(), path_);
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return read_laws(q);
}

std::vector<LawsRow> Store::all_laws() {
  Stmt q(db_, (std::string("SELECT ") + kLawsCols + " FROM laws ORDER BY id").c_str(), path_);
  std::vector<LawsRow> out;
  while (q.step()) out.push_back(read_laws(q));
  return out;
}

// Models --------------------------------------------------------------------------------------

namespace {
const char* kModelCols =
    "id, key, space, name, vars_json, spec_json, params, inference_params, flops, "
    "peak_activation_bytes, total_activation_bytes, num_layers";
ModelRow read_model(Stmt& q) {
  ModelRow r;
  r.id = q.i64(0);
  r.key = q.text(1);
  r.space = q.text(2);
  r.name = q.text(3);
  r.vars_json = q.text(4);
  r.spec_json = q.text(5);
  r.analytics.params = q.i64(6);
  r.analytics.inference_params = q.i64(7);
  r.analytics.flops = q.i64(8);
  r.analytics.peak_activation_bytes = q.i64(9);
  r.analytics.total_activation_bytes = q.i64(10);
  r.analytics.num_layers = int(q.i64(11));
  return r;
}
}  // namespace

int64_t Store::put_model(const ModelRow& r) {
  const std::string key = r.key.empty() ? model_key(r.spec_json) : r.key;
  int64_t id = 0;
  transaction([&] {
    if (auto old = model_by_key(key)) {
      id = old->id;
      return;
    }
    Stmt q(db_,
           "INSERT INTO models (key, space, name, vars_json, spec_json, params, "
           "inference_params, flops, peak_activation_bytes, total_activation_bytes, num_layers) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           path_);
    const Analytics& a = r.analytics;
    q.bind(1, key).bind(2, r.space).bind(3, r.name);
    q.bind(4, r.vars_json.empty() ? std::string("[]") : r.vars_json).bind(5, r.spec_json);
    q.bind(6, a.params).bind(7, a.inference_params).bind(8, a.flops);
    q.bind(9, a.peak_activation_bytes).bind(10, a.total_activation_bytes).bind(11, a.num_layers);
    q.run();
    id = sqlite3_last_insert_rowid(db_);
  });
  return id;
}

std::optional<ModelRow> Store::model(int64_t id) {
  Stmt q(db_, (std::string("SELECT ") + kModelCols + " FROM models WHERE id = ?").c_str(), path_);
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return read_model(q);
}

std::optional<ModelRow> Store::model_by_key(std::string_view key) {
  Stmt q(db_, (std::string("SELECT ") + kModelCols + " FROM models WHERE key = ?").c_str(), path_);
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return read_model(q);
}

std::vector<ModelRow> Store::models() {
  Stmt q(db_, (std::string("SELECT ") + kModelCols + " FROM models ORDER BY id").c_str(), path_);
  std::vector<ModelRow> out;
  while (q.step()) out.push_back(read_model(q));
  return out;
}

// Latencies -----------------------------------------------------------------------------------

namespace {
const char* kLatencyCols =
    "model_id, device, kind, latency_ms, mean_ms, median_ms, min_ms, repetitions, source";
LatencyRow read_latency(Stmt& q) {
  LatencyRow r;
  r.model_id = q.i64(0);
  r.device = q.text(1);
  r.kind = q.text(2);
  r.latency_ms = q.f64(3);
  r.mean_ms = q.f64(4);
  r.median_ms = q.f64(5);
  r.min_ms = q.f64(6);
  r.repetitions = int(q.i64(7));
  r.source = q.text(8);
  return r;
}
}  // namespace

void Store::put_latency(const LatencyRow& r) {
  if (r.kind != "measured" && r.kind != "predicted")
    fail("latency kind '", r.kind, "' is neither 'measured' nor 'predicted'");
  const char* sql = r.kind == "measured"
                        ? "INSERT OR IGNORE INTO latencies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        : "INSERT OR REPLACE INTO latencies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
  transaction([&] {
    Stmt q(db_, sql, path_);
    q.bind(1, r.model_id).bind(2, r.device).bind(3, r.kind).bind(4, r.latency_ms);
    q.bind(5, r.mean_ms).bind(6, r.median_ms).bind(7, r.min_ms).bind(8, r.repetitions);
    q.bind(9, r.source).run();
  });
}

std::optional<LatencyRow> Store::latency(int64_t model_id, std::string_view device,
                                         std::string_view kind) {
  Stmt q(db_,
         (std::string("SELECT ") + kLatencyCols +
          " FROM latencies WHERE model_id = ? AND device = ? AND kind = ?")
             .c_str(),
         path_);
  q.bind(1, model_id).bind(2, device).bind(3, kind);
  if (!q.step()) return std::nullopt;
  return read_latency(q);
}

std::vector<LatencyRow> Store::latencies(std::string_view device) {
  Stmt q(db_,
         (std::string("SELECT ") + kLatencyCols +
          " FROM latencies WHERE ? = '' OR device = ? ORDER BY model_id, device, kind")
             .c_str(),
         path_);
  q.bind(1, device).bind(2, device);
  std::vector<LatencyRow> out;
  while (q.step()) out.push_back(read_latency(q));
  return out;
}

std::vector<std::string> Store::devices() {
  Stmt q(db_, "SELECT DISTINCT device FROM latencies ORDER BY device", path_);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

// Runs ----------------------------------------------------------------------------------------

namespace {
std::string run_cols(bool with_weights) {
  return std::string(
             "id, key, model_id, data, recipe_json, seed, test_accuracy, val_accuracy, "
             "train_seconds, record_json, checkpoint_path") +
         (with_weights ? ", params, state" : "");
}
RunRow read_run(Stmt& q, bool with_weights) {
  RunRow r;
  r.id = q.i64(0);
  r.key = q.text(1);
  r.model_id = q.i64(2);
  r.data = q.text(3);
  r.recipe_json = q.text(4);
  r.seed = uint64_t(q.i64(5));
  r.test_accuracy = q.f64(6);
  r.val_accuracy = q.f64(7);
  r.train_seconds = q.f64(8);
  r.record_json = q.text(9);
  r.checkpoint_path = q.text(10);
  if (with_weights) {
    r.params = q.floats(11);
    r.state = q.floats(12);
  }
  return r;
}
}  // namespace

int64_t Store::put_run(const RunRow& r) {
  IOTNAS_ASSERT(!r.key.empty(), "training run without a key");
  int64_t id = 0;
  transaction([&] {
    if (auto old = run_by_key(r.key)) {
      id = old->id;
      return;
    }
    Stmt q(db_,
           "INSERT INTO runs (key, model_id, data, recipe_json, seed, test_accuracy, val_accuracy, "
           "train_seconds, record_json, params, state, checkpoint_path) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           path_);
    q.bind(1, r.key).bind(2, r.model_id).bind(3, r.data).bind(4, r.recipe_json).bind(5, r.seed);
    q.bind(6, r.test_accuracy).bind(7, r.val_accuracy).bind(8, r.train_seconds);
    q.bind(9, r.record_json).bind_floats(10, r.params).bind_floats(11, r.state);
    q.bind(12, r.checkpoint_path).run();
    id = sqlite3_last_insert_rowid(db_);
  });
  return id;
}

std::optional<RunRow> Store::run(int64_t id, bool with_weights) {
  Stmt q(db_, ("SELECT " + run_cols(with_weights) + " FROM runs WHERE id = ?").c_str(), path_);
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return read_run(q, with_weights);
}

std::optional<RunRow> Store::run_by_key(std::string_view key, bool with_weights) {
  Stmt q(db_, ("SELECT " + run_cols(with_weights) + " FROM runs WHERE key = ?").c_str(), path_);
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return read_run(q, with_weights);
}

std::vector<RunRow> Store::runs(bool with_weights) {
  Stmt q(db_, ("SELECT " + run_cols(with_weights) + " FROM runs ORDER BY id").c_str(), path_);
  std::vector<RunRow> out;
  while (q.step()) out.push_back(read_run(q, with_weights));
  return out;
}

// Accuracies and sweeps -----------------------------------------------------------------------

void Store::put_accuracy(const AccuracyRow& r) {
  transaction([&] {
    Stmt q(db_, "INSERT OR IGNORE INTO accuracies VALUES (?, ?, ?, ?, ?, ?, ?, ?)", path_);
    q.bind(1, r.run_id).bind(2, r.eval_key).bind(3, r.w).bind(4, r.t).bind(5, r.accuracy);
    q.bind(6, r.weight_bytes).bind(7, r.images).bind(8, r.seconds).run();
  });
}

bool Store::has_accuracy(int64_t run_id, std::string_view eval_key, int w, int t) {
  Stmt q(db_, "SELECT 1 FROM accuracies WHERE run_id = ? AND eval_key = ? AND w = ? AND t = ?",
         path_);
  q.bind(1, run_id).bind(2, eval_key).bind(3, w).bind(4, t);
  return q.step();
}

std::vector<AccuracyRow> Store::accuracies(int64_t run_id, std::string_view eval_key) {
  Stmt q(db_,
         "SELECT run_id, eval_key, w, t, accuracy, weight_bytes, images, seconds FROM accuracies "
         "WHERE (? = 0 OR run_id = ?) AND (? = '' OR eval_key = ?) ORDER BY run_id, eval_key, w, t",
         path_);
  q.bind(1, run_id).bind(2, run_id).bind(3, eval_key).bind(4, eval_key);
  std::vector<AccuracyRow> out;
  while (q.step()) {
    AccuracyRow r;
    r.run_id = q.i64(0);
    r.eval_key = q.text(1);
    r.w = int(q.i64(2));
    r.t = int(q.i64(3));
    r.accuracy = q.f64(4);
    r.weight_bytes = q.i64(5);
    r.images = q.i64(6);
    r.seconds = q.f64(7);
    out.push_back(std::move(r));
  }
  return out;
}

namespace {
SweepRow read_sweep(Stmt& q) {
  SweepRow r;
  r.run_id = q.i64(0);
  r.eval_key = q.text(1);
  r.float32_accuracy = q.f64(2);
  r.images = q.i64(3);
  r.inference_params = q.i64(4);
  r.best_w = int(q.i64(5));
  r.best_t = int(q.i64(6));
  r.tolerance = q.f64(7);
  r.seconds = q.f64(8);
  return r;
}
}  // namespace

void Store::put_sweep(const SweepRow& r) {
  transaction([&] {
    Stmt q(db_, "INSERT OR IGNORE INTO sweeps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", path_);
    q.bind(1, r.run_id).bind(2, r.eval_key).bind(3, r.float32_accuracy).bind(4, r.images);
    q.bind(5, r.inference_params).bind(6, r.best_w).bind(7, r.best_t).bind(8, r.tolerance);
    q.bind(9, r.seconds).run();
  });
}

std::optional<SweepRow> Store::sweep(int64_t run_id, std::string_view eval_key) {
  Stmt q(db_, "SELECT * FROM sweeps WHERE run_id = ? AND eval_key = ?", path_);
  q.bind(1, run_id).bind(2, eval_key);
  if (!q.step()) return std::nullopt;
  return read_sweep(q);
}

std::vector<SweepRow> Store::sweeps() {
  Stmt q(db_, "SELECT * FROM sweeps ORDER BY run_id, eval_key", path_);
  std::vector<SweepRow> out;
  while (q.step()) out.push_back(read_sweep(q));
  return out;
}

// Fronts --------------------------------------------------------------------------------------

void Store::replace_front(std::string_view name, std::string_view cost,
                          const std::vector<FrontPoint>& points) {
  transaction([&] {
    Stmt del(db_, "DELETE FROM fronts WHERE name = ?", path_);
    del.bind(1, name).run();
    Stmt ins(db_, "INSERT INTO fronts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", path_);
    for (size_t i = 0; i < points.size(); ++i) {
      const FrontPoint& p = points[i];
      ins.reset();
      ins.bind(1, name).bind(2, int64_t(i)).bind(3, cost).bind(4, p.run_id).bind(5, p.w);
      ins.bind(6, p.t).bind(7, p.accuracy).bind(8, p.cost).run();
    }
  });
}

std::vector<FrontPoint> Store::front(std::string_view name) {
  Stmt q(db_, "SELECT run_id, w, t, accuracy, cost FROM fronts WHERE name = ? ORDER BY position",
         path_);
  q.bind(1, name);
  std::vector<FrontPoint> out;
  while (q.step()) out.push_back({q.i64(0), int(q.i64(1)), int(q.i64(2)), q.f64(3), q.f64(4)});
  return out;
}

std::vector<std::string> Store::front_names() {
  Stmt q(db_, "SELECT DISTINCT name FROM fronts ORDER BY name", path_);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

// Artifacts -----------------------------------------------------------------------------------

void Store::put_artifact(std::string_view kind, std::string_view key, std::string_view json) {
  transaction([&] {
    Stmt q(db_, "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?)", path_);
    q.bind(1, kind).bind(2, key).bind(3, json).run();
  });
}

std::optional<std::string> Store::artifact(std::string_view kind, std::string_view key) {
  Stmt q(db_, "SELECT json FROM artifacts WHERE kind = ? AND key = ?", path_);
  q.bind(1, kind).bind(2, key);
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

std::vector<std::string> Store::artifact_keys(std::string_view kind) {
  Stmt q(db_, "SELECT key FROM artifacts WHERE kind = ? ORDER BY key", path_);
  q.bind(1, kind);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

// Checks --------------------------------------------------------------------------------------

int64_t Store::count(std::string_view table) {
  static const char* known[] = {"meta",       "laws",   "models", "latencies", "runs",
                                "accuracies", "sweeps", "fronts", "artifacts"};
  bool ok = false;
  for (const char* k : known) ok |= table == k;
  if (!ok) fail("no table '", table, "' in the experiment store");
  Stmt q(db_, ("SELECT count(*) FROM " + std::string(table)).c_str(), path_);
  q.step();
  return q.i64(0);
}

std::string Store::integrity_check() {
  Stmt q(db_, "PRAGMA integrity_check", path_);
  std::string out;
  while (q.step()) {
    if (!out.empty()) out += "; ";
    out += q.text(0);
  }
  if (out != "ok") return out;
  Stmt fk(db_, "PRAGMA foreign_key_check", path_);
  if (fk.step()) return "foreign key violation in table " + fk.text(0);
  return out;
}

}  // namespace iotnas::apps
