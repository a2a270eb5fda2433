// Latency models fitted on a device profile (DESIGN.md §6), validated on held-out models, and
// used to predict the latency of models never run on the device.
//   loglog_global  the paper's model: log10(latency) = a + b log10(FLOPs) + c log10(params)
//   loglog_space   the same, one fit per search space (global where a space has few models)
//   operator_sum   latency = sum over layers of a per-op-type cost, each linear in the layer's
//                  shape (FLOPs, input/output elements, weights) plus a per-layer overhead; the
//                  costs are fitted jointly on whole-model latencies by non-negative least squares
//                  on relative error (no per-layer timings are needed)
//   layer_knn      latency = a + b * sum over layers of each layer's predicted time, a layer's
//                  time from the measured layers of the same kind nearest to it in log-shape
//                  (k nearest neighbours, in the spirit of kernel-level predictors); it learns
//                  from the per-layer times a profile's measurements carry
//   layer_gbm      latency = a + sum over layers of each layer's predicted time, a layer's
//                  time = its work x an efficiency from gradient-boosted regression trees over
//                  its op, shape, channel tails and context (the model's memory footprint, the
//                  layer's position), fitted on the per-layer times (in the spirit of kernel-level
//                  predictors, which use tree ensembles for the same reason: times step with
//                  vector-width tails and cache capacity, which smooth models miss)
//   blend          the geometric mean of operator_sum and layer_knn: their errors are largely
//                  independent (operator_sum is best on MobileNets, layer_knn on ResNets)
// Each family lives in calib/latency/<family>.cpp; calib/latency_model.cpp holds the table of
// kinds (calib/latency/kinds.hpp) that every function below answers from.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "calib/boosted_trees.hpp"
#include "engine/graph.hpp"
#include "engine/spec.hpp"

