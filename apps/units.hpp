// One item of a plan (apps/plan.hpp: a candidate's train unit and sweep unit) run against the
// finished units it can reuse. The same code runs an item in one `iotnas run`, in a shard of a job
// array, and on an MPI worker; only the UnitStore differs: the run's (or the shard's) store, or a
// copy of the item's rows whose new rows go to MPI rank 0 as messages (apps/cluster.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/plan.hpp"
#include "apps/store/store.hpp"
#include "engine/backend.hpp"
#include "engine/data.hpp"
#include "engine/trainer.hpp"

namespace iotnas::apps {

// Where an item's finished units are found and new ones are written.
class UnitStore {
 public:
  virtual ~UnitStore() = default;
  // The finished training run with this key, with its weights when `with_weights`.
  virtual std::optional<RunRow> run(const std::string& key, bool with_weights) = 0;
  // Whether training this key diverged in an earlier run (recorded, skipped).
  virtual bool failed(const std::string& key) = 0;
  virtual bool swept(int64_t run_id, const std::string& eval_key) = 0;
  virtual std::vector<AccuracyRow> accuracies(int64_t run_id, const std::string& eval_key) = 0;
  // Each put is committed (or sent) at once. put_run fills in the model's id; returns the run's.
  virtual int64_t put_run(RunRow row, const PlanModel& model) = 0;
  virtual void put_failed(const std::string& key, const PlanModel& model,
                          const std::string& error) = 0;
  virtual void put_accuracy(const AccuracyRow& row) = 0;
  virtual void put_sweep(const SweepRow& row) = 0;
};

// The units of a Store (a run's or a shard's): models are put there as their runs arrive.
class StoreUnits final : public UnitStore {
 public:
  explicit StoreUnits(Store& store) : s_(store) {}
  std::optional<RunRow> run(const std::string& key, bool with_weights) override;
  bool failed(const std::string& key) override;
  bool swept(int64_t run_id, const std::string& eval_key) override;
  std::vector<AccuracyRow> accuracies(int64_t run_id, const std::string& eval_key) override;
  int64_t put_run(RunRow row, const PlanModel& model) override;
  void put_failed(const std::string& key, const PlanModel& model,
                  const std::string& error) override;
  void put_accuracy(const AccuracyRow& row) override;
  void put_sweep(const SweepRow& row) override;

 private:
  Store& s_;
};

// What every item of a run shares.
struct ItemContext {
  const RunConfig& config;
  const Plan& plan;
  BackendKind backend;
  const Dataset& train_data;
  const EvalSet& eval_set;
  std::function<void(const std::string&)> line;    // a line that stays
  std::function<void(const std::string&)> update;  // a transient status line
  std::function<bool()> stopping;                  // asked between the train and the sweep
};

// What one item did.
struct ItemCounts {
  int trained = 0, reused = 0, failed = 0, sweeps = 0;
  int64_t formats = 0;
  double train_seconds = 0, sweep_seconds = 0;
};

// Runs item `item`: trains its candidate (or finds the finished run; a diverging model is recorded
// as failed and skipped), then evaluates the formats not yet in `store` and records the sweep.
ItemCounts run_item(const ItemContext& ctx, int item, UnitStore& store);

// The training split reduced to a class-balanced subset of n images (n <= 0: unchanged), and the
// evaluation set of a run: what every process of a run computes alike from the config.
Dataset training_subset(const Dataset& data, int64_t n);
EvalSet run_eval_set(const RunConfig& config, const Dataset& data);

// "[3/12] plain[8,3,...]": how progress lines name item `item`.
std::string item_tag(const Plan& plan, int item);

}  // namespace iotnas::apps
