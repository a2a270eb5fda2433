// Opening a store: identifying the file, creating the schema, and migrating older versions.
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>

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

}  // namespace

Store Store::open(const std::string& dir, bool create) {
  return open(dir, create, kMigrations);
}

Store Store::open(const std::string& dir, bool create, std::span<const StoreMigration> migrations) {
  namespace fs = std::filesystem;
  for (size_t k = 0; k < migrations.size(); ++k)
    IOTNAS_ASSERT(migrations[k].version == int(k) + 2, "store migrations out of order");
  const int latest = int(migrations.size()) + 1;
  Store s;
  s.path_ = (fs::path(dir) / kStoreFile).string();
  std::error_code ec;
  const bool exists = fs::exists(s.path_, ec);
  if (!exists && !create)
    fail("no experiment store at ", s.path_, "; run `iotnas run --out ", dir, "` first");
  if (exists && !fs::is_regular_file(s.path_, ec))
    fail(s.path_, " is not a file; give a run directory holding an iotnas store");
  if (!exists) {
    fs::create_directories(dir, ec);
    if (ec) fail("cannot create run directory ", dir, ": ", ec.message());
  }
  const int flags = SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(s.path_.c_str(), &s.db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = s.db_ ? sqlite3_errmsg(s.db_) : "out of memory";
    fail("cannot open ", s.path_, ": ", msg);
  }
  sqlite3_busy_timeout(s.db_, 30000);
  sqlite3_extended_result_codes(s.db_, 0);
  if (!exists) {
    s.initialise(latest);
    return s;
  }

  // Identify the file before changing anything in it (journal mode included).
  int64_t tables = 0, meta_tables = 0;
  try {
    Stmt q(s.db_,
           "SELECT count(*), count(CASE WHEN name = 'meta' THEN 1 END) FROM sqlite_master "
           "WHERE type = 'table'",
           s.path_);
    q.step();
    tables = q.get<int64_t>(0);
    meta_tables = q.get<int64_t>(1);
  } catch (const Error&) {
    fail(s.path_,
         " is not an SQLite database (an iotnas experiment store); give another --out directory");
  }
  if (tables == 0) {
    // An empty database: a store whose creation was interrupted before its schema committed.
    s.initialise(latest);
    return s;
  }
  if (meta_tables == 0)
    fail(s.path_,
         " is an SQLite database but not an iotnas experiment store; give another --out "
         "directory");
  const auto text = s.meta("schema_version");
  if (!text)
    fail(s.path_,
         " has no schema version: not an iotnas experiment store; give another --out directory");
  const int version = parse_version(*text);
  if (version == 0)
    fail(s.path_, " is an experiment store of unknown schema version ", *text,
         "; this iotnas reads versions 1 to ", latest,
         ": use a new --out directory, or the iotnas that wrote it");
  if (version > latest)
    fail(s.path_, " is an experiment store of schema version ", version,
         ", newer than this iotnas reads (", latest,
         "): use the iotnas that wrote it or a newer one, or a new --out directory");
  if (version < latest) s.migrate(version, migrations);
  exec(s.db_, kPragmas, s.path_);
  return s;
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
      const auto fk = texts(db_, "PRAGMA foreign_key_check", path_);
      if (!fk.empty()) fail("foreign key violation in table ", fk[0]);
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
