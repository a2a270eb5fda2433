// The store's tables (internal to apps/store/). Each is described once: its CREATE TABLE in
// kSchema (one column or table constraint per line) and fields(row), the row's members in the
// order of its columns. The SELECT and INSERT column lists, binding a row and reading one are
// generated from the two; Table checks, when built, that they agree in number and type.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "apps/store/sqlite.hpp"
#include "apps/store/store.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

// The schema of a new store (version kStoreSchemaVersion). A change here is a change of the schema:
// it needs a migration (open.cpp) that brings an older store to the same tables.
inline constexpr const char* kSchema = R"sql(
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

// Rows of the tables whose public API has no row type.
struct MetaRow {
  std::string key, value;
};
struct FrontRow {
  std::string name;
  int64_t position = 0;  // 0, 1, ... in the order the front was given
  std::string cost_unit;
  FrontPoint point;
};
struct ArtifactRow {
  std::string kind, key, json;
};

// A row's members in the order of its table's columns.
inline auto fields(MetaRow& r) {
  return std::tie(r.key, r.value);
}

inline auto fields(LawsRow& r) {
  return std::tie(r.id, r.key, r.space, r.metric, r.window_lo, r.window_hi, r.coverage, r.laws_json,
                  r.in_window, r.seconds);
}

inline auto fields(ModelRow& r) {
  Analytics& a = r.analytics;
  return std::tie(r.id, r.key, r.space, r.name, r.vars_json, r.spec_json, a.params,
                  a.inference_params, a.flops, a.peak_activation_bytes, a.total_activation_bytes,
                  a.num_layers);
}

inline auto fields(LatencyRow& r) {
  return std::tie(r.model_id, r.device, r.kind, r.latency_ms, r.mean_ms, r.median_ms, r.min_ms,
                  r.repetitions, r.source);
}

inline auto fields(RunRow& r) {
  return std::tie(r.id, r.key, r.model_id, r.data, r.recipe_json, r.seed, r.test_accuracy,
                  r.val_accuracy, r.train_seconds, r.record_json, r.params, r.state,
                  r.checkpoint_path);
}

inline auto fields(AccuracyRow& r) {
  return std::tie(r.run_id, r.eval_key, r.w, r.t, r.accuracy, r.weight_bytes, r.images, r.seconds);
}

inline auto fields(SweepRow& r) {
  return std::tie(r.run_id, r.eval_key, r.float32_accuracy, r.images, r.inference_params, r.best_w,
                  r.best_t, r.tolerance, r.seconds);
}

inline auto fields(FrontRow& r) {
  FrontPoint& p = r.point;
  return std::tie(r.name, r.position, r.cost_unit, p.run_id, p.w, p.t, p.accuracy, p.cost);
}

inline auto fields(ArtifactRow& r) {
  return std::tie(r.kind, r.key, r.json);
}

// One column as kSchema declares it.
struct ColumnSql {
  std::string name;
  std::string type;  // "INTEGER", "REAL", "TEXT" or "BLOB"
  bool row_id;       // INTEGER PRIMARY KEY: SQLite assigns it (the rowid), it is never inserted
  bool key = false;  // part of the table's primary key
};

// The columns of kSchema's table `name`, in order.
const std::vector<ColumnSql>& schema_columns(std::string_view name);

// "a, b, c".
std::string join(const std::vector<std::string_view>& parts);

// Throws the error of a damaged store (check.hpp) for column c of a row of `table` that is not
// stored as its member's type, naming the row by its primary key. `read` says which columns the
// statement q selects, in order.
[[noreturn]] void fail_stored_type(Stmt& q, const char* table,
                                   const std::vector<ColumnSql>& columns,
                                   const std::vector<bool>& read, size_t c);

// The SQL type a member of type T is stored as.
template <class T>
constexpr std::string_view sql_type() {
  if constexpr (std::is_same_v<T, std::string>) {
    return "TEXT";
  } else if constexpr (std::is_same_v<T, double>) {
    return "REAL";
  } else if constexpr (std::is_same_v<T, std::vector<float>>) {
    return "BLOB";
  } else {
    static_assert(std::is_integral_v<T>, "a member type the store cannot keep");
    return "INTEGER";
  }
}

// Calls f(column index, member) for every member of r, in column order.
template <class Row, class F>
void for_each_field(Row& r, F&& f) {
  std::apply(
      [&](auto&... v) {
        size_t c = 0;
        (f(c++, v), ...);
      },
      fields(r));
}

