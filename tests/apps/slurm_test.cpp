// `iotnas slurm`'s library: time limits, option checks, the sbatch scripts and their submission
// (with a stand-in sbatch, and, in the ClusterSlurm tests, through the local Slurm of
// scripts/local-slurm.sh).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "apps/cluster.hpp"
#include "apps/slurm.hpp"
#include "kernels/base/error.hpp"
#include "results.hpp"
#include "test_util.hpp"

namespace iotnas::apps {
namespace {
namespace fs = std::filesystem;
using test::read_bytes;
using test::TempDir;

::testing::AssertionResult has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no line '" << line << "' in:\n" << text;
}

// The message of the iotnas::Error that `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void write_executable(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  fs::permissions(path, fs::perms::owner_all);
}

// Sets an environment variable for the scope; restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { had_ ? (void)::setenv(name_, old_.c_str(), 1) : (void)::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

SlurmOptions array_options(const TempDir& dir) {
  SlurmOptions o;
  o.run_dir = dir / "run";
  o.iotnas = "/opt/iotnas/bin/iotnas";
  o.array = 3;
  return o;
}

TEST(SlurmTime, FormatRoundsUpToWholeMinutesAndAtLeastFive) {
  EXPECT_EQ(format_slurm_time(0), "00:05:00");
  EXPECT_EQ(format_slurm_time(299), "00:05:00");
  EXPECT_EQ(format_slurm_time(300), "00:05:00");
  EXPECT_EQ(format_slurm_time(301), "00:06:00");
  EXPECT_EQ(format_slurm_time(3600), "01:00:00");
  EXPECT_EQ(format_slurm_time(86340), "23:59:00");
  EXPECT_EQ(format_slurm_time(86399), "1-00:00:00");
  EXPECT_EQ(format_slurm_time(90061), "1-01:02:00");
  EXPECT_EQ(format_slurm_time(10 * 86400.0), "10-00:00:00");
  EXPECT_NE(error_of([] { format_slurm_time(std::numeric_limits<double>::infinity()); }), "");
}

TEST(SlurmTime, ParseReadsHmsAndDays) {
  EXPECT_EQ(parse_slurm_time("00:05:00"), 300);
  EXPECT_EQ(parse_slurm_time("04:00:30"), 4 * 3600 + 30);
  EXPECT_EQ(parse_slurm_time("100:00:00"), 100 * 3600);
  EXPECT_EQ(parse_slurm_time("2-00:00:00"), 2 * 86400);
  EXPECT_EQ(parse_slurm_time("1-23:59:59"), 86400 + 86399);
  for (double s : {0.0, 301.0, 86399.0, 90061.0, 40 * 86400.0}) {
    EXPECT_GE(parse_slurm_time(format_slurm_time(s)), s) << s;
  }
}

TEST(SlurmTime, ParseRefusesOtherFormsNamingTheFlag) {
  for (const char* bad :
       {"", "60", "1:00", "01:00", "1-01:00", "01:60:00", "01:00:60", "1:2:3", "01:00:00 ",
        "-01:00:00", "1-24:00:00", "a1:00:00", "00:00:00", "1--01:00:00", "01:00:00:00"}) {
    const std::string msg = error_of([&] { parse_slurm_time(bad); });
    EXPECT_NE(msg.find("--time"), std::string::npos) << "'" << bad << "': " << msg;
  }
}

TEST(SlurmOptionsCheck, BadOptionsNameTheFlag) {
  TempDir dir;
  const std::vector<std::pair<std::function<void(SlurmOptions&)>, std::string>> cases = {
      {[](SlurmOptions& o) { o.array = 0; }, "--nodes K"},
      {[](SlurmOptions& o) { o.nodes = 2; }, "--nodes and --array"},
      {[](SlurmOptions& o) { o.array = -1; }, "--array -1"},
      {[](SlurmOptions& o) { o.array = 0, o.nodes = -2; }, "--nodes -2"},
      {[](SlurmOptions& o) { o.threads = -1; }, "--threads -1"},
      {[](SlurmOptions& o) { o.time = "4h"; }, "--time '4h'"},
      {[](SlurmOptions& o) { o.time = "00:04:59"; }, "--time 00:04:59: give at least 00:05:00"},
      {[](SlurmOptions& o) { o.partition = "gpu;rm -rf /"; }, "--partition"},
      {[](SlurmOptions& o) { o.partition = "a b"; }, "--partition"},
      {[](SlurmOptions& o) { o.account = "proj,other"; }, "--account"},
      {[](SlurmOptions& o) { o.account = "$(id)"; }, "--account"},
      {[](SlurmOptions& o) { o.run_dir = ""; }, "--out is required"},
      {[&](SlurmOptions& o) { o.run_dir = dir / "my run"; }, "--out"},
      {[&](SlurmOptions& o) { o.run_dir = dir / "run%j"; }, "--out"},
  };
  for (const auto& [change, want] : cases) {
    SlurmOptions o = array_options(dir);
    change(o);
    const std::string msg = error_of([&] { validate(o); });
    EXPECT_NE(msg.find(want), std::string::npos) << "want '" << want << "' in: " << msg;
    EXPECT_EQ(msg, error_of([&] { slurm_scripts(o, {}); }));
  }
  SlurmOptions ok = array_options(dir);
  ok.partition = "short,long";
  ok.account = "proj-1.a_b";
  ok.time = "1-00:00:00";
  EXPECT_EQ(error_of([&] { validate(ok); }), "");
}

