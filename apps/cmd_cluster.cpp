// iotnas merge / status: the run directory of a cluster run (docs/cluster.md).
#include <cstdio>
#include <iostream>

#include "apps/commands.hpp"
#include "apps/progress.hpp"
#include "apps/shard.hpp"
#include "apps/status.hpp"

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
}

}  // namespace iotnas::apps
