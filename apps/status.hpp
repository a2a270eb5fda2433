// `iotnas status --run DIR` (docs/cluster.md): how far a run is, for one-process, MPI and sharded
// runs alike: the plan's units done, running (where, since when) and left, and an ETA from the
// run's own timings.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/running.hpp"

namespace iotnas::apps {

struct RunningItem : Running {
  std::string model;   // "[3/12] plain[...]"
  bool stale = false;  // its process (on this host) is gone: a killed run left the mark
};

struct RunStatus {
  std::string dir, plan_hash, mode;  // mode: "one process", "mpi" or "shards"
  int items = 0, units = 0, done = 0, left = 0;
  std::vector<RunningItem> running;
  std::vector<std::pair<int, int>> shards;  // (shard, units done there)
  double eta_seconds = -1;                  // -1: no timings yet
  std::string eta_source;
  bool answered = false;  // fronts written
};

RunStatus run_status(const std::string& dir);
std::string status_text(const RunStatus& s);
nlohmann::json status_json(const RunStatus& s);

}  // namespace iotnas::apps
