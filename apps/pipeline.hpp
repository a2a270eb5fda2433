// The integrated loop of `iotnas run` (DESIGN.md section 1): search -> calibrate -> select ->
// train -> precision sweep -> fronts and constraint answers -> report, in one process. Every
// finished unit goes to the experiment store at once (apps/store/), and every stage first asks
// the store whether its unit is already done, so a rerun after a kill resumes where it stopped.
// The run is built as a Plan (apps/plan.hpp: search -> select -> calibrate -> plan) and then
// executed unit by unit.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "apps/config.hpp"

namespace iotnas::apps {

struct StageSeconds {
  double load = 0, search = 0, calibrate = 0, select = 0, train = 0, sweep = 0, answers = 0;
};

struct RunSummary {
  int candidates = 0;             // models selected for training
  int trained = 0;                // trained in this process
  int reused = 0;                 // found finished in the store
  int failed = 0;                 // training diverged (recorded as artifact failed-run, skipped)
  int sweeps_done = 0;            // sweeps finished in this process
  int64_t formats_evaluated = 0;  // format accuracies computed in this process
  int calibration_measured = 0;   // latencies measured in this process
  bool stopped = false;           // a stop was requested: the run ended after the unit in hand
  StageSeconds seconds;
  double total_seconds = 0;
};

struct RunHooks {
  std::function<void(const std::string&)> line;    // a line that stays (stage starts, results)
  std::function<void(const std::string&)> update;  // a transient status line
  const std::atomic<bool>* stop = nullptr;         // set (SIGINT/SIGTERM): finish the unit, return
};

// Runs the loop for `config` into `dir` (created; an existing store is resumed). Throws
// iotnas::Error for bad input (dataset, store of another version, ...) before writing anything
// the error concerns.
RunSummary run_pipeline(const RunConfig& config, const std::string& dir, const RunHooks& hooks);

}  // namespace iotnas::apps
