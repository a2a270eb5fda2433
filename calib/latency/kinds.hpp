// Private to calib/: the latency-model kinds as one table (calib/latency_model.cpp), a row per
// kind, and the functions each family gives its rows (calib/latency/<family>.cpp). What each kind
// computes is written in calib/latency_model.hpp.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "calib/latency_model.hpp"

namespace iotnas::calib {

// One row per kind: every question about a kind is answered from its row, never by a switch.
struct LatencyKind {
  ModelKind kind;
  const char* name;        // in saved models, reports and on the command line
  bool needs_layer_times;  // learns from per-layer times (a profile without them cannot fit it)
  // Sets the kind's members of m; m.kind, m.models and the calibrated range are already set.
  void (*fit)(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y_ms);
  double (*predict_ms)(const LatencyModel& m, const ModelFeatures& x);
  // Appends the kind's own warnings, after the range warnings every kind gives; nullptr: none.
  void (*warn)(const LatencyModel& m, const ModelFeatures& x, std::vector<std::string>& out);
  void (*to_json)(const LatencyModel& m, nlohmann::json& j);  // adds the kind's keys
  // Reads the kind's keys into m; throws iotnas::Error naming `origin` when they are wrong.
  void (*from_json)(const nlohmann::json& j, const std::string& origin, LatencyModel& m);
};
const LatencyKind& kind_info(ModelKind k);

// Shared by the layer models (calib/latency/features.cpp).
inline constexpr double kEpsMs = 2e-4;  // added before logs: layers that compute (almost) nothing
inline int64_t slope_key(int op, int kind) {
  return int64_t(op) << 32 | uint32_t(kind);
}
// The measured layers of every model of x that has per-layer times (their row indices into
// `rows`), each model's times scaled to sum to its latency less the per-forward cost m.a_ms (set
// here, with m.b = 1). Each unit's `model` holds its row index. Throws iotnas::Error when fewer
// than kMinFitModels models have layer times.
std::vector<LayerUnit> scaled_layers(LatencyModel& m, std::span<const ModelFeatures> x,
                                     std::span<const double> y_ms, std::vector<size_t>& rows);
// Appends the warning for `unseen` layers with no calibrated layer of their kind (none when 0).
void warn_unseen_layers(int unseen, std::vector<std::string>& out);

// loglog_global and loglog_space (calib/latency/loglog.cpp).
void fit_loglog_global(LatencyModel& m, std::span<const ModelFeatures> x,
                       std::span<const double> y_ms);
void fit_loglog_space(LatencyModel& m, std::span<const ModelFeatures> x,
                      std::span<const double> y_ms);
double loglog_global_ms(const LatencyModel& m, const ModelFeatures& x);
double loglog_space_ms(const LatencyModel& m, const ModelFeatures& x);
void warn_loglog_space(const LatencyModel& m, const ModelFeatures& x,
                       std::vector<std::string>& out);
void loglog_to_json(const LatencyModel& m, nlohmann::json& j);
void loglog_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m);

// operator_sum (calib/latency/operator_sum.cpp).
void fit_operator_sum(LatencyModel& m, std::span<const ModelFeatures> x,
                      std::span<const double> y_ms);
double operator_sum_ms(const LatencyModel& m, const ModelFeatures& x);  // may be <= 0
void warn_operator_sum(const LatencyModel& m, const ModelFeatures& x,
                       std::vector<std::string>& out);
void operator_sum_to_json(const LatencyModel& m, nlohmann::json& j);
void operator_sum_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m);

// layer_knn (calib/latency/layer_knn.cpp).
void fit_layer_knn(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y_ms);
double layer_knn_ms(const LatencyModel& m, const ModelFeatures& x);
void warn_layer_knn(const LatencyModel& m, const ModelFeatures& x, std::vector<std::string>& out);
void layer_knn_to_json(const LatencyModel& m, nlohmann::json& j);
void layer_knn_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m);

// layer_gbm (calib/latency/layer_gbm.cpp).
void fit_layer_gbm(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y_ms);
double layer_gbm_ms(const LatencyModel& m, const ModelFeatures& x);
void warn_layer_gbm(const LatencyModel& m, const ModelFeatures& x, std::vector<std::string>& out);
void layer_gbm_to_json(const LatencyModel& m, nlohmann::json& j);
void layer_gbm_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m);

// blend: operator_sum and layer_knn in one model (calib/latency/blend.cpp).
void fit_blend(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y_ms);
double blend_ms(const LatencyModel& m, const ModelFeatures& x);
void warn_blend(const LatencyModel& m, const ModelFeatures& x, std::vector<std::string>& out);
void blend_to_json(const LatencyModel& m, nlohmann::json& j);
void blend_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m);

}  // namespace iotnas::calib
