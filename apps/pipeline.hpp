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
#include "apps/store/store.hpp"
#include "apps/units.hpp"

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
  bool planned = false;           // --plan-only: the plan was written, no item was run
  StageSeconds seconds;
  double total_seconds = 0;
};

struct RunHooks {
  std::function<void(const std::string&)> line;    // a line that stays (stage starts, results)
  std::function<void(const std::string&)> update;  // a transient status line
  const std::atomic<bool>* stop = nullptr;         // set (SIGINT/SIGTERM): finish the unit, return
};

// How the plan's items are run once the plan is made: given the items' context, the run's store
// and the summary to count into. The default runs them one after another in this process; MPI
// rank 0 hands them out to the ranks (apps/cluster.hpp).
using Executor = std::function<void(const ItemContext&, Store&, RunSummary&)>;

struct RunOptions {
  bool plan_only = false;  // make and write the plan (DIR/plan.json), run no item
  Executor execute;        // empty: in this process
};

// Runs the loop for `config` into `dir` (created; an existing store is resumed), writing the plan
// to DIR/plan.json once it is made. Throws iotnas::Error for bad input (dataset, store of another
// version, shards of another plan in DIR, ...) before writing anything the error concerns.
RunSummary run_pipeline(const RunConfig& config, const std::string& dir, const RunHooks& hooks,
                        const RunOptions& options = {});

// Runs `items` one after another into `store`, each marked as running by `worker`
// (apps/running.hpp) while it runs, until x.stopping(); counts into `sum`.
void run_items(const ItemContext& x, const std::vector<int>& items, Store& store,
               const std::string& worker, RunSummary& sum);
void add_counts(RunSummary& sum, const ItemCounts& n);

// Fronts, the constraint answers (a line each) and DIR/report.md from what `store` holds. Throws
// when no model was evaluated (`failed` diverged).
void answer_stage(Store& store, const RunConfig& config, const std::string& dir, int failed,
                  const std::function<void(const std::string&)>& line);

}  // namespace iotnas::apps