TEST(SlurmScripts, MpiJobRunsSrunPmixWithRanksFillingTheNodes) {
  TempDir dir;
  SlurmOptions o;
  o.run_dir = dir / "run";
  o.config = dir / "cfg.json";
  o.budget = "paper";
  o.iotnas = "/opt/iotnas/bin/iotnas";
  o.partition = "compute";
  o.account = "proj1";
  o.nodes = 4;
  o.threads = 2;
  o.cpus_per_node = 8;
  const auto scripts = slurm_scripts(o, {3 * 3600 + 10, "40 units at 270 s (a probe here)"});
  ASSERT_EQ(scripts.size(), 1u);
  EXPECT_EQ(scripts[0].name, "run.sbatch");
  const std::string& t = scripts[0].text;
  const std::string run = (dir / "run");
  EXPECT_EQ(t.rfind("#!/bin/bash\n", 0), 0u);
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --job-name=iotnas-run", "#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=4",
           "#SBATCH --cpus-per-task=2", "#SBATCH --partition=compute", "#SBATCH --account=proj1",
           "#SBATCH --signal=TERM@120", "#SBATCH --requeue", "#SBATCH --open-mode=append",
           "#SBATCH --output=" + run + "/slurm/%x-%j.out",
           // 3 h 10 s of work + 3 min for the clean stop, rounded up to minutes.
           "#SBATCH --time=03:04:00",
           "# time limit: estimated from 40 units at 270 s (a probe here) (03:01:00), plus 3 min "
           "for the clean stop",
           "srun --mpi=pmix '/opt/iotnas/bin/iotnas' run --config '" + dir / "cfg.json" +
               "' --budget 'paper' --out '" + run + "' --threads \"$SLURM_CPUS_PER_TASK\"",
           "if [ \"$rc\" -eq 75 ] && [ \"${SLURM_RESTART_COUNT:-0}\" -lt 3 ]; then",
           "  scontrol requeue \"$SLURM_JOB_ID\"", "exit \"$rc\""}) {
    EXPECT_TRUE(has_line(t, line));
  }
}

TEST(SlurmScripts, ArrayJobRunsOneShardPerTaskThenTheMerge) {
  TempDir dir;
  SlurmOptions o = array_options(dir);
  o.time = "2-00:00:00";
  const auto scripts = slurm_scripts(o, {600, "unused when --time is given"});
  ASSERT_EQ(scripts.size(), 2u);
  EXPECT_EQ(scripts[0].name, "shards.sbatch");
  EXPECT_EQ(scripts[1].name, "merge.sbatch");
  const std::string run = dir / "run";
  const std::string& shards = scripts[0].text;
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --job-name=iotnas-shard", "#SBATCH --array=0-2", "#SBATCH --ntasks=1",
           "#SBATCH --cpus-per-task=1", "#SBATCH --time=2-00:00:00", "#SBATCH --signal=TERM@120",
           "#SBATCH --requeue", "#SBATCH --open-mode=append",
           "#SBATCH --output=" + run + "/slurm/%x-%A_%a.out",
           "srun --mpi=none '/opt/iotnas/bin/iotnas' run --shard \"$SLURM_ARRAY_TASK_ID/3\" --out "
           "'" +
               run + "' --threads \"$SLURM_CPUS_PER_TASK\"",
           "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\""}) {
    EXPECT_TRUE(has_line(shards, line));
  }
  EXPECT_EQ(shards.find("# time limit"), std::string::npos) << shards;
  EXPECT_EQ(shards.find("--partition"), std::string::npos) << shards;
  const std::string& merge = scripts[1].text;
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --job-name=iotnas-merge", "#SBATCH --kill-on-invalid-dep=yes",
           "#SBATCH --output=" + run + "/slurm/%x-%j.out",
           "exec '/opt/iotnas/bin/iotnas' merge --run '" + run + "'"}) {
    EXPECT_TRUE(has_line(merge, line));
  }
  EXPECT_EQ(merge.find("--signal"), std::string::npos) << merge;
}

