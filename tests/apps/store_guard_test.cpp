// The store guards itself: a damaged file (a bad page, a dropped table or column, a row pointing
// at a deleted one, a value of the wrong type) is refused untouched with the way to recover it;
// readers never create, lock or write; one writer per store file, its lock dying with its process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "apps/store/lock.hpp"
#include "apps/store/store.hpp"
#include "kernels/base/error.hpp"
#include "tamper.hpp"
#include "test_util.hpp"

namespace iotnas::apps {
namespace {

namespace fs = std::filesystem;
using test::read_bytes;
using test::TempDir;

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// The message of the Error that f throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A store with `n` models, each with a training run (weights included) and one accuracy.
void fill(const std::string& dir, int n) {
  Store s = Store::open(dir);
  for (int i = 1; i <= n; ++i) {
    ModelRow m;
    m.space = "plain";
    m.name = "m" + std::to_string(i);
    m.spec_json = R"({"name":")" + m.name + R"("})";
    const int64_t id = s.put_model(m);
    RunRow r;
    r.key = unit_key({"run", std::to_string(i)});
    r.model_id = id;
    r.test_accuracy = 0.5;
    r.params.assign(300, float(i));
    const int64_t rid = s.put_run(r);
    s.put_accuracy({rid, "e", 8, 23, 0.5, 1, 1, 0});
  }
}

using test::tamper;

// Opening the store for writing and for reading both fail with a message holding `what` and the
// recovery command, and leave the file as it was.
void expect_refused_untouched(const TempDir& dir, const std::string& what) {
  const fs::path file = dir.path / kStoreFile;
  const std::string before = read_bytes(file);
  for (const bool write : {true, false}) {
    const std::string msg = error_of([&] {
      if (write) {
        Store::open(dir.str(), false);
      } else {
        Store::open_readonly(dir.str());
      }
    });
    EXPECT_NE(msg.find(file.string() + " is damaged ("), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_NE(msg.find("sqlite3 '" + file.string() + "' .recover | sqlite3 '"), std::string::npos)
        << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(read_bytes(file), before) << (write ? "writer" : "reader") << " changed the file";
  }
}

TEST(StoreGuard, RefusesADamagedLastPageUntouched) {
  TempDir dir;
  fill(dir.str(), 40);
  const fs::path file = dir.path / kStoreFile;
  const auto size = fs::file_size(file);
  ASSERT_GT(size, 8 * 4096u);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(size - 4096));
    const std::string junk(4096, '\xA5');
    f.write(junk.data(), std::streamsize(junk.size()));
  }
  expect_refused_untouched(dir, "");
}

TEST(StoreGuard, RefusesADroppedTableOrColumnUntouched) {
  TempDir dir;
  fill(dir.str(), 3);
  tamper(dir.path / kStoreFile, "DROP TABLE sweeps");
  expect_refused_untouched(dir, "table sweeps is missing");
  tamper(dir.path / kStoreFile,
         "CREATE TABLE sweeps (run_id INTEGER, eval_key TEXT, float32_accuracy REAL, images "
         "INTEGER, inference_params INTEGER, best_w INTEGER, best_t INTEGER, tolerance REAL, "
         "seconds REAL); ALTER TABLE runs DROP COLUMN checkpoint_path");
  expect_refused_untouched(dir, "table runs has no column checkpoint_path");
}

TEST(StoreGuard, RefusesARowPointingAtADeletedOneNamingIt) {
  TempDir dir;
  fill(dir.str(), 3);
  tamper(dir.path / kStoreFile, "PRAGMA foreign_keys = OFF; DELETE FROM models WHERE id = 2");
  expect_refused_untouched(dir, "table runs, row 2: its model_id 2 names no row of table models");
}

TEST(StoreGuard, AValueOfTheWrongTypeIsAnErrorNamingTableColumnAndKey) {
  TempDir dir;
  fill(dir.str(), 3);
  tamper(dir.path / kStoreFile,
         "UPDATE runs SET test_accuracy = 'abc' WHERE id = 2; "
         "UPDATE accuracies SET images = 'many' WHERE run_id = 3; "
         "UPDATE accuracies SET accuracy = 1 WHERE run_id = 1");  // REAL affinity: 1.0
  Store s = Store::open_readonly(dir.str());
  std::string msg = error_of([&] { s.runs(); });
  EXPECT_NE(msg.find(s.path() + " is damaged (table runs, column test_accuracy of the row with id "
                                "= 2 holds TEXT 'abc' where the schema wants REAL)"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find(".recover"), std::string::npos) << msg;
  msg = error_of([&] { s.accuracies(); });
  EXPECT_NE(msg.find("table accuracies, column images of the row with run_id = 3, eval_key = "
                     "'e', w = 8, t = 23 holds TEXT 'many' where the schema wants INTEGER"),
            std::string::npos)
      << msg;
  EXPECT_EQ(s.accuracies(1).at(0).accuracy, 1.0);
  EXPECT_EQ(s.run(1)->params.size(), 300u);
}

TEST(StoreGuard, ReadersNeverCreateOrWrite) {
  TempDir dir(false);
  // Missing: an error, no folder.
  EXPECT_NE(error_of([&] { Store::open_readonly(dir.str()); }).find("no experiment store"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir.path));
  // Empty (0 bytes): an error, the file stays empty and alone.
  fs::create_directories(dir.path);
  std::ofstream(dir.path / kStoreFile).close();
  const std::string msg = error_of([&] { Store::open_readonly(dir.str()); });
  EXPECT_NE(msg.find("is empty (0 bytes)"), std::string::npos) << msg;
  EXPECT_EQ(fs::file_size(dir.path / kStoreFile), 0u);
  EXPECT_EQ(files_in(dir.path), std::set<std::string>{kStoreFile});
  // A store: read while a writer holds it, without a lock file of its own or any change.
  fs::remove(dir.path / kStoreFile);
  fill(dir.str(), 2);
  fs::remove(dir.path / (std::string(kStoreFile) + ".lock"));
  const std::string before = read_bytes(dir.path / kStoreFile);
  {
    Store reader = Store::open_readonly(dir.str());
    EXPECT_EQ(reader.count("runs"), 2);
    EXPECT_THROW(reader.set_meta("x", "y"), Error);  // read-only
    EXPECT_FALSE(fs::exists(dir.path / (std::string(kStoreFile) + ".lock")));
  }
  EXPECT_EQ(read_bytes(dir.path / kStoreFile), before);
}

// A reader of a store of an older schema version has it migrated (as a writer would) first.
TEST(StoreGuard, AReaderHasAnOlderStoreMigratedFirst) {
  TempDir dir;
  fs::copy_file(fs::path(IOTNAS_SOURCE_DIR) / "tests" / "apps" / "data" / "store_v1.db",
                dir.path / kStoreFile);
  const StoreMigration to2[] = {
      {2, "ALTER TABLE artifacts ADD COLUMN note TEXT NOT NULL DEFAULT ''"}};
  Store s = Store::open_readonly(dir.str(), to2);
  EXPECT_EQ(s.meta("schema_version"), "2");
  EXPECT_EQ(s.count("models"), 2);
  EXPECT_THROW(s.set_meta("x", "y"), Error);
  EXPECT_FALSE(fs::exists(dir.path / (std::string(kStoreFile) + ".v1.bak")));
}

// What a closed store's file holds is all of it: SQLite's immutable mode (the readers' fallback
// where no -shm file can be made) reads every row.
TEST(StoreGuard, AClosedStoreReadsWholeAsImmutable) {
  TempDir dir;
  fill(dir.str(), 5);
  sqlite3* db = nullptr;
  const std::string uri = "file:" + (dir.path / kStoreFile).string() + "?immutable=1";
  ASSERT_EQ(sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr),
            SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM accuracies", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 5);
  sqlite3_finalize(q);
  sqlite3_close(db);
  EXPECT_FALSE(fs::exists(dir.path / (std::string(kStoreFile) + "-shm")));
}

// "pid@host" of this process, as the lock file holds it.
std::string me() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::to_string(getpid()) + "@" + host;
}

// Runs f in a child process; its exit status (0: f returned true).
int in_child(const std::function<bool()>& f) {
  const pid_t pid = fork();
  if (pid == 0) {
    bool ok = false;
    try {
      ok = f();
    } catch (...) {
    }
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(StoreGuard, OneWriterPerStoreReadersAreNotBlocked) {
  TempDir dir;
  fill(dir.str(), 2);
  const std::string holder = me();
  {
    Store writer = Store::open(dir.str(), false);
    EXPECT_EQ(in_child([&] {
                const std::string msg = error_of([&] { Store::open(dir.str(), false); });
                std::fprintf(stderr, "second writer: %s\n", msg.c_str());
                return msg.find(writer.path() + " is being written by process " + holder) !=
                       std::string::npos;
              }),
              0);
    EXPECT_EQ(in_child([&] { return Store::open_readonly(dir.str()).count("runs") == 2; }), 0);
    writer.set_meta("still", "mine");
  }
  // Let go when the store goes.
  EXPECT_EQ(in_child([&] {
              Store::open(dir.str(), false).set_meta("next", "writer");
              return true;
            }),
            0);
  // The lock is per store file: another file in the same folder has its own.
  const int a = lock_store((dir.path / "shard-1.sqlite").string());
  const int b = lock_store((dir.path / "shard-2.sqlite").string());
  EXPECT_GE(a, 0);
  EXPECT_GE(b, 0);
  close(a);
  close(b);
}

TEST(StoreGuard, TheLockDiesWithItsProcess) {
  TempDir dir;
  fill(dir.str(), 1);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    Store s = Store::open(dir.str(), false);
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_NE(error_of([&] { Store::open(dir.str(), false); }).find(std::to_string(pid) + "@"),
            std::string::npos);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  Store s = Store::open(dir.str(), false);
  EXPECT_EQ(s.count("runs"), 1);
  EXPECT_EQ(s.integrity_check(), "ok");
}

}  // namespace
}  // namespace iotnas::apps
