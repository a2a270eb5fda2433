// loglog_global (the paper's model) and loglog_space: log10(latency) = a + b log10(FLOPs) +
// c log10(params) by ordinary least squares, over every model or per search space.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "calib/latency/kinds.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

namespace {

double log10_at_least_1(double v) {
  return std::log10(std::max(v, 1.0));
}

// Ordinary least squares of log10(latency) on {1, log10 FLOPs, log10 params}.
std::vector<double> fit_loglog(std::span<const ModelFeatures> x, std::span<const double> y,
                               const std::vector<size_t>& rows) {
  Eigen::MatrixXd A(rows.size(), 3);
  Eigen::VectorXd b(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& f = x[rows[r]];
    A(Eigen::Index(r), 0) = 1;
    A(Eigen::Index(r), 1) = log10_at_least_1(f.flops);
    A(Eigen::Index(r), 2) = log10_at_least_1(f.params);
    b(Eigen::Index(r)) = std::log10(y[rows[r]]);
  }
  const Eigen::VectorXd c = A.colPivHouseholderQr().solve(b);
  return {c(0), c(1), c(2)};
}

double eval_loglog(const std::vector<double>& c, const ModelFeatures& f) {
  return std::pow(10.0,
                  c[0] + c[1] * log10_at_least_1(f.flops) + c[2] * log10_at_least_1(f.params));
}

std::vector<size_t> all_rows(size_t n) {
  std::vector<size_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  return all;
}

}  // namespace

void fit_loglog_global(LatencyModel& m, std::span<const ModelFeatures> x,
                       std::span<const double> y) {
  m.global = fit_loglog(x, y, all_rows(x.size()));
}

void fit_loglog_space(LatencyModel& m, std::span<const ModelFeatures> x,
                      std::span<const double> y) {
  m.global = fit_loglog(x, y, all_rows(x.size()));
  std::map<std::string, std::vector<size_t>> by_space;
  for (size_t i = 0; i < x.size(); ++i)
    if (!x[i].space.empty()) by_space[x[i].space].push_back(i);
  for (const auto& [space, rows] : by_space)
    if (int(rows.size()) >= kMinFitModels) m.spaces[space] = fit_loglog(x, y, rows);
}

double loglog_global_ms(const LatencyModel& m, const ModelFeatures& x) {
  return eval_loglog(m.global, x);
}

double loglog_space_ms(const LatencyModel& m, const ModelFeatures& x) {
  auto it = m.spaces.find(x.space);
  return eval_loglog(it == m.spaces.end() ? m.global : it->second, x);
}

void warn_loglog_space(const LatencyModel& m, const ModelFeatures& x,
                       std::vector<std::string>& out) {
  if (!x.space.empty() && !m.spaces.count(x.space))
    out.push_back("space '" + x.space + "' was not calibrated on its own: global fit used");
}

void loglog_to_json(const LatencyModel& m, nlohmann::json& j) {
  if (!m.global.empty()) j["global"] = m.global;
  if (!m.spaces.empty()) j["spaces"] = m.spaces;
}

void loglog_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m) {
  m.global = j.at("global").get<std::vector<double>>();
  if (m.global.size() != 3) fail(origin, ": latency model 'global' needs 3 coefficients");
  if (j.contains("spaces"))
    m.spaces = j["spaces"].get<std::map<std::string, std::vector<double>>>();
  for (const auto& [s, c] : m.spaces)
    if (c.size() != 3) fail(origin, ": latency model of space '", s, "' needs 3 coefficients");
}

}  // namespace iotnas::calib
