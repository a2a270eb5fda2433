// The experiment store (DESIGN.md section 7): one SQLite database per run directory,
// DIR/iotnas.sqlite, schema and the layout of apps/store/ in docs/store.md. Every unit of work (a
// law set, a model, a latency, a training run, one format's accuracy, a finished sweep, a front) is
// written by one call in its own transaction and keyed by what determines it (unit_key), with
// UNIQUE constraints, so a killed run leaves a consistent database and a rerun skips finished units
// instead of repeating them.
//
// Use from the pipeline:
//   Store store = Store::open(dir);                       // creates DIR and the schema
//   const std::string key = unit_key({spec_json, data, recipe_json, std::to_string(seed)});
//   if (auto run = store.run_by_key(key)) { ... reuse run->id ... }
//   else { train ...; store.put_run(row); }                // committed at once
//   if (!store.has_accuracy(run_id, eval_key, w, t)) { evaluate; store.put_accuracy(row); }
// Calls are not thread-safe: use one Store from one thread. One process writes a store at a time
// (open() locks it); readers (open_readonly(), e.g. `iotnas front`) open the same file while a run
// writes it (SQLite's WAL mode).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/graph.hpp"
#include "engine/util/hash.hpp"

struct sqlite3;

namespace iotnas::apps {

inline constexpr int kStoreSchemaVersion = 1;
inline constexpr const char* kStoreFile = "iotnas.sqlite";

// A schema change: `sql` (one or more statements) brings a store of version `version - 1` to
// `version`. The store's own list is in apps/store/open.cpp.
struct StoreMigration {
  int version;
  const char* sql;
};

// A law set learned for one (space, metric, window).
struct LawsRow {
  int64_t id = 0;
  std::string key;        // unit_key of (space, metric, window, GA config, seed, input shape)
  std::string space;      //
  std::string metric;     // "params" or "flops"
  double window_lo = 0;   // metric units
  double window_hi = 0;   //
  std::string coverage;   // "inside", "partial" or "unreachable"
  std::string laws_json;  // a laws file (search::laws_to_json); "" when unreachable
  double in_window = 0;   // share of validation samples inside the window
  double seconds = 0;     // GA + sampling wall time
};

// A model architecture with its analytic properties. Keyed by its spec.
struct ModelRow {
  int64_t id = 0;
  std::string key;        // unit_key of the spec JSON (model_key)
  std::string space;      // "" for a model not from a space (e.g. a reference CNN)
  std::string name;       // the spec's name, e.g. "plain[8,3,3,...]"
  std::string vars_json;  // the variable vector as a JSON array; "[]" when none
  std::string spec_json;  // engine spec (iotnas-model/1)
  Analytics analytics;    // of the training model (inference_params: batch norm folded)
};

// A latency of the float32 model at batch 1 on a device (DESIGN.md section 6).
struct LatencyRow {
  int64_t model_id = 0;
  std::string device;     // profile's device name, e.g. "this-machine" or "raspberry-pi-4"
  std::string kind;       // "measured" or "predicted"
  double latency_ms = 0;  // the value used: the median when measured, the prediction otherwise
  double mean_ms = 0;     // measured only (0 for predictions)
  double median_ms = 0;   //
  double min_ms = 0;      //
  int repetitions = 0;    //
  std::string source;     // measured: "" or profile file; predicted: the latency model's name
};

// A finished training run of a model: its key is unit_key(spec, data, recipe, seed).
struct RunRow {
  int64_t id = 0;
  std::string key;
  int64_t model_id = 0;
  std::string data;         // dataset as --data names it, e.g. "fashion-mnist"
  std::string recipe_json;  // what determines the training (epochs, batch, optimizer, ...)
  uint64_t seed = 0;
  double test_accuracy = 0;  // float32, whole test split (fraction)
  double val_accuracy = -1;  // -1: no validation split
  double train_seconds = 0;
  std::string record_json;  // the trainer's history etc. ("" for none)
  // Weights: float32 in the graph's layout (training model, batch norm not folded). Empty when
  // read without weights or when the run keeps its weights in checkpoint_path instead.
  std::vector<float> params;
  std::vector<float> state;
  std::string checkpoint_path;  // "" or a checkpoint file (engine/checkpoint.hpp)
};

// One format's accuracy of a trained model on an evaluation set.
struct AccuracyRow {
  int64_t run_id = 0;
  std::string eval_key;  // unit_key of the evaluation set (data, split, subset size, seed)
  int w = 8, t = 23;     // T(w,t)
  double accuracy = 0;   // fraction
  int64_t weight_bytes = 0;
  int64_t images = 0;
  double seconds = 0;
};

// A finished precision sweep (written after all its AccuracyRows).
struct SweepRow {
  int64_t run_id = 0;
  std::string eval_key;
  double float32_accuracy = 0;  // without any rounding
  int64_t images = 0;
  int64_t inference_params = 0;
  int best_w = 0, best_t = 0;  // 0, 0: no format within tolerance
  double tolerance = 0;
  double seconds = 0;
};

// A point of a stored Pareto front.
struct FrontPoint {
  int64_t run_id = 0;
  int w = 8, t = 23;
  double accuracy = 0;
  double cost = 0;  // in the front's cost unit (weight bytes or ms)
};

class Store {
 public:
  // Opens DIR/iotnas.sqlite for writing, creating DIR and an empty store when `create` (else a
  // missing store is an error saying to run `iotnas run` first). One writer per store: the lock
  // file DIR/iotnas.sqlite.lock (lock.hpp) is held until the Store goes, and a second writer gets
  // an error naming the first. Before anything is written, the store is checked (check.hpp:
  // SQLite's quick check, foreign keys, every table and column, the schema version): the file is
  // refused untouched, with an iotnas::Error, when it is not an SQLite database, not an iotnas
  // store, damaged (the message says how to recover it), or of a schema version newer than
  // kStoreSchemaVersion or unknown. A store of an older version is migrated first: copied to
  // DIR/iotnas.sqlite.vN.bak, migrated in one transaction, and the copy removed once that commits;
  // a failed migration leaves the store unchanged and the copy in place.
  static Store open(const std::string& dir, bool create = true);
  // The same with another list of migrations (for tests): migrations[k] brings version k + 1 to
  // k + 2, and a new store is created at version migrations.size() + 1.
  static Store open(const std::string& dir, bool create,
                    std::span<const StoreMigration> migrations);
  // Opens an existing store for reading only: never creates, locks or writes it, so it reads a
  // store while a run writes it, and on read-only media (SQLite's mode=ro, or immutable=1 where
  // the folder lets no -shm file be made). A missing or empty store is an error; the checks are
  // those of open(). A store of an older version is migrated through open() first.
  static Store open_readonly(const std::string& dir);
  static Store open_readonly(const std::string& dir, std::span<const StoreMigration> migrations);
  // The same for another store file than kStoreFile in `dir` (a shard's store, "shards/3.sqlite"
  // is dir "DIR/shards", file "3.sqlite").
  static Store open_file(const std::string& dir, const std::string& file, bool create = true);
  static Store open_readonly_file(const std::string& dir, const std::string& file);
  Store(Store&& other) noexcept;
  Store& operator=(Store&& other) noexcept;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  const std::string& path() const { return path_; }

