// The table of latency-model kinds (one row per kind; the families live in calib/latency/), and
// what every kind shares: fitting's checks and calibrated range, range warnings, the saved
// model's common keys, scores and cross-validation.
#include "calib/latency_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <numeric>
#include <random>

#include "calib/latency/kinds.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

namespace {

// In ModelKind order (checked below); kind_info() indexes it by kind.
constexpr LatencyKind kKinds[] = {
    {ModelKind::loglog_global, "loglog_global", false, fit_loglog_global, loglog_global_ms, nullptr,
     loglog_to_json, loglog_from_json},
    {ModelKind::loglog_space, "loglog_space", false, fit_loglog_space, loglog_space_ms,
     warn_loglog_space, loglog_to_json, loglog_from_json},
    {ModelKind::operator_sum, "operator_sum", false, fit_operator_sum, operator_sum_ms,
     warn_operator_sum, operator_sum_to_json, operator_sum_from_json},
    {ModelKind::layer_knn, "layer_knn", true, fit_layer_knn, layer_knn_ms, warn_layer_knn,
     layer_knn_to_json, layer_knn_from_json},
    {ModelKind::layer_gbm, "layer_gbm", true, fit_layer_gbm, layer_gbm_ms, warn_layer_gbm,
     layer_gbm_to_json, layer_gbm_from_json},
    {ModelKind::blend, "blend", true, fit_blend, blend_ms, warn_blend, blend_to_json,
     blend_from_json},
};

constexpr bool rows_in_kind_order() {
  if (std::size(kKinds) != std::size(kModelKinds)) return false;
  for (size_t i = 0; i < std::size(kKinds); ++i)
    if (kKinds[i].kind != kModelKinds[i] || size_t(kModelKinds[i]) != i) return false;
  return true;
}
static_assert(rows_in_kind_order(), "one row per ModelKind, in kModelKinds order");

}  // namespace

const LatencyKind& kind_info(ModelKind k) {
  IOTNAS_ASSERT(size_t(k) < std::size(kKinds), "latency model kind " + std::to_string(int(k)));
  return kKinds[size_t(k)];
}

bool needs_layer_times(ModelKind k) {
  return kind_info(k).needs_layer_times;
}

const char* model_kind_name(ModelKind k) {
  return size_t(k) < std::size(kKinds) ? kKinds[size_t(k)].name : "?";
}

ModelKind parse_model_kind(const std::string& name) {
  std::string known;
  for (const LatencyKind& row : kKinds) {
    if (name == row.name) return row.kind;
    known += (known.empty() ? "" : ", ") + std::string(row.name);
  }
  fail("unknown latency model '", name, "'; known: ", known);
}

LatencyModel fit_latency_model(ModelKind kind, std::span<const ModelFeatures> x,
                               std::span<const double> y) {
  IOTNAS_ASSERT(x.size() == y.size());
  if (int(x.size()) < kMinFitModels)
    fail("too few measured models to fit a latency model: ", x.size(), " (need at least ",
         kMinFitModels, "); measure more with `iotnas calib measure --n N`");
  for (double v : y)
    if (!(v > 0) || !std::isfinite(v)) fail("measured latency ", v, " ms is not positive");
  LatencyModel m;
  m.kind = kind;
  m.models = int(x.size());
  m.params_min = m.flops_min = INFINITY;
  for (const auto& f : x) {
    m.params_min = std::min(m.params_min, f.params);
    m.params_max = std::max(m.params_max, f.params);
    m.flops_min = std::min(m.flops_min, f.flops);
    m.flops_max = std::max(m.flops_max, f.flops);
  }
  kind_info(kind).fit(m, x, y);
  return m;
}

double predict_ms(const LatencyModel& m, const ModelFeatures& x) {
  const double ms = kind_info(m.kind).predict_ms(m, x);
  return std::isfinite(ms) ? ms : NAN;  // e.g. coefficients that overflow: no prediction
}

namespace {

// Warns when `v` lies outside the calibrated [lo, hi]; the numbers are printed with `num_fmt`.
void warn_outside(double v, double lo, double hi, const char* num_fmt, const char* what,
                  std::vector<std::string>& out) {
  if (!(v < lo || v > hi)) return;
  const auto str = [&](double d) {
    char buf[64];
    std::snprintf(buf, sizeof buf, num_fmt, d);
    return std::string(buf);
  };
  out.push_back(str(v) + " " + what + " is outside the calibrated range [" + str(lo) + ", " +
                str(hi) + "]: the prediction is an extrapolation");
}

}  // namespace