template <class Row>
class Table {
 public:
  explicit Table(const char* name, bool blobs = true)
      : name_(name), columns_(&schema_columns(name)), blobs_(blobs) {
    Row r;
    size_t n = 0;
    for_each_field(r, [&](size_t c, auto& v) {
      using T = std::remove_cvref_t<decltype(v)>;
      IOTNAS_ASSERT(c < columns_->size() && (*columns_)[c].type == sql_type<T>(),
                    std::string("fields() of table ") + name + " disagree with kSchema at column " +
                        std::to_string(c));
      ++n;
    });
    IOTNAS_ASSERT(n == columns_->size(),
                  std::string("fields() of table ") + name + " miss columns");
  }

  const char* name() const { return name_; }
  // The same table, read without its BLOB columns (those members are left empty).
  Table without_blobs() const { return Table(name_, false); }

  // "SELECT c1, c2, ... FROM name tail": the columns read.
  std::string select_sql(std::string_view tail) const {
    std::vector<std::string_view> names;
    for (size_t c = 0; c < columns_->size(); ++c)
      if (is_read(c)) names.push_back((*columns_)[c].name);
    return "SELECT " + join(names) + " FROM " + name_ + " " + std::string(tail);
  }
  // Reads the row in hand of a select_sql statement; a value of another storage class than its
  // member's (text in a REAL column, say) is an error naming the table, column and key.
  Row read(Stmt& q) const {
    Row r;
    int i = 0;
    for_each_field(r, [&](size_t c, auto& v) {
      if (!is_read(c)) return;
      if (!q.holds<std::remove_cvref_t<decltype(v)>>(i)) {
        std::vector<bool> read(columns_->size());
        for (size_t k = 0; k < read.size(); ++k) read[k] = is_read(k);
        fail_stored_type(q, name_, *columns_, read, c);
      }
      q.get(i++, v);
    });
    return r;
  }
  // "verb INTO name (c1, ...) VALUES (?, ...)" for every column but the rowid.
  std::string insert_sql(std::string_view verb) const {
    std::vector<std::string_view> names, marks;
    for (const ColumnSql& c : *columns_) {
      if (c.row_id) continue;
      names.push_back(c.name);
      marks.push_back("?");
    }
    return std::string(verb) + " INTO " + name_ + " (" + join(names) + ") VALUES (" + join(marks) +
           ")";
  }
  // Binds r to an insert_sql statement (fields() wants a mutable row; binding only reads it).
  void bind(Stmt& q, const Row& r) const {
    int i = 0;
    for_each_field(const_cast<Row&>(r), [&](size_t c, auto& v) {
      if (!(*columns_)[c].row_id) q.bind(++i, v);
    });
  }

 private:
  bool is_read(size_t c) const { return blobs_ || (*columns_)[c].type != "BLOB"; }
  const char* name_;
  const std::vector<ColumnSql>* columns_;
  bool blobs_;
};

// Every table, in kSchema's order.
inline const auto kTables = std::tuple{
    Table<MetaRow>("meta"),         Table<LawsRow>("laws"),    Table<ModelRow>("models"),
    Table<LatencyRow>("latencies"), Table<RunRow>("runs"),     Table<AccuracyRow>("accuracies"),
    Table<SweepRow>("sweeps"),      Table<FrontRow>("fronts"), Table<ArtifactRow>("artifacts")};

template <class Row>
const Table<Row>& table() {
  return std::get<Table<Row>>(kTables);
}

// Rows of table t: `tail` follows "FROM name" (WHERE, ORDER BY), with ?1, ?2, ... bound to args.
template <class Row, class... Args>
std::vector<Row> select_rows(sqlite3* db, const std::string& path, const Table<Row>& t,
                             std::string_view tail, const Args&... args) {
  Stmt q(db, t.select_sql(tail), path);
  q.bind_all(args...);
  std::vector<Row> out;
  while (q.step()) out.push_back(t.read(q));
  return out;
}

// The first row of select_rows (for a tail that names a unique key).
template <class Row, class... Args>
std::optional<Row> select_row(sqlite3* db, const std::string& path, const Table<Row>& t,
                              std::string_view tail, const Args&... args) {
  std::vector<Row> rows = select_rows(db, path, t, std::string(tail) + " LIMIT 1", args...);
  if (rows.empty()) return std::nullopt;
  return std::move(rows[0]);
}

// Inserts r with `verb` ("INSERT", "INSERT OR IGNORE" or "INSERT OR REPLACE"); returns the rowid.
template <class Row>
int64_t insert_row(sqlite3* db, const std::string& path, std::string_view verb, const Row& r) {
  const Table<Row>& t = table<Row>();
  Stmt q(db, t.insert_sql(verb), path);
  t.bind(q, r);
  q.run();
  return last_insert_rowid(db);
}

}  // namespace iotnas::apps