  // Runs `body` in one transaction (nested put_* calls join it): all of it or nothing.
  void transaction(const std::function<void()>& body);

  // Free-form key/value (schema_version, iotnas_version, created_at are written at creation).
  std::optional<std::string> meta(std::string_view key);
  void set_meta(std::string_view key, std::string_view value);

  // Laws. put_laws ignores a row whose key exists (returns the existing id).
  int64_t put_laws(const LawsRow& row);
  std::optional<LawsRow> laws_by_key(std::string_view key);
  std::vector<LawsRow> all_laws();

  // Models. put_model returns the id of the model with row.key, inserting it when new.
  int64_t put_model(const ModelRow& row);
  std::optional<ModelRow> model(int64_t id);
  std::optional<ModelRow> model_by_key(std::string_view key);
  std::vector<ModelRow> models();

  // Latencies: one per (model, device, kind). A measurement is kept once (a rerun does not
  // re-measure); a prediction is replaced (a refitted latency model updates it).
  void put_latency(const LatencyRow& row);
  std::optional<LatencyRow> latency(int64_t model_id, std::string_view device,
                                    std::string_view kind);
  std::vector<LatencyRow> latencies(std::string_view device = "");  // "" = every device
  std::vector<std::string> devices();

  // Training runs. put_run ignores a row whose key exists (returns the existing id).
  int64_t put_run(const RunRow& row);
  std::optional<RunRow> run(int64_t id, bool with_weights = true);
  std::optional<RunRow> run_by_key(std::string_view key, bool with_weights = false);
  std::vector<RunRow> runs(bool with_weights = false);