TEST(SlurmScripts, PathsAreOneShellWordEach) {
  TempDir dir;
  SlurmOptions o = array_options(dir);
  o.config = dir / "it's $(here).json";
  const std::string shards = slurm_scripts(o, {60, "x"})[0].text;
  EXPECT_NE(shards.find(" --config '" + dir / "it'\\''s $(here).json" + "' "), std::string::npos)
      << shards;
}

TEST(SlurmScripts, RelativePathsBecomeAbsolute) {
  TempDir dir;
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path);
  SlurmOptions o = array_options(dir);
  o.run_dir = "run";
  o.config = "c.json";
  o.iotnas = "bin/iotnas";
  const std::string shards = slurm_scripts(o, {60, "x"})[0].text;
  fs::current_path(cwd);
  EXPECT_TRUE(has_line(shards, "#SBATCH --output=" + dir / "run" + "/slurm/%x-%A_%a.out"));
  EXPECT_NE(shards.find("srun --mpi=none '" + dir / "bin/iotnas" + "' run"), std::string::npos);
  EXPECT_NE(shards.find("--config '" + dir / "c.json" + "'"), std::string::npos);
}

TEST(SlurmScripts, MoreThreadsThanANodeHasAreRefused) {
  TempDir dir;
  SlurmOptions o = array_options(dir);
  o.array = 0, o.nodes = 1, o.threads = 16, o.cpus_per_node = 8;
  const std::string msg = error_of([&] { slurm_scripts(o, {60, "x"}); });
  EXPECT_NE(msg.find("--threads 16: more than the 8 CPUs"), std::string::npos) << msg;
}

// The line of `text` that starts with `prefix` ("" when none does).
std::string line_of(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind(prefix, 0) == 0) return l;
  }
  return "";
}

TEST(SlurmScripts, RanksPerNodeComeFromTheSmallestNodeSinfoLists) {
  TempDir dir;
  fs::create_directories(dir.path / "bin");
  write_executable(dir.path / "bin/sinfo",
                   "#!/bin/sh\necho \"$@\" > " + dir / "args" + "\nprintf '16\\n12\\n32\\n'\n");
  const ScopedEnv path("PATH", dir / "bin" + ":/usr/bin:/bin");
  SlurmOptions o = array_options(dir);
  o.array = 0, o.nodes = 2, o.threads = 4, o.partition = "big";
  const std::string t = slurm_scripts(o, {60, "x"})[0].text;
  EXPECT_EQ(read_bytes(dir.path / "args"), "--noheader --format=%c --partition=big\n");
  EXPECT_TRUE(has_line(t, "#SBATCH --ntasks-per-node=3"));
  EXPECT_TRUE(has_line(t, "# CPUs per node: 12, the smallest node of the partition (sinfo)."));
}

TEST(SlurmScripts, WithoutSinfoRanksPerNodeComeFromThisMachine) {
  TempDir dir;
  const ScopedEnv path("PATH", dir.str());
  SlurmOptions o = array_options(dir);
  o.array = 0, o.nodes = 1;
  const std::string t = slurm_scripts(o, {60, "x"})[0].text;
  const unsigned here = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_TRUE(has_line(t, "#SBATCH --ntasks-per-node=" + std::to_string(here)));
  EXPECT_NE(t.find("this machine's (no answer from sinfo)"), std::string::npos) << t;
}

TEST(SlurmSubmit, DryRunWritesTheScriptsOnly) {
  TempDir dir;
  SlurmOptions o = array_options(dir);
  o.dry_run = true;
  const ScopedEnv no_path("PATH", dir.str());  // an sbatch call would fail
  const auto scripts = slurm_scripts(o, {60, "x"});
  const SlurmSubmission s = submit(o, scripts);
  EXPECT_TRUE(s.job_ids.empty());
  ASSERT_EQ(s.paths.size(), 2u);
  EXPECT_EQ(s.paths[0], dir / "run/slurm/shards.sbatch");
  EXPECT_EQ(read_bytes(s.paths[0]), scripts[0].text);
  EXPECT_EQ(read_bytes(s.paths[1]), scripts[1].text);
}

