// `iotnas slurm`: the sbatch scripts of a run and their submission (docs/cluster.md).
// Two modes: one MPI job over K nodes (`srun --mpi=pmix iotnas run`), or an array of N shards
// (`iotnas run --shard I/N`) and a merge job that starts when every shard has finished
// (`--dependency=afterok`). Every job stops cleanly before its time limit: Slurm sends SIGTERM
// 120 to 180 s before it (`--signal=TERM@120`), `iotnas run` exits 75, and the script requeues the
// job (at most kMaxRequeues times), whose rerun finishes the rest.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace iotnas::apps {

struct SlurmOptions {
  std::string run_dir;    // --out: the run directory (made absolute)
  std::string config;     // --config; "" = `iotnas run`'s default
  std::string budget;     // --budget; "" = the config's
  std::string time;       // --time, HH:MM:SS or D-HH:MM:SS; "" = the caller's estimate
  std::string partition;  // --partition; "" = the cluster's default
  std::string account;    // --account; "" = the user's default
  std::string iotnas;     // the iotnas binary the jobs run (made absolute)
  int nodes = 0;          // --nodes K: one MPI job over K nodes
  int array = 0;          // --array N: N shards and a merge job
  int threads = 0;        // cores per rank or shard; 0 = 1
  // CPUs of one node, for --ntasks-per-node = cpus_per_node / threads (MPI mode); 0 = the
  // smallest node of the partition as `sinfo` reports it (this machine's when there is no sinfo).
  int cpus_per_node = 0;
  bool dry_run = false;  // write the scripts, do not submit them
};

// How long a shard (array mode) or the whole MPI job is expected to run, and why.
struct SlurmTimeEstimate {
  double seconds = 0;
  std::string source;  // one line, e.g. "the plan's 40 units at 12 s each (probe on this machine)"
};

// Throws iotnas::Error naming the flag (--out, --nodes, --array, --threads, --time,
// --partition, --account) when an option is missing or malformed; --time must be at least five
// minutes, since the stop signal comes two to three minutes before the limit.
void validate(const SlurmOptions& o);

// "HH:MM:SS", or "D-HH:MM:SS" from one day on: `seconds` rounded up to whole minutes, at least
// five minutes.
std::string format_slurm_time(double seconds);
// Seconds of "HH:MM:SS" or "D-HH:MM:SS" (minutes and seconds below 60, hours below 24 after a
// day count); throws iotnas::Error naming --time otherwise.
double parse_slurm_time(std::string_view text);

// Requeues of a job that stopped cleanly at its time limit (exit 75) before the script gives up.
inline constexpr int kMaxRequeues = 3;
// Seconds before the time limit at which Slurm sends SIGTERM (it may come up to 60 s earlier).
inline constexpr int kStopSignalSeconds = 120;

struct SlurmScript {
  std::string name;  // file name under RUN_DIR/slurm/
  std::string text;
};

// The scripts of a run, in submission order: MPI mode "run.sbatch"; array mode "shards.sbatch"
// then "merge.sbatch" (submitted with --dependency=afterok:<shards job id>). The time limit is
// `--time` when given, else the estimate plus the stop signal's lead, with a comment saying where
// the estimate came from. Validates `o` first.
std::vector<SlurmScript> slurm_scripts(const SlurmOptions& o, const SlurmTimeEstimate& estimate);

struct SlurmSubmission {
  std::vector<std::string> paths;    // the scripts written, as slurm_scripts orders them
  std::vector<std::string> job_ids;  // their job ids; empty for a dry run
};

// Writes `scripts` under RUN_DIR/slurm/ (each atomically) and, unless o.dry_run, submits them
// with `sbatch --parsable` (no shell), the merge job depending on the shards. Throws
// iotnas::Error when sbatch is missing or fails (with sbatch's own message).
SlurmSubmission submit(const SlurmOptions& o, const std::vector<SlurmScript>& scripts);

}  // namespace iotnas::apps
