// What a plan costs in time (docs/cluster.md "Time estimates"): the training and sweep speed of a
// machine in multiply-accumulates per second, from a store's own timings when it has finished
// items, else from a short probe (training the plan's median candidate on a few hundred images).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apps/plan.hpp"

namespace iotnas::apps {

struct Speed {
  double macs_per_second = 0;  // one process with the plan's threads
  std::string source;          // where the figure came from, for the scripts' comments
};

// The speed from the finished items' timings in DIR/iotnas.sqlite and DIR/shards/, if any.
std::optional<Speed> timed_speed(const PlanDoc& doc, const std::string& dir);
// The speed for `doc` on this machine with `threads` OpenMP threads (0: OpenMP's default): from
// the finished items in DIR/iotnas.sqlite and DIR/shards/ (when there are any), else a probe.
Speed measure_speed(const PlanDoc& doc, const std::string& dir, int threads);

// The estimated seconds of every item of the plan (item_cost / speed).
std::vector<double> item_seconds(const PlanDoc& doc, const Speed& speed);

// A plan's cost in words: models, items, units, multiply-accumulates, and core-hours at `speed`.
std::string plan_summary(const PlanDoc& doc, const Speed& speed, int threads);

}  // namespace iotnas::apps
