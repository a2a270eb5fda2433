// operator_sum: latency = sum over the layers of a per-op-type cost linear in the layer's shape,
// the costs fitted jointly on whole-model latencies by non-negative least squares.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "calib/latency/kinds.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

namespace {

// Lawson-Hanson non-negative least squares: min |A x - b| subject to x >= 0.
Eigen::VectorXd nnls(const Eigen::MatrixXd& A, const Eigen::VectorXd& b) {
  const Eigen::Index p = A.cols();
  Eigen::VectorXd x = Eigen::VectorXd::Zero(p);
  std::vector<bool> passive(size_t(p), false);
  const double tol = 1e-10 * std::max(1.0, (A.transpose() * b).cwiseAbs().maxCoeff());
  for (int outer = 0; outer < 3 * int(p) + 10; ++outer) {
    const Eigen::VectorXd w = A.transpose() * (b - A * x);
    Eigen::Index j = -1;
    double best = tol;
    for (Eigen::Index k = 0; k < p; ++k)
      if (!passive[size_t(k)] && w(k) > best) best = w(k), j = k;
    if (j < 0) break;
    passive[size_t(j)] = true;
    for (int inner = 0; inner < 3 * int(p) + 10; ++inner) {
      std::vector<Eigen::Index> cols;
      for (Eigen::Index k = 0; k < p; ++k)
        if (passive[size_t(k)]) cols.push_back(k);
      Eigen::MatrixXd Ap(A.rows(), Eigen::Index(cols.size()));
      for (size_t c = 0; c < cols.size(); ++c) Ap.col(Eigen::Index(c)) = A.col(cols[c]);
      const Eigen::VectorXd zp = Ap.colPivHouseholderQr().solve(b);
      Eigen::VectorXd z = Eigen::VectorXd::Zero(p);
      for (size_t c = 0; c < cols.size(); ++c) z(cols[c]) = zp(Eigen::Index(c));
      bool feasible = true;
      for (Eigen::Index k : cols) feasible &= z(k) > 0;
      if (feasible) {
        x = z;
        break;
      }
      double alpha = 1;
      for (Eigen::Index k : cols)
        if (z(k) <= 0) alpha = std::min(alpha, x(k) / (x(k) - z(k)));
      x += alpha * (z - x);
      for (Eigen::Index k : cols)
        if (x(k) <= 1e-15) passive[size_t(k)] = false, x(k) = 0;
    }
  }
  return x;
}

// Non-negative per-feature costs minimising the squared relative error on the training rows.
std::vector<double> fit_operator(std::span<const ModelFeatures> x, std::span<const double> y) {
  const size_t p = operator_feature_names().size();
  Eigen::MatrixXd A(x.size(), Eigen::Index(p));
  Eigen::VectorXd b = Eigen::VectorXd::Ones(Eigen::Index(x.size()));
  for (size_t r = 0; r < x.size(); ++r)
    for (size_t k = 0; k < p; ++k) A(Eigen::Index(r), Eigen::Index(k)) = x[r].op_sums[k] / y[r];
  // Columns scaled to unit norm so the solver's tolerances mean the same for every feature.
  Eigen::VectorXd scale = Eigen::VectorXd::Zero(Eigen::Index(p));
  for (Eigen::Index k = 0; k < Eigen::Index(p); ++k) {
    const double n = A.col(k).norm();
    scale(k) = n > 0 ? 1 / n : 0;
    A.col(k) *= scale(k);
  }
  const Eigen::VectorXd w = nnls(A, b);
  std::vector<double> out(p);
  for (size_t k = 0; k < p; ++k) out[k] = w(Eigen::Index(k)) * scale(Eigen::Index(k));
  return out;
}

}  // namespace

void fit_operator_sum(LatencyModel& m, std::span<const ModelFeatures> x,
                      std::span<const double> y) {
  m.op_weights = fit_operator(x, y);
  const auto& names = operator_feature_names();
  m.op_max.assign(names.size(), 0.0);
  for (const auto& f : x)
    for (size_t k = 0; k < names.size(); ++k) m.op_max[k] = std::max(m.op_max[k], f.op_sums[k]);
  for (size_t k = 0; k < names.size(); ++k) {
    if (!names[k].ends_with(".count")) continue;
    bool seen = false;
    for (const auto& f : x) seen |= f.op_sums[k] > 0;
    if (!seen) m.unused_ops.push_back(names[k].substr(0, names[k].size() - 6));
  }
}

double operator_sum_ms(const LatencyModel& m, const ModelFeatures& x) {
  IOTNAS_ASSERT(x.op_sums.size() == m.op_weights.size());
  double s = 0;
  for (size_t k = 0; k < x.op_sums.size(); ++k) s += m.op_weights[k] * x.op_sums[k];
  return s;
}

void warn_operator_sum(const LatencyModel& m, const ModelFeatures& x,
                       std::vector<std::string>& out) {
  const auto& names = operator_feature_names();
  char buf[256];
  // A feature far beyond every calibrated model (e.g. a dense layer 100x wider than any
  // classifier measured) makes its fitted cost an extrapolation, whatever the totals say.
  for (size_t k = 0; k < m.op_max.size() && k < x.op_sums.size(); ++k) {
    if (m.op_max[k] > 0 && x.op_sums[k] > 2 * m.op_max[k]) {
      std::snprintf(buf, sizeof buf,
                    "its %s = %.4g is more than twice the largest calibrated (%.4g): the "
                    "prediction is an extrapolation",
                    names[k].c_str(), x.op_sums[k], m.op_max[k]);
      out.push_back(buf);
    }
  }
  for (const auto& op : m.unused_ops) {
    for (size_t k = 0; k < names.size(); ++k)
      if (names[k] == op + ".count" && x.op_sums[k] > 0)
        out.push_back("the model has '" + op +
                      "' layers, which no calibrated model had: their cost is unknown "
                      "(counted as 0)");
  }
}

void operator_sum_to_json(const LatencyModel& m, nlohmann::json& j) {
  if (m.op_weights.empty()) return;
  j["op_features"] = operator_feature_names();
  j["op_weights_ms"] = m.op_weights;
  j["unused_ops"] = m.unused_ops;
  j["op_max"] = m.op_max;
}

void operator_sum_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m) {
  if (j.at("op_features").get<std::vector<std::string>>() != operator_feature_names())
    fail(origin,
         ": the operator model was fitted with other features; fit it again with "
         "`iotnas calib fit`");
  m.op_weights = j.at("op_weights_ms").get<std::vector<double>>();
  m.unused_ops = j.value("unused_ops", std::vector<std::string>());
  m.op_max = j.value("op_max", std::vector<double>());
  if (m.op_weights.size() != operator_feature_names().size() ||
      (!m.op_max.empty() && m.op_max.size() != m.op_weights.size()))
    fail(origin, ": the operator model has the wrong number of weights; fit it again");
}

}  // namespace iotnas::calib