namespace iotnas::calib {

enum class ModelKind { loglog_global, loglog_space, operator_sum, layer_knn, layer_gbm, blend };
inline constexpr ModelKind kModelKinds[] = {ModelKind::loglog_global, ModelKind::loglog_space,
                                            ModelKind::operator_sum,  ModelKind::layer_knn,
                                            ModelKind::layer_gbm,     ModelKind::blend};
// Whether a kind learns from per-layer times (a profile without them cannot fit it).
bool needs_layer_times(ModelKind k);
const char* model_kind_name(ModelKind k);
ModelKind parse_model_kind(const std::string& name);  // throws iotnas::Error

// One layer as layer_knn sees it: a computing node (conv2d, dense, pooling, add, concat, or a
// batch norm that does not fold) with the relus, flattens and folded batch norms that read from
// it (the backend computes those together with it or right after it).
struct LayerUnit {
  int op = 0;                 // engine Op
  int kind = 0;               // must match between neighbours: groups, strided or not, ...
  std::array<double, 6> x{};  // log2 of the shape (channels, spatial size, kernel, ...)
  double log_work = 0;        // log2 of FLOPs (conv2d, dense) or elements moved
  // Context: log2 of the model's bytes (activations + inference weights). Past the caches, the
  // previous forward has evicted a layer's weights and output buffer by the time it runs.
  double footprint = 0;
  int position = 0;               // index of the unit in graph order (0: the first layer)
  int tail_in = 0, tail_out = 0;  // conv2d: channels mod 16 (vector-width tails); else 0
  // log2 of the weights, input and output elements (products the trees cannot form from x).
  double log_weights = 0, log_in = 0, log_out = 0;
  int merged = 0;   // relus and folded batch norms computed with it
  double ms = NAN;  // measured time of the unit (profile models with layer times)
  int model = -1;   // while fitting: which model it belongs to (never saved)
};

// What the latency models see of one model.
struct ModelFeatures {
  std::string space;            // search space (empty: none; loglog_space then uses the global fit)
  double params = 0;            // trainable parameters
  double flops = 0;             // forward FLOPs per image
  std::vector<double> op_sums;  // operator features summed over the inference graph's layers
  std::vector<LayerUnit> units;              // layer_knn's layers, in graph order
  std::map<std::string, int> unit_of_layer;  // layer name -> index into units (-1: none)
};

// layer_gbm's features of a unit: op, kind, x[6], log_work, tail_in, tail_out, footprint,
// position, log_weights, log_in, log_out, merged.
inline constexpr int kLayerGbmFeatures = 17;
std::array<double, kLayerGbmFeatures> layer_gbm_features(const LayerUnit& u);

// Sets units[].ms from a measurement's per-layer times (Measurement::layer_ms, by layer name):
// each unit gets the times of the layers it holds. Returns false (and leaves ms NaN) when a
// computing unit got no time at all, i.e. the times are not of this model.
bool attach_layer_times(ModelFeatures& f, const std::map<std::string, double>& layer_ms);

// Names of the operator features, e.g. "conv.flops_M" (one per entry of op_sums).
const std::vector<std::string>& operator_feature_names();
// Features of a model: builds its graph (throws iotnas::Error naming the layer when the spec
// fails shape inference) and skips batch norms that fold into their producer.
ModelFeatures model_features(const ModelSpec& spec, const std::string& space = {});
ModelFeatures model_features(const Graph& graph, const std::string& space = {});
// The space named by a search-space model's name "<space>[v1,...]", else "".
std::string space_of_name(const std::string& name);

struct LatencyModel {
  ModelKind kind = ModelKind::loglog_global;
  std::vector<double> global;                         // loglog: {a, b, c}
  std::map<std::string, std::vector<double>> spaces;  // loglog_space: per-space {a, b, c}
  std::vector<double> op_weights;                     // operator_sum: ms per feature unit
  // The calibrated range: predictions outside it are extrapolations.
  double params_min = 0, params_max = 0, flops_min = 0, flops_max = 0;
  int models = 0;                       // models it was fitted on
  std::vector<std::string> unused_ops;  // operator features no fitted model exercised
  std::vector<double> op_max;           // operator_sum: largest value of each feature fitted on
  std::vector<LayerUnit> table;         // layer_knn: the measured layers it looks neighbours up in
  std::map<int64_t, double> slope;      // layer_knn: per (op, kind), d log2(time) / d log2(work)
  double a_ms = 0, b = 1;               // layer_knn: latency = a_ms + b * sum of layer times
  BoostedTrees trees;                   // layer_gbm: log2(layer ms + eps) from layer_gbm_features()
  std::vector<int64_t> kinds_seen;      // layer_gbm: (op << 32 | kind) of the layers fitted on
};

// Fits a model on (features, measured latency in ms). Throws iotnas::Error when there are too
// few models (fewer than kMinFitModels) or a latency is not positive.
inline constexpr int kMinFitModels = 8;
LatencyModel fit_latency_model(ModelKind kind, std::span<const ModelFeatures> x,
                               std::span<const double> latency_ms);
// Predicted latency in ms (no range check); NaN ("no prediction") where the model gives no finite
// number (a damaged or extreme model).
double predict_ms(const LatencyModel& m, const ModelFeatures& x);

struct Prediction {
  double latency_ms = 0;              // NaN: no prediction (see predict_ms)
  std::vector<std::string> warnings;  // outside the calibrated range, unseen op types
};
Prediction predict(const LatencyModel& m, const ModelFeatures& x);

nlohmann::json latency_model_to_json(const LatencyModel& m);
LatencyModel latency_model_from_json(const nlohmann::json& j, const std::string& origin);

// Held-out quality of predictions.
struct Scores {
  double r2 = 0;            // in log10 space, 1 - SSE / SST
  double mdape = 0;         // median |predicted - measured| / measured
  double within_10pct = 0;  // share with |predicted - measured| <= 0.1 measured
  int n = 0;
};
Scores score(std::span<const double> measured_ms, std::span<const double> predicted_ms);

struct CvResult {
  ModelKind kind = ModelKind::loglog_global;
  Scores scores;
  std::vector<double> predicted_ms;  // held-out prediction of each model
};
// k-fold cross-validation (models shuffled with `seed`, then dealt into k folds).
CvResult cross_validate(ModelKind kind, std::span<const ModelFeatures> x,
                        std::span<const double> latency_ms, int folds, uint64_t seed);

// Share of models whose first two measurements agree within +-10% (max <= 1.1 min): no
// predictor can beat this on the machine the profile was measured on.
double noise_within_10pct(std::span<const double> first_ms, std::span<const double> second_ms);

}  // namespace iotnas::calib