TEST(SlurmSubmit, MissingSbatchNamesThePackage) {
  TempDir dir;
  const SlurmOptions o = array_options(dir);
  const ScopedEnv no_path("PATH", dir.str());
  const std::string msg = error_of([&] { submit(o, slurm_scripts(o, {60, "x"})); });
  EXPECT_EQ(msg,
            "sbatch not found: install slurm-client (Debian) or load the cluster's Slurm "
            "module");
}

TEST(SlurmSubmit, ShardsGoFirstAndTheMergeWaitsForThem) {
  TempDir dir;
  fs::create_directories(dir.path / "bin");
  // A stand-in sbatch: records its arguments, answers job ids 41, 42, ... as --parsable does.
  write_executable(dir.path / "bin/sbatch", "#!/bin/sh\necho \"$@\" >> " + dir / "calls" +
                                                "\nn=$(wc -l < " + dir / "calls" +
                                                ")\necho \"$((40 + n));cluster\"\n");
  const ScopedEnv path("PATH", dir / "bin" + ":/usr/bin:/bin");
  const SlurmOptions o = array_options(dir);
  const SlurmSubmission s = submit(o, slurm_scripts(o, {60, "x"}));
  EXPECT_EQ(s.job_ids, (std::vector<std::string>{"41", "42"}));
  EXPECT_EQ(read_bytes(dir.path / "calls"), "--parsable " + dir / "run/slurm/shards.sbatch" + "\n" +
                                                "--parsable --dependency=afterok:41 " +
                                                dir / "run/slurm/merge.sbatch" + "\n");
}

TEST(SlurmSubmit, SbatchFailureCarriesItsMessage) {
  TempDir dir;
  fs::create_directories(dir.path / "bin");
  write_executable(dir.path / "bin/sbatch",
                   "#!/bin/sh\necho 'sbatch: error: invalid partition specified: nope' >&2\n"
                   "exit 1\n");
  const ScopedEnv path("PATH", dir / "bin" + ":/usr/bin:/bin");
  SlurmOptions o = array_options(dir);
  o.array = 0, o.nodes = 1, o.cpus_per_node = 2;
  const std::string msg = error_of([&] { submit(o, slurm_scripts(o, {60, "x"})); });
  EXPECT_EQ(msg, "sbatch " + dir / "run/slurm/run.sbatch" +
                     " failed (exit status 1): sbatch: error: invalid partition specified: nope");
}

// ---- through the local Slurm (label `cluster`, fixture: scripts/local-slurm.sh start) ----

// Points SLURM_CONF at the local Slurm unless it is set; "" when sinfo gets an answer.
std::string local_slurm_missing() {
  if (!std::getenv("SLURM_CONF")) {
    const char* dir = std::getenv("IOTNAS_SLURM_DIR");
    ::setenv("SLURM_CONF", (std::string(dir ? dir : "/tmp/iotnas-slurm") + "/slurm.conf").c_str(),
             1);
  }
  if (std::system("sinfo --noheader >/dev/null 2>&1") == 0) return "";
  return "no Slurm answers at SLURM_CONF=" + std::string(std::getenv("SLURM_CONF")) +
         ": run scripts/local-slurm.sh start (needs slurm-wlm and munge)";
}

// Waits (at most `seconds`) until `path` exists.
bool wait_for(const fs::path& path, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!fs::exists(path) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return fs::exists(path);
}

