// layer_gbm: latency = a + sum over the layer units of work x an efficiency predicted by
// gradient-boosted regression trees (calib/boosted_trees.hpp) from the unit's op, shape and
// context.
#include <algorithm>
#include <cmath>

#include "calib/latency/kinds.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

std::array<double, kLayerGbmFeatures> layer_gbm_features(const LayerUnit& u) {
  return {double(u.op),
          double(u.kind),
          u.x[0],
          u.x[1],
          u.x[2],
          u.x[3],
          u.x[4],
          u.x[5],
          u.log_work,
          double(u.tail_in),
          double(u.tail_out),
          u.footprint,
          double(u.position),
          u.log_weights,
          u.log_in,
          u.log_out,
          double(u.merged)};
}

// layer_gbm: trees fitted on every measured layer's (scaled) time per unit of work, in log2:
// time = work * efficiency(features). Trees are piecewise constant, so they extrapolate the
// efficiency flat past the largest calibrated layers, where a time target would stay flat.
void fit_layer_gbm(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y) {
  std::vector<size_t> rows;
  const std::vector<LayerUnit> layers = scaled_layers(m, x, y, rows);
  std::vector<double> features, target;
  features.reserve(layers.size() * kLayerGbmFeatures);
  for (const auto& u : layers) {
    const auto f = layer_gbm_features(u);
    features.insert(features.end(), f.begin(), f.end());
    target.push_back(std::log2(u.ms + kEpsMs) - u.log_work);
  }
  m.trees.fit(features, kLayerGbmFeatures, target);
  for (const auto& u : layers) m.kinds_seen.push_back(slope_key(u.op, u.kind));
  std::sort(m.kinds_seen.begin(), m.kinds_seen.end());
  m.kinds_seen.erase(std::unique(m.kinds_seen.begin(), m.kinds_seen.end()), m.kinds_seen.end());
}

double layer_gbm_ms(const LatencyModel& m, const ModelFeatures& x) {
  double s = 0;
  for (const auto& u : x.units) {
    const auto f = layer_gbm_features(u);
    s += std::max(std::exp2(m.trees.predict(f) + u.log_work) - kEpsMs, 0.0);
  }
  return std::max(m.a_ms + s, 1e-6);
}

void warn_layer_gbm(const LatencyModel& m, const ModelFeatures& x, std::vector<std::string>& out) {
  int unseen = 0;
  for (const auto& u : x.units)
    unseen +=
        !std::binary_search(m.kinds_seen.begin(), m.kinds_seen.end(), slope_key(u.op, u.kind));
  warn_unseen_layers(unseen, out);
}

void layer_gbm_to_json(const LatencyModel& m, nlohmann::json& j) {
  j["trees"] = m.trees.to_json();
  j["kinds"] = m.kinds_seen;
  j["a_ms"] = m.a_ms;
}

void layer_gbm_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m) {
  m.trees = BoostedTrees::from_json(j.at("trees"), kLayerGbmFeatures, origin);
  m.kinds_seen = j.at("kinds").get<std::vector<int64_t>>();
  std::sort(m.kinds_seen.begin(), m.kinds_seen.end());
  m.a_ms = j.at("a_ms").get<double>();
  if (m.trees.empty() || !(m.a_ms >= 0))
    fail(origin, ": the layer_gbm model has no trees or a bad a_ms; fit it again");
}

}  // namespace iotnas::calib
