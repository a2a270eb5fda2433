#include "apps/store/store.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <utility>

#include "apps/store/sqlite.hpp"
#include "apps/store/tables.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

std::string model_key(std::string_view spec_json) {
  return unit_key({"model", spec_json});
}

Store::Store(Store&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)),
      path_(std::move(o.path_)),
      depth_(o.depth_),
      lock_fd_(std::exchange(o.lock_fd_, -1)) {}

// o takes this store's connection and lock, and lets go of them when it goes.
Store& Store::operator=(Store&& o) noexcept {
  std::swap(db_, o.db_);
  std::swap(path_, o.path_);
  std::swap(depth_, o.depth_);
  std::swap(lock_fd_, o.lock_fd_);
  return *this;
}

// The connection closes (and checkpoints) before the lock goes.
Store::~Store() {
  if (db_) sqlite3_close_v2(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
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

namespace {

// The id of the row whose key is r.key (looked up in t), inserting r when there is none (in one
// transaction).
template <class Row>
int64_t id_of(Store& s, sqlite3* db, const std::string& path, const Table<Row>& t, const Row& r) {
  int64_t id = 0;
  s.transaction([&] {
    const auto old = select_row(db, path, t, "WHERE key = ?1", r.key);
    id = old ? old->id : insert_row(db, path, "INSERT", r);
  });
  return id;
}

const Table<RunRow>& runs_table(bool with_weights) {
  static const Table<RunRow> light = table<RunRow>().without_blobs();
  return with_weights ? table<RunRow>() : light;
}

}  // namespace

std::optional<std::string> Store::meta(std::string_view key) {
  const auto row = select_row(db_, path_, table<MetaRow>(), "WHERE key = ?1", key);
  if (!row) return std::nullopt;
  return row->value;
}

void Store::set_meta(std::string_view key, std::string_view value) {
  insert_row(db_, path_, "INSERT OR REPLACE", MetaRow{std::string(key), std::string(value)});
}

int64_t Store::put_laws(const LawsRow& r) {
  IOTNAS_ASSERT(!r.key.empty(), "laws row without a key");
  return id_of(*this, db_, path_, table<LawsRow>(), r);
}

std::optional<LawsRow> Store::laws_by_key(std::string_view key) {
  return select_row(db_, path_, table<LawsRow>(), "WHERE key = ?1", key);
}

std::vector<LawsRow> Store::all_laws() {
  return select_rows(db_, path_, table<LawsRow>(), "ORDER BY id");
}

int64_t Store::put_model(const ModelRow& r) {
  ModelRow row = r;
  if (row.key.empty()) row.key = model_key(r.spec_json);
  if (row.vars_json.empty()) row.vars_json = "[]";
  return id_of(*this, db_, path_, table<ModelRow>(), row);
}

std::optional<ModelRow> Store::model(int64_t id) {
  return select_row(db_, path_, table<ModelRow>(), "WHERE id = ?1", id);
}

std::optional<ModelRow> Store::model_by_key(std::string_view key) {
  return select_row(db_, path_, table<ModelRow>(), "WHERE key = ?1", key);
}

std::vector<ModelRow> Store::models() {
  return select_rows(db_, path_, table<ModelRow>(), "ORDER BY id");
}

void Store::put_latency(const LatencyRow& r) {
  if (r.kind != "measured" && r.kind != "predicted")
    fail("latency kind '", r.kind, "' is neither 'measured' nor 'predicted'");
  const char* verb = r.kind == "measured" ? "INSERT OR IGNORE" : "INSERT OR REPLACE";
  transaction([&] { insert_row(db_, path_, verb, r); });
}

std::optional<LatencyRow> Store::latency(int64_t model_id, std::string_view device,
                                         std::string_view kind) {
  return select_row(db_, path_, table<LatencyRow>(),
                    "WHERE model_id = ?1 AND device = ?2 AND kind = ?3", model_id, device, kind);
}

std::vector<LatencyRow> Store::latencies(std::string_view device) {
  return select_rows(db_, path_, table<LatencyRow>(),
                     "WHERE ?1 = '' OR device = ?1 ORDER BY model_id, device, kind", device);
}

std::vector<std::string> Store::devices() {
  return texts(db_, "SELECT DISTINCT device FROM latencies ORDER BY device", path_);
}

int64_t Store::put_run(const RunRow& r) {
  IOTNAS_ASSERT(!r.key.empty(), "training run without a key");
  return id_of(*this, db_, path_, runs_table(false), r);
}

std::optional<RunRow> Store::run(int64_t id, bool with_weights) {
  return select_row(db_, path_, runs_table(with_weights), "WHERE id = ?1", id);
}

std::optional<RunRow> Store::run_by_key(std::string_view key, bool with_weights) {
  return select_row(db_, path_, runs_table(with_weights), "WHERE key = ?1", key);
}

std::vector<RunRow> Store::runs(bool with_weights) {
  return select_rows(db_, path_, runs_table(with_weights), "ORDER BY id");
}

void Store::put_accuracy(const AccuracyRow& r) {
  transaction([&] { insert_row(db_, path_, "INSERT OR IGNORE", r); });
}

bool Store::has_accuracy(int64_t run_id, std::string_view eval_key, int w, int t) {
  return !texts(
              db_,
              "SELECT 1 FROM accuracies WHERE run_id = ?1 AND eval_key = ?2 AND w = ?3 AND t = ?4",
              path_, run_id, eval_key, w, t)
              .empty();
}

std::vector<AccuracyRow> Store::accuracies(int64_t run_id, std::string_view eval_key) {
  return select_rows(db_, path_, table<AccuracyRow>(),
                     "WHERE (?1 = 0 OR run_id = ?1) AND (?2 = '' OR eval_key = ?2) "
                     "ORDER BY run_id, eval_key, w, t",
                     run_id, eval_key);
}

void Store::put_sweep(const SweepRow& r) {
  transaction([&] { insert_row(db_, path_, "INSERT OR IGNORE", r); });
}

std::optional<SweepRow> Store::sweep(int64_t run_id, std::string_view eval_key) {
  return select_row(db_, path_, table<SweepRow>(), "WHERE run_id = ?1 AND eval_key = ?2", run_id,
                    eval_key);
}

std::vector<SweepRow> Store::sweeps() {
  return select_rows(db_, path_, table<SweepRow>(), "ORDER BY run_id, eval_key");
}

void Store::replace_front(std::string_view name, std::string_view cost,
                          const std::vector<FrontPoint>& points) {
  transaction([&] {
    Stmt(db_, "DELETE FROM fronts WHERE name = ?1", path_).bind_all(name).run();
    for (size_t i = 0; i < points.size(); ++i) {
      const FrontRow row{std::string(name), int64_t(i), std::string(cost), points[i]};
      insert_row(db_, path_, "INSERT", row);
    }
  });
}

std::vector<FrontPoint> Store::front(std::string_view name) {
  std::vector<FrontPoint> out;
  for (const FrontRow& r :
       select_rows(db_, path_, table<FrontRow>(), "WHERE name = ?1 ORDER BY position", name))
    out.push_back(r.point);
  return out;
}

std::vector<std::string> Store::front_names() {
  return texts(db_, "SELECT DISTINCT name FROM fronts ORDER BY name", path_);
}

void Store::put_artifact(std::string_view kind, std::string_view key, std::string_view json) {
  const ArtifactRow row{std::string(kind), std::string(key), std::string(json)};
  transaction([&] { insert_row(db_, path_, "INSERT OR REPLACE", row); });
}

std::optional<std::string> Store::artifact(std::string_view kind, std::string_view key) {
  const auto row =
      select_row(db_, path_, table<ArtifactRow>(), "WHERE kind = ?1 AND key = ?2", kind, key);
  if (!row) return std::nullopt;
  return row->json;
}

std::vector<std::string> Store::artifact_keys(std::string_view kind) {
  return texts(db_, "SELECT key FROM artifacts WHERE kind = ?1 ORDER BY key", path_, kind);
}

void Store::remove_artifact(std::string_view kind, std::string_view key) {
  transaction([&] {
    Stmt(db_, "DELETE FROM artifacts WHERE kind = ?1 AND key = ?2", path_)
        .bind_all(kind, key)
        .run();
  });
}

int64_t Store::count(std::string_view name) {
  bool known = false;
  std::apply([&](const auto&... t) { ((known |= name == t.name()), ...); }, kTables);
  if (!known) fail("no table '", name, "' in the experiment store");
  Stmt q(db_, "SELECT count(*) FROM " + std::string(name), path_);
  q.step();
  return q.get<int64_t>(0);
}

std::string Store::integrity_check() {
  std::string out;
  for (const std::string& finding : texts(db_, "PRAGMA integrity_check", path_))
    out += (out.empty() ? "" : "; ") + finding;
  if (out != "ok") return out;
  const auto fk = texts(db_, "PRAGMA foreign_key_check", path_);
  if (!fk.empty()) return "foreign key violation in table " + fk[0];
  return out;
}

}  // namespace iotnas::apps