TEST(ClusterSlurm, ShardsAndTheDependentMergeRunThroughSbatch) {
  if (const std::string why = local_slurm_missing(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  // A stand-in iotnas: a shard leaves a file with its arguments; the merge counts them.
  write_executable(dir.path / "iotnas",
                   "#!/bin/bash\nd=$(dirname \"$0\")\ncase $1 in\n"
                   "  run) echo \"$*\" > \"$d/shard-$SLURM_ARRAY_TASK_ID\" ;;\n"
                   "  merge) ls \"$d\"/shard-* | wc -l > \"$d/merged.tmp\" && "
                   "echo \"$*\" >> \"$d/merged.tmp\" && mv \"$d/merged.tmp\" \"$d/merged\" ;;\n"
                   "esac\n");
  SlurmOptions o = array_options(dir);
  o.array = 2;
  o.iotnas = dir / "iotnas";
  o.config = dir / "cfg.json";
  const SlurmSubmission s = submit(o, slurm_scripts(o, {60, "a test"}));
  ASSERT_EQ(s.job_ids.size(), 2u);
  ASSERT_TRUE(wait_for(dir.path / "merged", 120))
      << "the merge job did not run within 120 s; job logs in " << dir / "run/slurm";
  const std::string run = dir / "run";
  EXPECT_EQ(read_bytes(dir.path / "shard-0"),
            "run --shard 0/2 --config " + dir / "cfg.json" + " --out " + run + " --threads 1\n");
  EXPECT_EQ(read_bytes(dir.path / "shard-1"),
            "run --shard 1/2 --config " + dir / "cfg.json" + " --out " + run + " --threads 1\n");
  EXPECT_EQ(read_bytes(dir.path / "merged"), "2\nmerge --run " + run + "\n");
  // The job logs are where the scripts said.
  EXPECT_TRUE(fs::exists(dir.path / ("run/slurm/iotnas-merge-" + s.job_ids[1] + ".out")));
  EXPECT_TRUE(fs::exists(dir.path / ("run/slurm/iotnas-shard-" + s.job_ids[0] + "_1.out")));
}

TEST(ClusterSlurm, MpiJobStartsOneRankPerCpuUnderPmix) {
  if (const std::string why = local_slurm_missing(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  // A stand-in iotnas: each rank writes what srun --mpi=pmix told it.
  write_executable(dir.path / "iotnas",
                   "#!/bin/bash\nd=$(dirname \"$0\")\n"
                   "echo \"$PMIX_RANK $SLURM_NTASKS $*\" > \"$d/rank.tmp$PMIX_RANK\"\n"
                   "mv \"$d/rank.tmp$PMIX_RANK\" \"$d/rank$PMIX_RANK\"\n");
  SlurmOptions o = array_options(dir);
  o.array = 0, o.nodes = 1, o.iotnas = dir / "iotnas";
  const std::string t = slurm_scripts(o, {60, "a test"})[0].text;  // CPUs per node from sinfo
  const int ranks = std::stoi(line_of(t, "#SBATCH --ntasks-per-node=").substr(26));
  ASSERT_GE(ranks, 1) << t;
  const SlurmSubmission s = submit(o, {{"run.sbatch", t}});
  ASSERT_EQ(s.job_ids.size(), 1u);
  const std::string run = dir / "run";
  for (int r = 0; r < ranks; ++r) {
    const fs::path file = dir.path / ("rank" + std::to_string(r));
    ASSERT_TRUE(wait_for(file, 120)) << "rank " << r << " did not start within 120 s";
    EXPECT_EQ(read_bytes(file), std::to_string(r) + " " + std::to_string(ranks) + " run --out " +
                                    run + " --threads 1\n");
  }
}

// `iotnas slurm` end to end through the local Slurm, against a one-process run of the same config.
void slurm_run_equals_one_process(const std::string& mode, const std::string& expect) {
  TempDir dir;
  const std::string config = dir / "run.json";
  std::ofstream(config) << test::tiny_config(1);
  const std::string bin = std::string("'") + IOTNAS_BINARY + "' ";
  const auto solo = test::shell(
      "OMP_NUM_THREADS=1 " + bin + "run --config '" + config + "' --out '" + (dir / "solo") + "'",
      dir.path);
  ASSERT_EQ(solo.status, 0) << solo.err;
  const std::string run = dir / "run";
  const auto sub = test::shell(
      bin + "slurm " + mode + " --config '" + config + "' --out '" + run + "'", dir.path);
  ASSERT_EQ(sub.status, 0) << sub.out << sub.err;
  EXPECT_NE(sub.out.find("==== submitted: job"), std::string::npos) << sub.out;
  ASSERT_TRUE(wait_for(dir.path / "run" / "report.md", 240))
      << "no report after 240 s; "
      << test::shell("squeue; cat '" + run + "'/slurm/*.out", dir.path).out;
  EXPECT_EQ(test::results_of(run), test::results_of(dir / "solo"));
  EXPECT_NE(test::shell("cat '" + run + "'/slurm/*.out", dir.path).out.find(expect),
            std::string::npos);
}

TEST(ClusterSlurm, IotnasSlurmArrayOfTwoShardsAndItsMergeStoreWhatOneProcessStores) {
  if (const std::string why = local_slurm_missing(); !why.empty()) GTEST_SKIP() << why;
  slurm_run_equals_one_process("--array 2", "merged 2 shards");
}

TEST(ClusterSlurm, IotnasSlurmMpiJobOverOneNodeStoresWhatOneProcessStores) {
  if (const std::string why = local_slurm_missing(); !why.empty()) GTEST_SKIP() << why;
  if (!mpi_built()) GTEST_SKIP() << "this iotnas was built without MPI";
  slurm_run_equals_one_process("--nodes 1", "mpi: 2 ranks");
}

}  // namespace
}  // namespace iotnas::apps
