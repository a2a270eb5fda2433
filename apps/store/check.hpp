// Checking a store before it is used (open.cpp): SQLite's quick check, the foreign keys, and the
// tables and columns of kSchema; and the error of a damaged store, which says how to recover it.
#pragma once

#include <string>

struct sqlite3;

namespace iotnas::apps {

// Throws iotnas::Error: "PATH is damaged (finding) and was left as it is; recover ..." with the
// `sqlite3 .recover` command, and the copy DIR/iotnas.sqlite.vN.bak when there is one.
[[noreturn]] void fail_damaged(const std::string& path, const std::string& finding);

// PRAGMA quick_check: every page, record and index entry count is sound.
void check_pages(sqlite3* db, const std::string& path);

// PRAGMA foreign_key_check: every row that points at another (runs.model_id, ...) finds it. The
// error names the table, the row and the missing key.
void check_foreign_keys(sqlite3* db, const std::string& path);

// Every table and column of kSchema is there with its declared type (a store may have more).
void check_tables(sqlite3* db, const std::string& path);

}  // namespace iotnas::apps
