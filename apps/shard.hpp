// Job arrays without MPI (docs/cluster.md): `iotnas run --shard I/N` runs shard I of the plan in
// DIR/plan.json into its own store DIR/shards/I.sqlite; `iotnas merge --run DIR` folds the shards'
// finished units into DIR/iotnas.sqlite and writes the fronts, answers and report.
#pragma once

#include <optional>
#include <string>

#include "apps/config.hpp"
#include "apps/pipeline.hpp"

namespace iotnas::apps {

// "I/N" -> {I, N}; throws iotnas::Error naming --shard for anything else or I out of 0..N-1.
std::pair<int, int> parse_shard(const std::string& text);

// Runs shard `shard` of `shards` of the plan in DIR/plan.json. `given`: the config the command
// line names (or nullptr): refused when the plan was made from another. `threads` > 0 overrides
// the plan's. Throws iotnas::Error when DIR has no plan, or the shard's store holds another plan.
RunSummary run_shard(const std::string& dir, int shard, int shards, const RunConfig* given,
                     int threads, const RunHooks& hooks);

struct MergeSummary {
  int shards = 0;                    // shard stores read
  int64_t runs = 0, accuracies = 0;  // rows new in DIR/iotnas.sqlite
  int64_t sweeps = 0, failed = 0;    //
  int units = 0, units_done = 0;     // the plan's train and sweep units, and those finished
  bool answered = false;             // fronts, answers and report written
};

// Folds DIR/shards/*.sqlite into DIR/iotnas.sqlite (idempotent; every shard is checked before
// anything is written: another plan or iotnas version is refused), then answers.
MergeSummary merge_run(const std::string& dir, const RunHooks& hooks);

// Throws iotnas::Error when DIR/shards holds a shard store of a plan other than `hash`.
void refuse_other_shards(const std::string& dir, const std::string& hash);

// The units finished in `store` of each of the plan's items: 0, 1 (trained) or 2 (swept, or its
// training failed: a failed training counts as both).
std::vector<int> item_units(const Plan& plan, Store& store);

}  // namespace iotnas::apps
