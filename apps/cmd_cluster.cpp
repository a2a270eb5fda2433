// iotnas merge / status: the run directory of a cluster run (docs/cluster.md).
#include <cstdio>
#include <iostream>

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "apps/commands.hpp"
#include "apps/estimate.hpp"
#include "apps/plan.hpp"
#include "apps/progress.hpp"
#include "apps/shard.hpp"
#include "apps/slurm.hpp"
#include "apps/status.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

struct MergeOpts {
  std::string run;
};

int run_merge(const MergeOpts& o) {
  Progress progress;
  RunHooks hooks;
  hooks.line = [&](const std::string& s) { progress.line(s); };
  const MergeSummary m = merge_run(o.run, hooks);
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "merged %d shards into %s/iotnas.sqlite: %lld new training runs, %lld accuracies, "
                "%lld sweeps, %lld failed runs; %d of %d units done",
                m.shards, o.run.c_str(), (long long)m.runs, (long long)m.accuracies,
                (long long)m.sweeps, (long long)m.failed, m.units_done, m.units);
  progress.line(buf);
  if (m.answered) progress.line("report: " + o.run + "/report.md");
  if (m.units_done < m.units)
    progress.line("not every unit is done: run the missing shards again, then merge again");
  return 0;
}

struct StatusOpts {
  std::string run;
  bool json = false;
};

int run_status_cmd(const StatusOpts& o) {
  const RunStatus s = run_status(o.run);
  if (o.json) {
    std::cout << status_json(s).dump() << "\n";
  } else {
    std::cout << status_text(s);
  }
  return 0;
}

// The path of this iotnas binary, for the jobs to run.
std::string this_binary() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) fail("cannot find this program's path (/proc/self/exe): ", ec.message());
  return p.string();
}

// The plan of the run: DIR/plan.json when it is there and no config is given, else made now
// (search, calibration, selection; measurements already in the store are reused).
PlanDoc slurm_plan(const SlurmOptions& o, Progress& progress) {
  if (o.config.empty() && o.budget.empty())
    if (auto doc = read_plan(o.run_dir)) return std::move(*doc);
  RunConfig c = o.config.empty() ? budget_preset(o.budget.empty() ? "quick" : o.budget)
                                 : load_run_config(o.config, o.budget);
  if (o.threads > 0) c.threads = o.threads;
  RunHooks hooks;
  hooks.line = [&](const std::string& s) { progress.line(s); };
  hooks.update = [&](const std::string& s) { progress.update(s); };
  RunOptions ro;
  ro.plan_only = true;
  run_pipeline(c, o.run_dir, hooks, ro);
  return *read_plan(o.run_dir);
}

// How long the job (MPI) or the longest shard (array) should take, from the plan and the speed
// measured here; the dataset load and the merge are a minute each at most on these sizes.
SlurmTimeEstimate slurm_estimate(const SlurmOptions& o, const PlanDoc& doc, const Speed& speed) {
  const std::vector<double> secs = item_seconds(doc, speed);
  double longest = 0, total = 0;
  for (double s : secs) total += s;
  char buf[320];
  if (o.array > 0) {
    for (int k = 0; k < o.array; ++k) {
      double shard = 0;
      for (int i : shard_items(doc.plan, doc.config, k, o.array)) shard += secs[size_t(i)];
      longest = std::max(longest, shard);
    }
    std::snprintf(buf, sizeof buf,
                  "the largest of %d shards: %.0f s of %d items at %.3g GMAC/s (%s), plus 60 s",
                  o.array, longest, int(secs.size()), speed.macs_per_second / 1e9,
                  speed.source.c_str());
    return {longest + 60, buf};
  }
  const int cpus = o.cpus_per_node > 0 ? o.cpus_per_node : int(sysconf(_SC_NPROCESSORS_ONLN));
  const int ranks = std::max(1, o.nodes * std::max(1, cpus / std::max(1, o.threads)));
  const double biggest = secs.empty() ? 0 : *std::max_element(secs.begin(), secs.end());
  const double seconds = total / ranks + biggest;
  std::snprintf(buf, sizeof buf,
                "%.0f s of %d items over %d ranks plus the largest item, at %.3g GMAC/s (%s), "
                "plus 60 s",
                total, int(secs.size()), ranks, speed.macs_per_second / 1e9, speed.source.c_str());
  return {seconds + 60, buf};
}