Prediction predict(const LatencyModel& m, const ModelFeatures& x) {
  Prediction p;
  p.latency_ms = predict_ms(m, x);
  warn_outside(x.params, m.params_min, m.params_max, "%.0f", "parameters", p.warnings);
  warn_outside(x.flops, m.flops_min, m.flops_max, "%.4g", "FLOPs", p.warnings);
  if (const auto warn = kind_info(m.kind).warn) warn(m, x, p.warnings);
  return p;
}

nlohmann::json latency_model_to_json(const LatencyModel& m) {
  nlohmann::json j = {
      {"kind", model_kind_name(m.kind)},
      {"models", m.models},
      {"range", {{"params", {m.params_min, m.params_max}}, {"flops", {m.flops_min, m.flops_max}}}}};
  kind_info(m.kind).to_json(m, j);
  return j;
}

LatencyModel latency_model_from_json(const nlohmann::json& j, const std::string& origin) {
  try {
    LatencyModel m;
    m.kind = parse_model_kind(j.at("kind").get<std::string>());
    m.models = j.value("models", 0);
    const auto& r = j.at("range");
    m.params_min = r.at("params").at(0).get<double>();
    m.params_max = r.at("params").at(1).get<double>();
    m.flops_min = r.at("flops").at(0).get<double>();
    m.flops_max = r.at("flops").at(1).get<double>();
    kind_info(m.kind).from_json(j, origin, m);
    return m;
  } catch (const nlohmann::json::exception& e) {
    fail(origin, ": damaged latency model (", e.what(), "); fit it again with `iotnas calib fit`");
  }
}

Scores score(std::span<const double> measured, std::span<const double> predicted) {
  IOTNAS_ASSERT(measured.size() == predicted.size());
  Scores s;
  s.n = int(measured.size());
  if (s.n == 0) return s;
  double mean = 0;
  for (double v : measured) mean += std::log10(v);
  mean /= s.n;
  double sse = 0, sst = 0;
  std::vector<double> ape;
  int within = 0;
  for (size_t i = 0; i < measured.size(); ++i) {
    const double lm = std::log10(measured[i]);
    const double lp = std::log10(std::max(predicted[i], 1e-12));
    sse += (lm - lp) * (lm - lp);
    sst += (lm - mean) * (lm - mean);
    const double e = std::abs(predicted[i] - measured[i]) / measured[i];
    ape.push_back(e);
    within += e <= 0.1;
  }
  s.r2 = sst > 0 ? 1 - sse / sst : 0;
  std::sort(ape.begin(), ape.end());
  const size_t n = ape.size();
  s.mdape = n % 2 ? ape[n / 2] : 0.5 * (ape[n / 2 - 1] + ape[n / 2]);
  s.within_10pct = double(within) / s.n;
  return s;
}

CvResult cross_validate(ModelKind kind, std::span<const ModelFeatures> x, std::span<const double> y,
                        int folds, uint64_t seed) {
  IOTNAS_ASSERT(x.size() == y.size());
  if (folds < 2) fail("cross-validation needs at least 2 folds, not ", folds);
  if (int(x.size()) < folds)
    fail("cross-validation with ", folds, " folds needs at least ", folds, " models");
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  CvResult r;
  r.kind = kind;
  r.predicted_ms.assign(x.size(), NAN);
  for (int f = 0; f < folds; ++f) {
    std::vector<ModelFeatures> tx;
    std::vector<double> ty;
    for (size_t i = 0; i < order.size(); ++i)
      if (int(i % size_t(folds)) != f) tx.push_back(x[order[i]]), ty.push_back(y[order[i]]);
    const LatencyModel m = fit_latency_model(kind, tx, ty);
    for (size_t i = 0; i < order.size(); ++i)
      if (int(i % size_t(folds)) == f)
        r.predicted_ms[order[i]] = kind_info(kind).predict_ms(m, x[order[i]]);  // as fitted
  }
  r.scores = score(y, r.predicted_ms);
  return r;
}

double noise_within_10pct(std::span<const double> a, std::span<const double> b) {
  IOTNAS_ASSERT(a.size() == b.size());
  if (a.empty()) return NAN;
  int agree = 0;
  for (size_t i = 0; i < a.size(); ++i) agree += std::max(a[i], b[i]) <= 1.1 * std::min(a[i], b[i]);
  return double(agree) / double(a.size());
}

}  // namespace iotnas::calib
