#include "calib/latency_model.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/error.hpp"

namespace iotnas::calib {

const char* model_kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::loglog_global:
      return "loglog_global";
    case ModelKind::loglog_space:
      return "loglog_space";
    case ModelKind::operator_sum:
      return "operator_sum";
  }
  return "?";
}

ModelKind parse_model_kind(const std::string& name) {
  for (ModelKind k : kModelKinds)
    if (name == model_kind_name(k)) return k;
  fail("unknown latency model '", name, "'; known: loglog_global, loglog_space, operator_sum");
}

namespace {

// Operator feature layout: groups of op types, each with its shape features. Units keep the
// columns near 1 for typical layers (MFLOP, thousands of elements).
struct FeatureGroup {
  const char* name;
  std::vector<const char*> features;
};
const std::vector<FeatureGroup>& groups() {
  static const std::vector<FeatureGroup> g = {
      // groups 1, kernel > 1x1; *16: channels rounded up to 16, the channel block of vector
      // kernels (oneDNN's AVX-512 layouts): small channel counts waste most of each vector.
      {"conv", {"count", "flops_M", "flops16_M", "in_K", "out_K", "out16_K", "weights_K"}},
      {"conv1x1", {"count", "flops_M", "flops16_M", "in_K", "out_K", "out16_K", "weights_K"}},
      {"conv_grouped", {"count", "flops_M", "in16_K", "out_K", "out16_K", "weights_K"}},
      {"dense", {"count", "flops_M", "weights_K"}},
      {"pool", {"count", "in_K", "in16_K", "out_K"}},  // max_pool, avg_pool
      {"global_avg_pool", {"count", "in_K"}},
      {"relu", {"count", "elems_K", "elems16_K"}},
      // Only batch norms that do not fold. unaligned: channels not a multiple of 4, which
      // vector kernels (oneDNN's among them) leave to a slower generic path.
      {"batch_norm", {"count", "elems_K", "elems16_K", "unaligned_K"}},
      {"add", {"count", "elems_K", "elems16_K"}},
      {"concat", {"count", "elems_K", "elems16_K", "inputs"}},
      {"model", {"count"}},  // per-model overhead (input copy, program entry)
  };
  return g;
}
int group_offset(const char* name) {
  int off = 0;
  for (const auto& g : groups()) {
    if (std::string(g.name) == name) return off;
    off += int(g.features.size());
  }
  IOTNAS_ASSERT(false, std::string("unknown feature group ") + name);
  return -1;
}

}  // namespace

const std::vector<std::string>& operator_feature_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& g : groups())
      for (const char* f : g.features) n.push_back(std::string(g.name) + "." + f);
    return n;
  }();
  return names;
}

std::string space_of_name(const std::string& name) {
  const auto b = name.find('[');
  if (b == std::string::npos || b == 0 || name.back() != ']') return {};
  return name.substr(0, b);
}

ModelFeatures model_features(const Graph& graph, const std::string& space) {
  ModelFeatures f;
  f.space = space;
  const Analytics a = analyze(graph);
  f.params = double(a.params);
  f.flops = double(a.flops);
  f.op_sums.assign(operator_feature_names().size(), 0.0);
  const auto folded = foldable_batch_norms(graph);
  auto put = [&](const char* group, std::initializer_list<double> values) {
    int i = group_offset(group);
    for (double v : values) f.op_sums[size_t(i++)] += v;
  };
  auto pad16 = [](int c) { return double((c + 15) / 16 * 16); };
  for (size_t i = 1; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    const double in_k = double(n.in.size()) / 1e3, out_k = double(n.out.size()) / 1e3;
    const double in16_k = pad16(n.in.c) * n.in.h * n.in.w / 1e3;
    const double out16_k = pad16(n.out.c) * n.out.h * n.out.w / 1e3;
    const double flops_m = double(n.flops) / 1e6, weights_k = double(n.weight_count) / 1e3;
    switch (n.layer.op) {
      case Op::conv2d: {
        const Layer& l = n.layer;
        if (l.groups > 1) {
          put("conv_grouped", {1, flops_m, in16_k, out_k, out16_k, weights_k});
          break;
        }
        const double flops16_m = 2.0 * n.out.h * n.out.w * l.kernel_h * l.kernel_w * pad16(n.in.c) *
                                 pad16(n.out.c) / 1e6;
        put(l.kernel_h * l.kernel_w == 1 ? "conv1x1" : "conv",
            {1, flops_m, flops16_m, in_k, out_k, out16_k, weights_k});
        break;
      }
      case Op::dense:
        put("dense", {1, flops_m, weights_k});
        break;
      case Op::max_pool:
      case Op::avg_pool:
        put("pool", {1, in_k, in16_k, out_k});
        break;
      case Op::global_avg_pool:
        put("global_avg_pool", {1, in_k});
        break;
      case Op::batch_norm:
        if (!folded[i]) put("batch_norm", {1, out_k, out16_k, n.out.c % 4 ? out_k : 0.0});
        break;
      case Op::relu:
        put("relu", {1, out_k, out16_k});
        break;
      case Op::add: {
        const double k = double(n.inputs.size());
        put("add", {1, out_k * k, out16_k * k});
        break;
      }
      case Op::concat:
        put("concat", {1, out_k, out16_k, double(n.inputs.size())});
        break;
      case Op::input:
      case Op::flatten:
        break;
    }
  }
  put("model", {1});
  return f;
}

