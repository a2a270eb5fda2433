#include "apps/store/check.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "apps/store/sqlite.hpp"
#include "apps/store/tables.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

namespace fs = std::filesystem;

// The copies a migration leaves beside the store (PATH.vN.bak), newest version first.
std::vector<std::string> backups(const fs::path& store) {
  std::vector<std::string> out;
  const std::string prefix = store.filename().string() + ".v";
  std::error_code ec;
  for (const auto& e :
       fs::directory_iterator(store.parent_path().empty() ? "." : store.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(".bak")) out.push_back(e.path().string());
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

void fail_damaged(const std::string& path, const std::string& finding) {
  const fs::path store(path);
  const std::string recovered = (store.parent_path() / "recovered.sqlite").string();
  const auto copies = backups(store);
  fail(path, " is damaged (", finding,
       ") and was left as it is; recover what is readable with `sqlite3 '", path,
       "' .recover | sqlite3 '", recovered, "'` and move that file to ", path,
       copies.empty() ? "" : ", or restore the copy made before its last migration, " + copies[0]);
}

void check_pages(sqlite3* db, const std::string& path) {
  std::vector<std::string> findings;
  try {
    findings = texts(db, "PRAGMA quick_check", path);
  } catch (const Error&) {
    fail_damaged(path, sqlite3_errmsg(db));
  }
  if (findings != std::vector<std::string>{"ok"})
    fail_damaged(path, findings.empty() ? "no answer from PRAGMA quick_check" : findings[0]);
}

void check_foreign_keys(sqlite3* db, const std::string& path) {
  Stmt q(db, "SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check", path);
  if (!q.step()) return;
  const auto table = q.get<std::string>(0), parent = q.get<std::string>(2);
  const auto rowid = q.get<int64_t>(1), fk = q.get<int64_t>(3);
  Stmt cols(
      db, "SELECT \"from\", coalesce(\"to\", 'key') FROM pragma_foreign_key_list(?1) WHERE id = ?2",
      path);
  cols.bind_all(table, fk);
  std::string from = "?", to = "key";
  if (cols.step()) {
    from = cols.get<std::string>(0);
    to = cols.get<std::string>(1);
  }
  std::string value = "?";
  // `from` comes from SQLite's own schema; it is quoted all the same.
  Stmt v(db, "SELECT quote(\"" + from + "\") FROM \"" + table + "\" WHERE rowid = ?1", path);
  v.bind_all(rowid);
  if (v.step()) value = v.get<std::string>(0);
  fail_damaged(path, "table " + table + ", row " + std::to_string(rowid) + ": its " + from + " " +
                         value + " names no row of table " + parent + " (no " + to + " " + value +
                         ")");
}

void check_tables(sqlite3* db, const std::string& path) {
  std::apply(
      [&](const auto&... t) {
        for (const char* name : {t.name()...}) {
          std::map<std::string, std::string> declared;  // column -> type
          Stmt q(db, "SELECT name, type FROM pragma_table_info(?1)", path);
          q.bind_all(name);
          while (q.step()) declared[q.get<std::string>(0)] = upper(q.get<std::string>(1));
          if (declared.empty()) fail_damaged(path, "table " + std::string(name) + " is missing");
          for (const ColumnSql& c : schema_columns(name)) {
            const auto it = declared.find(c.name);
            if (it == declared.end())
              fail_damaged(path, "table " + std::string(name) + " has no column " + c.name);
            if (it->second != c.type)
              fail_damaged(path, "column " + std::string(name) + "." + c.name + " is " +
                                     it->second + ", not " + c.type);
          }
        }
      },
      kTables);
}

}  // namespace iotnas::apps
