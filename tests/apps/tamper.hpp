// Damaging a store on purpose, for the tests of how iotnas refuses damaged stores.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

namespace iotnas::test {

// Runs SQL on the store with foreign keys off, as a person with the sqlite3 shell would (the last
// connection: the WAL goes into the file).
inline void tamper(const std::filesystem::path& file, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

}  // namespace iotnas::test