ModelFeatures model_features(const ModelSpec& spec, const std::string& space) {
  return model_features(build_graph(spec), space.empty() ? space_of_name(spec.name) : space);
}

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
std::vector<double> fit_operator(std::span<const ModelFeatures> x, std::span<const double> y,
                                 const std::vector<size_t>& rows) {
  const size_t p = operator_feature_names().size();
  Eigen::MatrixXd A(rows.size(), Eigen::Index(p));
  Eigen::VectorXd b = Eigen::VectorXd::Ones(Eigen::Index(rows.size()));
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t k = 0; k < p; ++k)
      A(Eigen::Index(r), Eigen::Index(k)) = x[rows[r]].op_sums[k] / y[rows[r]];
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
  std::vector<size_t> all(x.size());
  std::iota(all.begin(), all.end(), 0);
  switch (kind) {
    case ModelKind::loglog_global:
      m.global = fit_loglog(x, y, all);
      break;
    case ModelKind::loglog_space: {
      m.global = fit_loglog(x, y, all);
      std::map<std::string, std::vector<size_t>> by_space;
      for (size_t i = 0; i < x.size(); ++i)
        if (!x[i].space.empty()) by_space[x[i].space].push_back(i);
      for (const auto& [space, rows] : by_space)
        if (int(rows.size()) >= kMinFitModels) m.spaces[space] = fit_loglog(x, y, rows);
      break;
    }
    case ModelKind::operator_sum: {
      m.op_weights = fit_operator(x, y, all);
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
      break;
    }
  }
  return m;
}

double predict_ms(const LatencyModel& m, const ModelFeatures& x) {
  switch (m.kind) {
    case ModelKind::loglog_global:
      return eval_loglog(m.global, x);
    case ModelKind::loglog_space: {
      auto it = m.spaces.find(x.space);
      return eval_loglog(it == m.spaces.end() ? m.global : it->second, x);
    }
    case ModelKind::operator_sum: {
      IOTNAS_ASSERT(x.op_sums.size() == m.op_weights.size());
      double s = 0;
      for (size_t k = 0; k < x.op_sums.size(); ++k) s += m.op_weights[k] * x.op_sums[k];
      return s;
    }
  }
  return NAN;
}

Prediction predict(const LatencyModel& m, const ModelFeatures& x) {
  Prediction p;
  p.latency_ms = predict_ms(m, x);
  char buf[256];
  if (x.params < m.params_min || x.params > m.params_max) {
    std::snprintf(buf, sizeof buf,
                  "%.0f parameters is outside the calibrated range [%.0f, %.0f]: the prediction "
                  "is an extrapolation",
                  x.params, m.params_min, m.params_max);
    p.warnings.push_back(buf);
  }
  if (x.flops < m.flops_min || x.flops > m.flops_max) {
    std::snprintf(buf, sizeof buf,
                  "%.4g FLOPs is outside the calibrated range [%.4g, %.4g]: the prediction is an "
                  "extrapolation",
                  x.flops, m.flops_min, m.flops_max);
    p.warnings.push_back(buf);
  }
  if (m.kind == ModelKind::operator_sum) {
    const auto& names = operator_feature_names();
    // A feature far beyond every calibrated model (e.g. a dense layer 100x wider than any
    // classifier measured) makes its fitted cost an extrapolation, whatever the totals say.
    for (size_t k = 0; k < m.op_max.size() && k < x.op_sums.size(); ++k) {
      if (m.op_max[k] > 0 && x.op_sums[k] > 2 * m.op_max[k]) {
        std::snprintf(buf, sizeof buf,
                      "its %s = %.4g is more than twice the largest calibrated (%.4g): the "
                      "prediction is an extrapolation",
                      names[k].c_str(), x.op_sums[k], m.op_max[k]);
        p.warnings.push_back(buf);
      }
    }
    for (const auto& op : m.unused_ops) {
      for (size_t k = 0; k < names.size(); ++k)
        if (names[k] == op + ".count" && x.op_sums[k] > 0)
          p.warnings.push_back("the model has '" + op +
                               "' layers, which no calibrated model had: their cost is unknown "
                               "(counted as 0)");
    }
  }
  if (m.kind == ModelKind::loglog_space && !x.space.empty() && !m.spaces.count(x.space))
    p.warnings.push_back("space '" + x.space + "' was not calibrated on its own: global fit used");
  return p;
}

nlohmann::json latency_model_to_json(const LatencyModel& m) {
  nlohmann::json j = {
      {"kind", model_kind_name(m.kind)},
      {"models", m.models},
      {"range", {{"params", {m.params_min, m.params_max}}, {"flops", {m.flops_min, m.flops_max}}}}};
  if (!m.global.empty()) j["global"] = m.global;
  if (!m.spaces.empty()) j["spaces"] = m.spaces;
  if (!m.op_weights.empty()) {
    j["op_features"] = operator_feature_names();
    j["op_weights_ms"] = m.op_weights;
    j["unused_ops"] = m.unused_ops;
    j["op_max"] = m.op_max;
  }
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
    if (m.kind != ModelKind::operator_sum) {
      m.global = j.at("global").get<std::vector<double>>();
      if (m.global.size() != 3) fail(origin, ": latency model 'global' needs 3 coefficients");
      if (j.contains("spaces"))
        m.spaces = j["spaces"].get<std::map<std::string, std::vector<double>>>();
      for (const auto& [s, c] : m.spaces)
        if (c.size() != 3) fail(origin, ": latency model of space '", s, "' needs 3 coefficients");
    } else {
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
      if (int(i % size_t(folds)) == f) r.predicted_ms[order[i]] = predict_ms(m, x[order[i]]);
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
