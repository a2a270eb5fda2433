// blend: the geometric mean of operator_sum and layer_knn, fitted, checked and saved as both.
#include <algorithm>
#include <cmath>

#include "calib/latency/kinds.hpp"

namespace iotnas::calib {

void fit_blend(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y) {
  fit_operator_sum(m, x, y);
  fit_layer_knn(m, x, y);
}

double blend_ms(const LatencyModel& m, const ModelFeatures& x) {
  return std::sqrt(std::max(operator_sum_ms(m, x), 1e-6) * layer_knn_ms(m, x));
}

void warn_blend(const LatencyModel& m, const ModelFeatures& x, std::vector<std::string>& out) {
  warn_operator_sum(m, x, out);
  warn_layer_knn(m, x, out);
}

void blend_to_json(const LatencyModel& m, nlohmann::json& j) {
  operator_sum_to_json(m, j);
  layer_knn_to_json(m, j);
}

void blend_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m) {
  operator_sum_from_json(j, origin, m);
  layer_knn_from_json(j, origin, m);
}

}  // namespace iotnas::calib