int run_slurm(SlurmOptions o) {
  Progress progress;
  o.iotnas = this_binary();
  validate(o);
  const PlanDoc doc = slurm_plan(o, progress);
  const Speed speed = measure_speed(doc, o.run_dir, o.threads);
  progress.line(plan_summary(doc, speed, o.threads));
  const auto scripts = slurm_scripts(o, slurm_estimate(o, doc, speed));
  const SlurmSubmission sub = submit(o, scripts);
  for (size_t i = 0; i < scripts.size(); ++i) {
    std::printf("==== %s\n%s", sub.paths[i].c_str(), scripts[i].text.c_str());
    if (i < sub.job_ids.size()) std::printf("==== submitted: job %s\n", sub.job_ids[i].c_str());
  }
  if (o.dry_run) std::printf("dry run: nothing submitted (sbatch each script to run it)\n");
  std::printf("follow it: iotnas status --run %s\n", o.run_dir.c_str());
  return 0;
}

}  // namespace

void add_cluster_commands(CLI::App& app, Action& action) {
  {
    auto* cmd = app.add_subcommand(
        "merge",
        "Fold the shards of a job array (DIR/shards/*.sqlite) into DIR/iotnas.sqlite, "
        "then write the fronts, answers and report");
    auto o = std::make_shared<MergeOpts>();
    cmd->add_option("--run", o->run, "Run directory (holds plan.json and shards/)")->required();
    cmd->callback([&action, o] { action = [o] { return run_merge(*o); }; });
  }
  {
    auto* cmd = app.add_subcommand(
        "status", "How far a run is: units done, running (where, since when), left, and an ETA");
    auto o = std::make_shared<StatusOpts>();
    cmd->add_option("--run", o->run, "Run directory (holds plan.json)")->required();
    cmd->add_flag("--json", o->json, "Print one JSON object (keys in docs/cluster.md)");
    cmd->callback([&action, o] { action = [o] { return run_status_cmd(*o); }; });
  }
  {
    auto* cmd = app.add_subcommand(
        "slurm",
        "Make the plan, write the sbatch scripts of a run (one MPI job over K nodes, or "
        "an array of N shards and a merge job), print them and submit them");
    auto o = std::make_shared<SlurmOptions>();
    cmd->add_option("--out", o->run_dir, "Run directory to create or continue")->required();
    cmd->add_option("--config", o->config, "Run config (JSON, docs/run.md)");
    cmd->add_option("--budget", o->budget, "smoke, quick or paper")
        ->check(CLI::IsMember({"smoke", "quick", "paper"}));
    auto* nodes =
        cmd->add_option("--nodes", o->nodes, "One MPI job over K nodes (srun --mpi=pmix)");
    auto* array = cmd->add_option("--array", o->array, "N shards (a job array) and a merge job");
    nodes->excludes(array);
    cmd->add_option("--time", o->time,
                    "Time limit per job or shard, HH:MM:SS or D-HH:MM:SS (default: estimated "
                    "from the plan and the speed measured here)");
    cmd->add_option("--threads", o->threads, "Cores per rank or shard (default 1)");
    cmd->add_option("--partition", o->partition, "Slurm partition (default: the cluster's)");
    cmd->add_option("--account", o->account, "Slurm account (default: yours)");
    cmd->add_flag("--dry-run", o->dry_run, "Write and print the scripts, submit nothing");
    cmd->callback([&action, o] { action = [o] { return run_slurm(*o); }; });
  }
}

}  // namespace iotnas::apps
