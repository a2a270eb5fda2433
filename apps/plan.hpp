// The work of one `iotnas run` as plain data: the chosen models and the units of work on them,
// each with the store key that says whether it is done. run_pipeline builds it once (search ->
// select -> calibrate -> plan) and then executes it unit by unit, so that several processes can
// share one plan and split its units.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/config.hpp"
#include "apps/store/store.hpp"
#include "quant/format.hpp"
#include "search/select.hpp"

namespace iotnas::apps {

struct PlanModel : search::Pick {
  int64_t model_id = 0;  // in the run's store; 0 until it is put there
};

struct PlanUnit {
  enum class Kind { measure, train, sweep };
  Kind kind = Kind::train;
  int model = 0;  // index into Plan::models
  // measure: the model's key (a latency is kept per model and device); train: the training run's
  // key; sweep: the same run's key (a sweep is kept per run and Plan::eval_key).
  std::string key;
};

struct Plan {
  std::vector<PlanModel> models;            // in the order they were chosen
  std::vector<int> candidates;              // models trained and swept, in this order
  std::string recipe_json;                  // the training recipe (recipe_json of the run config)
  std::string eval_key;                     // the evaluation set every sweep uses
  std::vector<quant::FloatFormat> formats;  // the formats every sweep evaluates
  // Measurements for the calibration (run while the plan is built: the constraint picks need
  // the latency model), then train i and sweep i for each candidate i in turn.
  std::vector<PlanUnit> units;
  // What the cost estimates need: training images per epoch and evaluation images per format.
  int64_t train_images = 0;
  int64_t eval_images = 0;
  std::string hash;  // plan_hash(), set by finish_plan and read_plan
};

inline constexpr const char* kPlanFormat = "iotnas-plan/1";
inline constexpr const char* kPlanFile = "plan.json";
inline constexpr const char* kShardDir = "shards";

// A plan with the run config it was made from: what DIR/plan.json holds (docs/cluster.md).
struct PlanDoc {
  Plan plan;
  RunConfig config;
};

// The hash of what determines a plan's results: the config (but its `threads`), the models, the
// units, the recipe, formats and evaluation set. Shards and merges compare it.
std::string plan_hash(const Plan& plan, const RunConfig& config);
nlohmann::json plan_to_json(const PlanDoc& doc);
// Parses a plan document; `origin` names it in errors.
PlanDoc plan_from_json(const nlohmann::json& j, const std::string& origin);
// DIR/plan.json, written atomically; read_plan gives nullopt when there is none.
void write_plan(const std::string& dir, const PlanDoc& doc);
std::optional<PlanDoc> read_plan(const std::string& dir);

// Items: a candidate's train and sweep units, run as one by one worker or shard (the sweep needs
// the trained weights). Item j is plan.candidates[j].
int item_count(const Plan& plan);
// The store key of item j (its training run's key).
const std::string& item_key(const Plan& plan, int item);
// The estimated work of item j in multiply-accumulates: training (forward and backward, about
// 3x the forward FLOPs per image and epoch) and the sweep (one forward per image and format).
double item_cost(const Plan& plan, const RunConfig& config, int item);
// The items of shard `shard` of `shards`: a fixed balance of the estimated costs (largest first,
// each to the least loaded shard), the same in every process that reads the plan.
std::vector<int> shard_items(const Plan& plan, const RunConfig& config, int shard, int shards);

// Appends a model; returns its index.
int add_model(Plan& plan, search::Pick pick);

// The store key of training the model `spec_json` with `recipe_json` on `dataset` from `seed`.
std::string run_key(const std::string& spec_json, const std::string& dataset,
                    const std::string& recipe_json, uint64_t seed);

// Appends a measure unit for each of `models` (indices into plan.models).
void plan_measurements(Plan& plan, const std::vector<int>& models);
// Appends train and sweep units for every candidate (plan.recipe_json must be set).
void plan_runs(Plan& plan, const std::string& dataset, uint64_t seed);

// The store's row of a planned model.
ModelRow model_row(const search::Pick& p);

}  // namespace iotnas::apps
