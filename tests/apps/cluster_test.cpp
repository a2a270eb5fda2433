// Cluster scale-out (docs/cluster.md): shards and merge (label apps), and the MPI runs under a real
// mpirun (suites Cluster*, label cluster: the release stage only).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "apps/cluster.hpp"
#include "apps/running.hpp"
#include "apps/store/store.hpp"
#include "results.hpp"
#include "test_util.hpp"

namespace iotnas::apps {
namespace {

namespace fs = std::filesystem;
using test::results_of;
using test::TempDir;
using test::tiny_config;

std::string write_config(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir / name;
  std::ofstream(path) << text;
  return path;
}

test::Shell iotnas(const std::string& args, const TempDir& dir) {
  return test::shell(std::string("OMP_NUM_THREADS=1 '") + IOTNAS_BINARY + "' " + args, dir.path);
}

// What a command printed: results on stdout, progress on stderr.
std::string said(const test::Shell& s) {
  return s.out + s.err;
}

std::string mpirun(int ranks) {
  return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) +
         " --mca btl_vader_single_copy_mechanism none ";
}

std::string why_no_mpi() {
  if (!mpi_built()) return "this iotnas was built without MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0)
    return "mpirun not installed (apt-get install openmpi-bin)";
  return "";
}

// Starts `command` with /bin/sh in its own process group; output into `log`.
pid_t spawn(const std::string& command, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl("/bin/sh", "sh", "-c", ("OMP_NUM_THREADS=1 exec " + command).c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Waits (at most 120 s) until `ready` holds of the run's store, read while the run writes it.
template <class F>
bool wait_store(const std::string& dir, F ready) {
  for (int i = 0; i < 1200; ++i) {
    try {
      Store s = Store::open_readonly(dir);
      if (ready(s)) return true;
    } catch (const std::exception&) {
      // not made yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// The number after `label` in `text` ("4 trained" -> 4 for label " trained"), -1 if none.
int count_before(const std::string& text, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("(\\d+)" + label))) return -1;
  return std::stoi(m[1]);
}

// ---- job arrays: shards and merge (no MPI) ----

TEST(ShardMerge, TwoShardsMergedEqualTheOneProcessRunAndASecondMergeChangesNothing) {
  TempDir dir;
  const std::string config = write_config(dir, "run.json", tiny_config(1));
  const auto solo = iotnas("run --config '" + config + "' --out '" + (dir / "solo") + "'", dir);
  ASSERT_EQ(solo.status, 0) << solo.err;
  const std::string run = dir / "sharded";
  const auto plan = iotnas("run --plan-only --config '" + config + "' --out '" + run + "'", dir);
  ASSERT_EQ(plan.status, 0) << plan.err;
  EXPECT_NE(said(plan).find("8 units"), std::string::npos) << plan.out;
  EXPECT_TRUE(fs::exists(dir.path / "sharded" / "plan.json"));
  EXPECT_NE(iotnas("status --run '" + run + "'", dir).out.find("0 of 8 units done"),
            std::string::npos);
  for (const char* shard : {"1/2", "0/2"}) {
    const auto s = iotnas(std::string("run --shard ") + shard + " --out '" + run + "'", dir);
    ASSERT_EQ(s.status, 0) << s.err;
  }
  const auto merged = iotnas("merge --run '" + run + "'", dir);
  ASSERT_EQ(merged.status, 0) << merged.err;
  EXPECT_NE(said(merged).find("8 of 8 units done"), std::string::npos) << merged.out;
  EXPECT_EQ(results_of(run), results_of(dir / "solo"));
  const auto before = results_of(run);
  const auto again = iotnas("merge --run '" + run + "'", dir);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(said(again).find("0 new training runs, 0 accuracies, 0 sweeps"), std::string::npos)
      << again.out;
  EXPECT_EQ(results_of(run), before);
  const auto status = iotnas("status --json --run '" + run + "'", dir);
  EXPECT_NE(status.out.find("\"left\":0"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\"mode\":\"shards\""), std::string::npos) << status.out;
}

TEST(ShardMerge, BadShardsAndPlansAreRefusedWithoutTouchingTheStores) {
  TempDir dir;
  const std::string a = dir / "a", b = dir / "b";
  const std::string config = write_config(dir, "a.json", tiny_config(1));
  const std::string other = write_config(dir, "b.json", tiny_config(2));
  // No plan yet.
  auto r = iotnas("run --shard 0/2 --out '" + a + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no plan in"), std::string::npos) << r.err;
  ASSERT_EQ(iotnas("run --plan-only --config '" + config + "' --out '" + a + "'", dir).status, 0);
  ASSERT_EQ(iotnas("run --plan-only --config '" + other + "' --out '" + b + "'", dir).status, 0);
  for (const char* bad : {"2/2", "-1/2", "x", "1/0", "1/2/3"}) {
    r = iotnas(std::string("run --shard ") + bad + " --out '" + a + "'", dir);
    EXPECT_EQ(r.status, 1) << bad;
    EXPECT_NE(r.err.find("--shard"), std::string::npos) << bad << ": " << r.err;
  }
  // A shard run with another config than the plan's.
  r = iotnas("run --shard 0/2 --config '" + other + "' --out '" + a + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("another config"), std::string::npos) << r.err;
  // A shard of plan b in a's run directory: merge refuses it, and a new plan there too.
  ASSERT_EQ(iotnas("run --shard 0/2 --out '" + b + "'", dir).status, 0);
  fs::create_directories(dir.path / "a" / "shards");
  fs::copy_file(dir.path / "b" / "shards" / "0.sqlite", dir.path / "a" / "shards" / "0.sqlite");
  const auto store_before = test::read_bytes(dir.path / "a" / "iotnas.sqlite");
  r = iotnas("merge --run '" + a + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("belongs to another plan"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_bytes(dir.path / "a" / "iotnas.sqlite"), store_before);
  r = iotnas("run --shard 0/2 --out '" + a + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("belongs to another plan"), std::string::npos) << r.err;
  r = iotnas("run --plan-only --config '" + config + "' --out '" + a + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("holds shards of another plan"), std::string::npos) << r.err;
  // An edited plan.
  {
    std::string text = test::read_bytes(dir.path / "b" / "plan.json");
    text.replace(text.find("\"eval_key\": \"") + 13, 1, "x");
    std::ofstream(dir.path / "b" / "plan.json") << text;
  }
  r = iotnas("run --shard 1/2 --out '" + b + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("hash does not match"), std::string::npos) << r.err;
  std::ofstream(dir.path / "b" / "plan.json") << "{\"format\": \"iotnas-plan/1\"}";
  r = iotnas("merge --run '" + b + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not a valid plan"), std::string::npos) << r.err;
  // Shards of one plan with another N.
  fs::remove(dir.path / "a" / "shards" / "0.sqlite");
  ASSERT_EQ(iotnas("run --shard 0/2 --out '" + a + "'", dir).status, 0);
  r = iotnas("run --shard 0/3 --out '" + a + "'", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("same N"), std::string::npos) << r.err;
}

TEST(ShardMerge, AHalfWrittenShardContributesItsFinishedUnits) {
  TempDir dir;
  const std::string run = dir / "run";
  const std::string config = write_config(dir, "run.json", tiny_config(20));
  ASSERT_EQ(iotnas("run --plan-only --config '" + config + "' --out '" + run + "'", dir).status, 0);
  const pid_t pid =
      spawn(std::string("'") + IOTNAS_BINARY + "' run --shard 0/1 --out '" + run + "'",
            dir / "shard.log");
  const bool one = wait_store(run, [&](Store&) {
    try {
      Store s = Store::open_readonly_file(run + "/shards", "0.sqlite");
      return s.count("sweeps") >= 1;
    } catch (const std::exception&) {
      return false;
    }
  });
  kill(pid, SIGKILL);
  wait_exit(pid);
  ASSERT_TRUE(one) << test::read_bytes(dir.path / "shard.log");
  const auto merged = iotnas("merge --run '" + run + "'", dir);
  ASSERT_EQ(merged.status, 0) << merged.err;
  EXPECT_NE(said(merged).find("not every unit is done"), std::string::npos) << merged.out;
  {
    Store s = Store::open_readonly(run);
    EXPECT_EQ(s.integrity_check(), "ok");
    EXPECT_GE(s.count("sweeps"), 1);
    EXPECT_LT(s.count("sweeps"), 4);
  }
  const auto status = iotnas("status --run '" + run + "'", dir);
  EXPECT_NE(status.out.find("stale"), std::string::npos) << status.out;
  const auto rest = iotnas("run --shard 0/1 --out '" + run + "'", dir);
  ASSERT_EQ(rest.status, 0) << rest.err;
  ASSERT_EQ(iotnas("merge --run '" + run + "'", dir).status, 0);
  Store s = Store::open_readonly(run);
  EXPECT_EQ(s.count("runs"), 4);
  EXPECT_EQ(s.count("sweeps"), 4);
}

// ---- MPI (suites Cluster*: label cluster) ----

TEST(ClusterMpi, ThreeRanksStoreWhatOneProcessStores) {
  if (const auto why = why_no_mpi(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const std::string config = write_config(dir, "run.json", tiny_config(1));
  const auto solo = iotnas("run --config '" + config + "' --out '" + (dir / "solo") + "'", dir);
  ASSERT_EQ(solo.status, 0) << solo.err;
  const auto ranks = test::shell(mpirun(3) + "'" + IOTNAS_BINARY + "' run --threads 1 --config '" +
                                     config + "' --out '" + (dir / "mpi") + "'",
                                 dir.path);
  ASSERT_EQ(ranks.status, 0) << ranks.out << ranks.err;
  EXPECT_NE(said(ranks).find("mpi: 3 ranks"), std::string::npos) << ranks.out;
  EXPECT_EQ(results_of(dir / "mpi"), results_of(dir / "solo"));
  for (const auto& [run, mode] :
       {std::pair<std::string, std::string>{"mpi", "mpi"}, {"solo", "one process"}}) {
    const auto st = iotnas("status --json --run '" + (dir / run) + "'", dir);
    EXPECT_NE(st.out.find("\"mode\":\"" + mode + "\""), std::string::npos) << st.out;
    EXPECT_NE(st.out.find("\"left\":0"), std::string::npos) << st.out;
  }
  const std::string solve = "solve --json --max-weight-bytes 100000 --run ";
  EXPECT_EQ(std::regex_replace(iotnas(solve + "'" + (dir / "mpi") + "'", dir).out,
                               std::regex("\"(model_id|run_id)\":\\d+"), ""),
            std::regex_replace(iotnas(solve + "'" + (dir / "solo") + "'", dir).out,
                               std::regex("\"(model_id|run_id)\":\\d+"), ""));
}

TEST(ClusterMpi, AKilledWorkerLosesOnlyItsUnitAndTheRerunFinishesTheRest) {
  if (const auto why = why_no_mpi(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const std::string run = dir / "run";
  const std::string config = write_config(dir, "run.json", tiny_config(15));
  const std::string cmd =
      mpirun(3) + "'" + IOTNAS_BINARY + "' run --config '" + config + "' --out '" + run + "'";
  const pid_t job = spawn(cmd, dir / "first.log");
  int64_t victim = 0;
  wait_store(run, [&](Store& s) {
    for (const auto& r : running(s))
      if (r.worker != "rank 0" && r.pid > 0) victim = r.pid;
    return victim > 0;
  });
  ASSERT_GT(victim, 0) << test::read_bytes(dir.path / "first.log");
  kill(pid_t(victim), SIGKILL);
  EXPECT_NE(wait_exit(job), 0);
  int64_t runs = 0;
  {
    Store s = Store::open_readonly(run);
    EXPECT_EQ(s.integrity_check(), "ok");
    runs = s.count("runs");
  }
  EXPECT_LT(runs, 4);
  const auto rest = test::shell(cmd, dir.path);
  ASSERT_EQ(rest.status, 0) << rest.out << rest.err;
  EXPECT_EQ(count_before(said(rest), " trained"), 4 - runs) << rest.out;
  Store s = Store::open_readonly(run);
  EXPECT_EQ(s.count("runs"), 4);
  EXPECT_EQ(s.count("sweeps"), 4);
  EXPECT_EQ(s.count("accuracies"), 16);
}

TEST(ClusterMpi, SigtermToTheRanksStopsAfterTheirUnitsWithExit75) {
  if (const auto why = why_no_mpi(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const std::string run = dir / "run";
  const std::string config = write_config(dir, "run.json", tiny_config(15));
  const std::string cmd =
      mpirun(3) + "'" + IOTNAS_BINARY + "' run --config '" + config + "' --out '" + run + "'";
  const pid_t job = spawn(cmd, dir / "first.log");
  // Every rank gets SIGTERM, as srun gives it (and Slurm's --signal): the ranks' pids are rank 0's
  // (the store's lock) and the workers' (their running marks).
  std::vector<int64_t> pids;
  ASSERT_TRUE(wait_store(run, [&](Store& s) {
    pids.clear();
    for (const auto& r : running(s)) pids.push_back(r.pid);
    return pids.size() == 3;
  })) << test::read_bytes(dir.path / "first.log");
  const std::string lock = test::read_bytes(dir.path / "run" / "iotnas.sqlite.lock");
  pids.push_back(std::stoll(lock.substr(0, lock.find('@'))));
  for (int64_t p : pids) kill(pid_t(p), SIGTERM);
  EXPECT_EQ(wait_exit(job), 75) << test::read_bytes(dir.path / "first.log");
  {
    Store s = Store::open_readonly(run);
    EXPECT_EQ(s.integrity_check(), "ok");
    EXPECT_LT(s.count("sweeps"), 4);
  }
  const auto rest = test::shell(cmd, dir.path);
  ASSERT_EQ(rest.status, 0) << rest.out << rest.err;
  Store s = Store::open_readonly(run);
  EXPECT_EQ(s.count("runs"), 4);
  EXPECT_EQ(s.count("sweeps"), 4);
}

TEST(ClusterMpi, SixteenRanksShareTheUnits) {
  if (const auto why = why_no_mpi(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const std::string config = write_config(dir, "run.json", tiny_config(2, 8, 24));
  const auto r = test::shell("OMP_NUM_THREADS=1 " + mpirun(16) + "--mca mpi_yield_when_idle 1 '" +
                                 IOTNAS_BINARY + "' run --config '" + config + "' --out '" +
                                 (dir / "run") + "'",
                             dir.path);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  std::smatch m;
  const std::string out = said(r);
  ASSERT_TRUE(
      std::regex_search(out, m, std::regex("mpi: 16 ranks, units per rank \\[([0-9 ]+)\\]")))
      << out;
  std::istringstream units(m[1].str());
  int n = 0, total = 0, lo = 1 << 30, hi = 0;
  for (int u; units >> u; ++n) {
    total += u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  Store s = Store::open_readonly(dir / "run");
  EXPECT_EQ(n, 16);
  EXPECT_EQ(total, 2 * s.count("runs"));
  EXPECT_LE(hi - lo, 6) << m[0];  // no rank starves while others take many (units are pairs)
  std::regex cpu("mpi: 16 ranks.*");
  if (std::regex_search(out, m, cpu)) std::printf("[ figure ] %s\n", m[0].str().c_str());
}

}  // namespace
}  // namespace iotnas::apps
