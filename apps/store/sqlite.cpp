#include "apps/store/sqlite.hpp"

#include <sqlite3.h>

#include <cstring>

#include "kernels/base/error.hpp"

namespace iotnas::apps {

Stmt::Stmt(sqlite3* db, std::string_view sql, const std::string& path) : db_(db), path_(path) {
  if (sqlite3_prepare_v2(db, sql.data(), int(sql.size()), &s_, nullptr) != SQLITE_OK)
    fail(path_, ": SQLite error: ", sqlite3_errmsg(db), " (in: ", sql, ")");
}

Stmt::~Stmt() {
  sqlite3_finalize(s_);
}

Stmt& Stmt::bind(int i, int64_t v) {
  check(sqlite3_bind_int64(s_, i, v));
  return *this;
}

Stmt& Stmt::bind(int i, double v) {
  check(sqlite3_bind_double(s_, i, v));
  return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
  check(sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT));
  return *this;
}

Stmt& Stmt::bind(int i, const std::vector<float>& v) {
  if (v.empty()) {
    check(sqlite3_bind_null(s_, i));
  } else {
    check(sqlite3_bind_blob64(s_, i, v.data(), v.size() * sizeof(float), SQLITE_TRANSIENT));
  }
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(path_, ": SQLite error: ", sqlite3_errmsg(db_),
       rc == SQLITE_BUSY ? " (another process holds the store; wait for it to finish)" : "");
}

void Stmt::get(int c, int64_t& v) {
  v = sqlite3_column_int64(s_, c);
}

void Stmt::get(int c, int& v) {
  v = int(sqlite3_column_int64(s_, c));
}

void Stmt::get(int c, uint64_t& v) {
  v = uint64_t(sqlite3_column_int64(s_, c));
}

void Stmt::get(int c, double& v) {
  v = sqlite3_column_double(s_, c);
}

void Stmt::get(int c, std::string& v) {
  const auto* p = sqlite3_column_text(s_, c);
  v = p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c)) : "";
}

void Stmt::get(int c, std::vector<float>& v) {
  const void* p = sqlite3_column_blob(s_, c);
  const int n = sqlite3_column_bytes(s_, c);
  v.assign(size_t(n) / sizeof(float), 0.f);
  if (p && n) std::memcpy(v.data(), p, v.size() * sizeof(float));
}

static_assert(SQLITE_INTEGER == 1 && SQLITE_FLOAT == 2 && SQLITE_TEXT == 3 && SQLITE_BLOB == 4 &&
              SQLITE_NULL == 5);

int Stmt::column_type(int c) {
  return sqlite3_column_type(s_, c);
}

int Stmt::column_bytes(int c) {
  return sqlite3_column_bytes(s_, c);
}

std::string Stmt::storage_class(int c) {
  static const char* const names[] = {"", "INTEGER", "REAL", "TEXT", "BLOB", "NULL"};
  return names[column_type(c)];
}

std::string Stmt::quoted(int c) {
  const int type = column_type(c);
  if (type == SQLITE_NULL) return "NULL";
  if (type == SQLITE_BLOB) return "a BLOB of " + std::to_string(column_bytes(c)) + " bytes";
  std::string text = get<std::string>(c);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return type == SQLITE_TEXT ? "'" + text + "'" : text;
}

void Stmt::check(int rc) {
  if (rc != SQLITE_OK) fail(path_, ": SQLite bind error: ", sqlite3_errmsg(db_));
}

void exec(sqlite3* db, std::string_view sql, const std::string& path) {
  char* err = nullptr;
  const std::string text(sql);  // sqlite3_exec wants a terminated string
  if (sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    fail(path, ": ", msg);
  }
}

int64_t last_insert_rowid(sqlite3* db) {
  return sqlite3_last_insert_rowid(db);
}

}  // namespace iotnas::apps