  // Accuracies per format. put_accuracy ignores an existing (run, eval_key, w, t).
  void put_accuracy(const AccuracyRow& row);
  bool has_accuracy(int64_t run_id, std::string_view eval_key, int w, int t);
  // Every row, or those of one run (run_id > 0) and/or one eval set (eval_key != "").
  std::vector<AccuracyRow> accuracies(int64_t run_id = 0, std::string_view eval_key = "");

  // Finished sweeps. put_sweep ignores an existing (run, eval_key).
  void put_sweep(const SweepRow& row);
  std::optional<SweepRow> sweep(int64_t run_id, std::string_view eval_key);
  std::vector<SweepRow> sweeps();

  // Fronts, by name (e.g. "memory:float32", "latency:this-machine"): replace_front swaps the
  // whole front in one transaction.
  void replace_front(std::string_view name, std::string_view cost,
                     const std::vector<FrontPoint>& points);
  std::vector<FrontPoint> front(std::string_view name);
  std::vector<std::string> front_names();

  // Artifacts: JSON documents by (kind, key), e.g. the run config, a device profile, a latency
  // model fit, search statistics. put_artifact replaces.
  void put_artifact(std::string_view kind, std::string_view key, std::string_view json);
  std::optional<std::string> artifact(std::string_view kind, std::string_view key);
  std::vector<std::string> artifact_keys(std::string_view kind);
  void remove_artifact(std::string_view kind, std::string_view key);

  // Rows per table, for tests and the report ("models" -> 12, ...).
  int64_t count(std::string_view table);
  // "ok", or SQLite's PRAGMA integrity_check findings joined by "; ".
  std::string integrity_check();

 private:
  Store() = default;
  static Store open_at(const std::string& dir, const std::string& file, bool create,
                       std::span<const StoreMigration> migrations);
  static Store open_readonly_at(const std::string& dir, const std::string& file,
                                std::span<const StoreMigration> migrations);
  // Opening (open.cpp): whether path_ exists (failing when it is missing and !create, or no
  // file); opening the connection; the read-only one; the schema version (0: an empty database).
  bool find_file(const std::string& dir, bool create);
  void connect(const char* name, int flags);
  void connect_readonly();
  int identify(int latest);
  // The writer's part after connecting: identify, check, then create, migrate or set the pragmas.
  void prepare(int latest, std::span<const StoreMigration> migrations);
  void initialise(int version);  // schema and meta rows, in one transaction
  void migrate(int from, std::span<const StoreMigration> migrations);
  sqlite3* db_ = nullptr;
  std::string path_;
  int depth_ = 0;     // transaction nesting
  int lock_fd_ = -1;  // the writer's lock (lock.hpp); -1 when read-only
};

// The key of a model: unit_key of its spec JSON.
std::string model_key(std::string_view spec_json);

}  // namespace iotnas::apps
