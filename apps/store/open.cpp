// Opening a store. A writer: lock, identify the file, check it (check.hpp), then create the schema,
// migrate an older version, or go on. A reader: open read-only (or immutable), identify, check.
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include "apps/store/check.hpp"
#include "apps/store/lock.hpp"
#include "apps/store/sqlite.hpp"
#include "apps/store/store.hpp"
#include "apps/store/tables.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

// The store's migrations: kMigrations[k] brings version k + 1 to k + 2. To change the schema, add
// one here, raise kStoreSchemaVersion, and change kSchema and fields() (tables.hpp) to match.
constexpr std::array<StoreMigration, 0> kMigrations{};
static_assert(kMigrations.size() == kStoreSchemaVersion - 1);

constexpr const char* kPragmas =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

// The version in meta.schema_version; 0 when it is not a number of 1 or more.
int parse_version(const std::string& text) {
  int v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() && v > 0 ? v : 0;
}

int latest_version(std::span<const StoreMigration> migrations) {
  for (size_t k = 0; k < migrations.size(); ++k)
    IOTNAS_ASSERT(migrations[k].version == int(k) + 2, "store migrations out of order");
  return int(migrations.size()) + 1;
}

// An SQLite URI of a file (for SQLITE_OPEN_URI) with a query such as "mode=ro".
std::string uri(const std::string& path, const char* query) {
  std::string u = "file:";
  for (const char c : std::filesystem::absolute(path).lexically_normal().string()) {
    if (c == '%' || c == '?' || c == '#') {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", unsigned(static_cast<unsigned char>(c)));
      u += hex;
    } else {
      u += c;
    }
  }
  return u + "?" + query;
}

// Counts the tables, and those named meta; SQLITE_ROW on success, else SQLite's error code (the
// first read of a file is where SQLite finds it is no database, or cannot be opened here).
int count_tables(sqlite3* db, int64_t& tables, int64_t& meta_tables) {
  sqlite3_stmt* q = nullptr;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT count(*), count(CASE WHEN name = 'meta' THEN 1 END) FROM "
                              "sqlite_master WHERE type = 'table'",
                              -1, &q, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(q);
  if (rc == SQLITE_ROW) {
    tables = sqlite3_column_int64(q, 0);
    meta_tables = sqlite3_column_int64(q, 1);
  }
  sqlite3_finalize(q);
  return rc;
}

}  // namespace

Store Store::open(const std::string& dir, bool create) {
  return open(dir, create, kMigrations);
}

Store Store::open_readonly(const std::string& dir) {
  return open_readonly(dir, kMigrations);
}

Store Store::open(const std::string& dir, bool create, std::span<const StoreMigration> migrations) {
  return open_at(dir, kStoreFile, create, migrations);
}

Store Store::open_file(const std::string& dir, const std::string& file, bool create) {
  return open_at(dir, file, create, kMigrations);
}

Store Store::open_readonly_file(const std::string& dir, const std::string& file) {
  return open_readonly_at(dir, file, kMigrations);
}

