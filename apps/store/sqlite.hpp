// SQLite for the experiment store: a prepared statement and exec. Every error is an iotnas::Error
// whose message starts with the store's file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace iotnas::apps {

// One prepared statement; binds by position (1-based) and steps. `path` must outlive it.
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql, const std::string& path);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, int v) { return bind(i, int64_t(v)); }
  Stmt& bind(int i, uint64_t v) { return bind(i, int64_t(v)); }  // read back by get(uint64_t&)
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::vector<float>& v);  // a BLOB of float32; NULL when empty
  // Binds args to ?1, ?2, ... in order.
  template <class... Args>
  Stmt& bind_all(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
    return *this;
  }

  const std::string& path() const { return path_; }

  // true: a row is ready; false: done.
  bool step();
  void run() {
    while (step()) {
    }
  }

  // Column c (0-based) of the row in hand; NULL reads as 0, "" or no floats.
  void get(int c, int64_t& v);
  void get(int c, int& v);
  void get(int c, uint64_t& v);
  void get(int c, double& v);
  void get(int c, std::string& v);
  void get(int c, std::vector<float>& v);
  template <class T>
  T get(int c) {
    T v{};
    get(c, v);
    return v;
  }
  // Whether column c of the row in hand is stored as get(c, T&) expects: an INTEGER for integer
  // types; a REAL or INTEGER for double; TEXT for a string; a BLOB of whole float32s or NULL for
  // floats. (SQLite keeps any type in any column of a table that is not STRICT.)
  template <class T>
  bool holds(int c) {
    const int type = column_type(c);
    if constexpr (std::is_same_v<T, std::string>) {
      return type == kText;
    } else if constexpr (std::is_same_v<T, double>) {
      return type == kReal || type == kInteger;
    } else if constexpr (std::is_same_v<T, std::vector<float>>) {
      return type == kNull || (type == kBlob && column_bytes(c) % sizeof(float) == 0);
    } else {
      return type == kInteger;
    }
  }
  // Column c of the row in hand as SQL shows it: 'text', 12, 0.5, x'..' (at most 40 characters),
  // and its storage class ("TEXT", "INTEGER", "REAL", "BLOB" or "NULL").
  std::string quoted(int c);
  std::string storage_class(int c);

 private:
  // SQLite's storage classes (SQLITE_INTEGER, ...), here to keep sqlite3.h out of this header.
  static constexpr int kInteger = 1, kReal = 2, kText = 3, kBlob = 4, kNull = 5;
  int column_type(int c);
  int column_bytes(int c);
  void check(int rc);
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  const std::string& path_;
};

// Runs one or more statements without results.
void exec(sqlite3* db, std::string_view sql, const std::string& path);

// The rowid of the last row inserted through db.
int64_t last_insert_rowid(sqlite3* db);

// The first column of every row of `sql` as text.
template <class... Args>
std::vector<std::string> texts(sqlite3* db, std::string_view sql, const std::string& path,
                               const Args&... args) {
  Stmt q(db, sql, path);
  q.bind_all(args...);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.get<std::string>(0));
  return out;
}

}  // namespace iotnas::apps