Store Store::open_at(const std::string& dir, const std::string& file, bool create,
                     std::span<const StoreMigration> migrations) {
  namespace fs = std::filesystem;
  const int latest = latest_version(migrations);
  Store s;
  s.path_ = (fs::path(dir) / file).string();
  if (!s.find_file(dir, create)) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("cannot create run directory ", dir, ": ", ec.message());
  }
  s.lock_fd_ = lock_store(s.path_);
  std::error_code ec;
  const bool exists = fs::exists(s.path_, ec);  // again: a writer may have made it meanwhile
  s.connect(s.path_.c_str(), SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE));
  // Until the store has passed its checks, closing it must not write to it either.
  sqlite3_db_config(s.db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  try {
    s.prepare(latest, migrations);
  } catch (...) {
    // Refused: when the write-ahead log holds nothing, closing as usual writes nothing either
    // and removes the -wal and -shm files this open made; else the log stays out of the file.
    std::error_code size_ec;
    if (fs::file_size(s.path_ + "-wal", size_ec) == 0 || size_ec)
      sqlite3_db_config(s.db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
    throw;
  }
  sqlite3_db_config(s.db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  return s;
}

Store Store::open_readonly(const std::string& dir, std::span<const StoreMigration> migrations) {
  return open_readonly_at(dir, kStoreFile, migrations);
}

Store Store::open_readonly_at(const std::string& dir, const std::string& file,
                              std::span<const StoreMigration> migrations) {
  namespace fs = std::filesystem;
  const int latest = latest_version(migrations);
  Store s;
  s.path_ = (fs::path(dir) / file).string();
  s.find_file(dir, false);
  std::error_code ec;
  if (fs::file_size(s.path_, ec) == 0 && !ec)
    fail(s.path_, " is empty (0 bytes): no run has written to it yet; run `iotnas run --out ", dir,
         "` first");
  s.connect_readonly();
  const int version = s.identify(latest);
  if (version == 0)
    fail(s.path_, " holds no tables: no run has written to it yet; run `iotnas run --out ", dir,
         "` first");
  check_pages(s.db_, s.path_);
  check_foreign_keys(s.db_, s.path_);
  if (version < latest) {
    s = Store();
    try {
      Store::open_at(dir, file, false, migrations);
    } catch (const Error& e) {
      fail(e.what(), " (the store is of schema version ", version,
           " and needs a migration before this iotnas reads it; where the run directory cannot be "
           "written, copy it to a place that can)");
    }
    return open_readonly_at(dir, file, migrations);
  }
  check_tables(s.db_, s.path_);
  return s;
}

void Store::prepare(int latest, std::span<const StoreMigration> migrations) {
  const int version = identify(latest);
  if (version == 0) {
    // An empty database: a store whose creation was interrupted before its schema committed.
    initialise(latest);
    return;
  }
  check_pages(db_, path_);
  check_foreign_keys(db_, path_);
  if (version < latest) {
    migrate(version, migrations);
  } else {
    check_tables(db_, path_);
  }
  exec(db_, kPragmas, path_);
}

bool Store::find_file(const std::string& dir, bool create) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool exists = fs::exists(path_, ec);
  if (!exists && !create)
    fail("no experiment store at ", path_, "; run `iotnas run --out ", dir, "` first");
  if (exists && !fs::is_regular_file(path_, ec))
    fail(path_, " is not a file; give a run directory holding an iotnas store");
  return exists;
}

void Store::connect(const char* name, int flags) {
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
  if (sqlite3_open_v2(name, &db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    fail("cannot open ", path_, ": ", msg);
  }
  sqlite3_busy_timeout(db_, 30000);
  sqlite3_extended_result_codes(db_, 0);
}

void Store::connect_readonly() {
  connect(uri(path_, "mode=ro").c_str(), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
  int64_t tables = 0, meta_tables = 0;
  const int rc = count_tables(db_, tables, meta_tables);
  if (rc != SQLITE_CANTOPEN && rc != SQLITE_READONLY) return;
  // A store in WAL mode is read through its -shm file, which SQLite could not make here (a
  // read-only file system or folder). Without a write-ahead log beside it the file holds every
  // committed transaction, and SQLite reads it as it is (immutable: it takes no locks either).
  const std::string wal = path_ + "-wal";
  std::error_code ec;
  if (std::filesystem::file_size(wal, ec) > 0 && !ec)
    fail(path_, " cannot be read here: its write-ahead log ", wal,
         " holds transactions, and SQLite cannot share it without write access to the folder; "
         "copy the run directory to a place that can be written, or read it as its owner");
  connect(uri(path_, "immutable=1").c_str(), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
}

// The schema version of an identified store, 0 for an empty database. Touches nothing.
int Store::identify(int latest) {
  int64_t tables = 0, meta_tables = 0;
  const int rc = count_tables(db_, tables, meta_tables);
  if (rc == SQLITE_NOTADB)
    fail(path_,
         " is not an SQLite database (an iotnas experiment store); give another --out directory");
  if (rc == SQLITE_CORRUPT) fail_damaged(path_, sqlite3_errmsg(db_));
  if (rc != SQLITE_ROW) fail("cannot read ", path_, ": ", sqlite3_errmsg(db_));
  if (tables == 0) return 0;
  if (meta_tables == 0)
    fail(path_,
         " is an SQLite database but not an iotnas experiment store; give another --out "
         "directory");
  const auto text = meta("schema_version");
  if (!text)
    fail(path_,
         " has no schema version: not an iotnas experiment store; give another --out directory");
  const int version = parse_version(*text);
  if (version == 0)
    fail(path_, " is an experiment store of unknown schema version ", *text,
         "; this iotnas reads versions 1 to ", latest,
         ": use a new --out directory, or the iotnas that wrote it");
  if (version > latest)
    fail(path_, " is an experiment store of schema version ", version,
         ", newer than this iotnas reads (", latest,
         "): use the iotnas that wrote it or a newer one, or a new --out directory");
  return version;
}

void Store::initialise(int version) {
  exec(db_, kPragmas, path_);
  transaction([&] {
    exec(db_, kSchema, path_);
    set_meta("schema_version", std::to_string(version));
    set_meta("iotnas_version", IOTNAS_VERSION);
    set_meta("created_at", texts(db_, "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now')", path_)[0]);
  });
}

// Foreign keys are off (as SQLite advises for schema changes) and checked before the commit.
void Store::migrate(int from, std::span<const StoreMigration> migrations) {
  namespace fs = std::filesystem;
  const int to = int(migrations.size()) + 1;
  const std::string backup = path_ + ".v" + std::to_string(from) + ".bak";
  // Move every committed transaction from the write-ahead log into the file, so the file alone is
  // the whole store, and copy it.
  if (texts(db_, "PRAGMA wal_checkpoint(TRUNCATE)", path_) != std::vector<std::string>{"0"})
    fail(path_, " is of schema version ", from, " and needs a migration to version ", to,
         ", but another process is using it: open it again when that process has finished");
  std::error_code ec;
  fs::copy_file(path_, backup, fs::copy_options::overwrite_existing, ec);
  if (ec)
    fail("cannot copy ", path_, " to ", backup, " before migrating it to schema version ", to, ": ",
         ec.message(), "; the store is unchanged");
  int at = from;
  try {
    transaction([&] {
      for (; at < to; ++at) exec(db_, migrations[at - 1].sql, path_);
      check_foreign_keys(db_, path_);
      check_tables(db_, path_);
      set_meta("schema_version", std::to_string(to));
    });
  } catch (const Error& e) {
    fail("cannot migrate ", path_, " from schema version ", from, " to ", to, " (at version ",
         std::min(at + 1, to), ": ", e.what(), "); the store is unchanged and its copy is ",
         backup);
  }
  fs::remove(backup, ec);
}

}  // namespace iotnas::apps
