#include "calib/latency_model.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/base/error.hpp"

namespace iotnas::calib {

const char* model_kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::loglog_global:
      return "loglog_global";
    case ModelKind::loglog_space:
      return "loglog_space";
    case ModelKind::operator_sum:
      return "operator_sum";
    case ModelKind::layer_knn:
      return "layer_knn";
    case ModelKind::layer_gbm:
      return "layer_gbm";
    case ModelKind::blend:
      return "blend";
  }
  return "?";
}

ModelKind parse_model_kind(const std::string& name) {
  for (ModelKind k : kModelKinds)
    if (name == model_kind_name(k)) return k;
  fail("unknown latency model '", name,
       "'; known: loglog_global, loglog_space, operator_sum, layer_knn, layer_gbm, blend");
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

namespace {

double lg(double v) {
  return std::log2(std::max(v, 1.0));
}

LayerUnit layer_unit(const Node& n) {
  const Layer& l = n.layer;
  LayerUnit u;
  u.op = int(l.op);
  const double in_hw = double(n.in.h) * n.in.w, out_hw = double(n.out.h) * n.out.w;
  const int strided = int(l.stride_h > 1 || l.stride_w > 1);
  u.log_weights = lg(double(n.weight_count));
  u.log_in = lg(double(n.in.size()));
  u.log_out = lg(double(n.out.size()));
  switch (l.op) {
    case Op::conv2d: {
      const int g = l.groups == 1 ? 0 : (l.groups == n.in.c && l.groups == n.out.c ? 1 : 2);
      u.kind = g | strided << 2 | int(l.kernel_h * l.kernel_w == 1) << 3;
      u.x = {lg(n.in.c), lg(n.out.c), lg(out_hw), lg(in_hw), lg(l.kernel_h), lg(l.kernel_w)};
      u.log_work = lg(double(n.flops));
      u.tail_in = n.in.c % 16;
      u.tail_out = n.out.c % 16;
      break;
    }
    case Op::dense:
      u.x = {lg(double(n.in.size())), lg(n.out.c), 0, 0, 0, 0};
      u.log_work = lg(double(n.flops));
      break;
    case Op::max_pool:
    case Op::avg_pool:
      u.x = {lg(n.in.c), lg(in_hw), lg(out_hw), 0, lg(l.kernel_h), lg(l.kernel_w)};
      u.log_work = lg(double(n.in.size()));
      break;
    case Op::global_avg_pool:
      u.x = {lg(n.in.c), lg(in_hw), 0, 0, 0, 0};
      u.log_work = lg(double(n.in.size()));
      break;
    case Op::batch_norm:  // one that does not fold; vector kernels care about channel alignment
      u.kind = int(n.out.c % 4 != 0) | int(n.out.c % 16 != 0) << 1;
      u.x = {lg(n.out.c), lg(out_hw), 0, 0, 0, 0};
      u.log_work = lg(double(n.out.size()));
      break;
    case Op::add:
      u.kind = int(n.inputs.size());
      u.x = {lg(n.out.c), lg(out_hw), 0, 0, 0, 0};
      u.log_work = lg(double(n.out.size()) * double(n.inputs.size()));
      break;
    case Op::concat:
      u.x = {lg(n.out.c), lg(out_hw), lg(double(n.inputs.size())), lg(n.in.c), 0, 0};
      u.log_work = lg(double(n.out.size()));
      break;
    default:
      u.x = {lg(double(n.out.size())), 0, 0, 0, 0, 0};
      u.log_work = lg(double(n.out.size()));
      break;
  }
  return u;
}

}  // namespace

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

  // The layer models' units: every computing node, with the light nodes that read from it.
  const double footprint = lg(double(a.total_activation_bytes) + 4.0 * double(a.inference_params));
  std::vector<int> unit_of_node(graph.nodes.size(), -1);
  for (size_t i = 1; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    const Op op = n.layer.op;
    if (op == Op::relu || op == Op::flatten || (op == Op::batch_norm && folded[i])) {
      unit_of_node[i] = unit_of_node[size_t(n.inputs[0])];
      if (unit_of_node[i] >= 0) ++f.units[size_t(unit_of_node[i])].merged;
    } else {
      unit_of_node[i] = int(f.units.size());
      f.units.push_back(layer_unit(n));
      f.units.back().position = unit_of_node[i];
      f.units.back().footprint = footprint;
    }
    f.unit_of_layer[n.layer.name] = unit_of_node[i];
  }
  return f;
}

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

bool attach_layer_times(ModelFeatures& f, const std::map<std::string, double>& layer_ms) {
  std::vector<double> ms(f.units.size(), 0.0);
  bool any = false;
  for (const auto& [name, t] : layer_ms) {
    if (name.empty()) continue;  // the input copy: part of the per-model overhead
    const auto it = f.unit_of_layer.find(name);
    if (it == f.unit_of_layer.end()) return false;  // not this model's layers
    if (it->second >= 0) ms[size_t(it->second)] += t;
    any = true;
  }
  if (!any) return false;
  for (size_t i = 0; i < ms.size(); ++i) f.units[i].ms = ms[i];
  return true;
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

constexpr double kEpsMs = 2e-4;  // added before logs: layers that compute (almost) nothing
constexpr int kNeighbours = 4;
// Weight of the model footprint (log2 bytes) in layer_knn's distance, against 1 per log2 of a
// shape dimension: the same layer runs slower in a model whose data outgrows the caches.
constexpr double kFootprintWeight = 0.5;

int64_t slope_key(int op, int kind) {
  return int64_t(op) << 32 | uint32_t(kind);
}

bool has_layer_times(const ModelFeatures& f) {
  if (f.units.empty()) return false;
  for (const auto& u : f.units)
    if (!std::isfinite(u.ms)) return false;
  return true;
}

// layer_knn: the time of one layer from its nearest measured layers of the same op and kind
// (of the same op when no layer of its kind was measured: *unseen is then set), each moved
// along the op's time-work slope to the layer's work.
double unit_ms(const LatencyModel& m, const LayerUnit& q, bool* unseen, int exclude_model = -1) {
  struct Near {
    double d2;
    const LayerUnit* u;
  };
  std::array<Near, kNeighbours> best{};
  int nb = 0;
  const auto consider = [&](bool same_kind) {
    for (const auto& u : m.table) {
      if (u.op != q.op || (same_kind && u.kind != q.kind)) continue;
      if (exclude_model >= 0 && u.model == exclude_model) continue;
      double d2 = 0;
      for (size_t k = 0; k < q.x.size(); ++k) d2 += (u.x[k] - q.x[k]) * (u.x[k] - q.x[k]);
      const double dc = kFootprintWeight * (u.footprint - q.footprint);
      d2 += dc * dc;
      if (nb < kNeighbours) {
        best[size_t(nb++)] = {d2, &u};
      } else if (d2 < best[kNeighbours - 1].d2) {
        best[kNeighbours - 1] = {d2, &u};
      } else {
        continue;
      }
      for (int j = nb - 1; j > 0 && best[size_t(j)].d2 < best[size_t(j - 1)].d2; --j)
        std::swap(best[size_t(j)], best[size_t(j - 1)]);
    }
  };
  consider(true);
  if (nb == 0) {
    if (unseen) *unseen = true;
    consider(false);
  }
  if (nb == 0) return 0;
  auto it = m.slope.find(slope_key(q.op, q.kind));
  if (it == m.slope.end()) it = m.slope.find(slope_key(q.op, -1));
  const double slope = it == m.slope.end() ? 1.0 : it->second;
  double sw = 0, sl = 0;
  for (int j = 0; j < nb; ++j) {
    const LayerUnit& u = *best[size_t(j)].u;
    const double w = 1 / (best[size_t(j)].d2 + 0.02);
    sl += w * (std::log2(u.ms + kEpsMs) + slope * (q.log_work - u.log_work));
    sw += w;
  }
  return std::max(std::exp2(sl / sw) - kEpsMs, 0.0);
}

// The measured layers of every model that has per-layer times, each model's times scaled to sum
// to its latency less the per-forward cost m.a_ms (set here). `model` holds the row index.
std::vector<LayerUnit> scaled_layers(LatencyModel& m, std::span<const ModelFeatures> x,
                                     std::span<const double> y, std::vector<size_t>& rows) {
  rows.clear();
  for (size_t i = 0; i < x.size(); ++i)
    if (has_layer_times(x[i])) rows.push_back(i);
  if (int(rows.size()) < kMinFitModels)
    fail("the ", model_kind_name(m.kind), " latency model needs per-layer times of at least ",
         kMinFitModels, " models and has ", rows.size(),
         "; measure the profile again with this iotnas (`iotnas calib measure`), which records "
         "them");
  // A forward costs a fixed time outside its layers (input copy, program entry): across the
  // models, latency = a0 + c * (sum of layer times) by least squares on relative error. Each
  // model's layer times are then scaled to sum to its latency less a0: the layer-timed forwards
  // run at another moment than the timed ones and pay a clock read per layer, so only their
  // shares are kept.
  double a0 = 0;
  {
    Eigen::MatrixXd A(Eigen::Index(rows.size()), 2);
    Eigen::VectorXd ones = Eigen::VectorXd::Ones(Eigen::Index(rows.size()));
    for (size_t r = 0; r < rows.size(); ++r) {
      double sum = 0;
      for (const auto& u : x[rows[r]].units) sum += u.ms;
      A(Eigen::Index(r), 0) = 1 / y[rows[r]];
      A(Eigen::Index(r), 1) = sum / y[rows[r]];
    }
    const Eigen::VectorXd c = A.colPivHouseholderQr().solve(ones);
    if (std::isfinite(c(0)) && c(1) > 0) a0 = std::max(c(0), 0.0);
  }
  m.a_ms = a0;
  m.b = 1;
  std::vector<LayerUnit> out;
  for (size_t r : rows) {
    double sum = 0;
    for (const auto& u : x[r].units) sum += u.ms;
    const double target = std::max(y[r] - a0, 0.5 * y[r]);
    for (LayerUnit u : x[r].units) {
      u.ms *= sum > 0 ? target / sum : 1.0;
      u.model = int(r);
      out.push_back(u);
    }
  }
  return out;
}

void fit_layer_knn(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y) {
  std::vector<size_t> rows;
  m.table = scaled_layers(m, x, y, rows);
  // Per (op, kind), and per op for kinds with few layers, the least-squares slope of log time on
  // log work, kept in [0, 1.5].
  std::map<int64_t, std::vector<std::pair<double, double>>> pts;
  for (const auto& u : m.table) {
    const std::pair<double, double> pt{u.log_work, std::log2(u.ms + kEpsMs)};
    pts[slope_key(u.op, u.kind)].push_back(pt);
    pts[slope_key(u.op, -1)].push_back(pt);
  }
  for (const auto& [key, v] : pts) {
    double mx = 0, my = 0;
    for (const auto& [a, b] : v) mx += a, my += b;
    mx /= double(v.size());
    my /= double(v.size());
    double sxy = 0, sxx = 0;
    for (const auto& [a, b] : v) sxy += (a - mx) * (b - my), sxx += (a - mx) * (a - mx);
    if (v.size() >= 8 && sxx > 1) m.slope[key] = std::clamp(sxy / sxx, 0.0, 1.5);
  }
  // What the neighbours get wrong on average: every fitted model predicted from the other
  // models' layers (as a new model will be); b is the median ratio of measured to predicted
  // (robust to the few models whose layers have no close neighbour).
  std::vector<double> ratio;
  for (size_t r : rows) {
    double sum = 0;
    for (const auto& u : x[r].units) sum += unit_ms(m, u, nullptr, int(r));
    if (sum > 0) ratio.push_back((y[r] - m.a_ms) / sum);
  }
  if (!ratio.empty()) {
    std::nth_element(ratio.begin(), ratio.begin() + long(ratio.size() / 2), ratio.end());
    if (ratio[ratio.size() / 2] > 0) m.b = ratio[ratio.size() / 2];
  }
  for (auto& u : m.table) u.model = -1;
}

double operator_ms(const LatencyModel& m, const ModelFeatures& x) {
  IOTNAS_ASSERT(x.op_sums.size() == m.op_weights.size());
  double s = 0;
  for (size_t k = 0; k < x.op_sums.size(); ++k) s += m.op_weights[k] * x.op_sums[k];
  return s;
}

double layer_knn_ms(const LatencyModel& m, const ModelFeatures& x) {
  double s = 0;
  for (const auto& u : x.units) s += unit_ms(m, u, nullptr);
  return std::max(m.a_ms + m.b * s, 1e-6);
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
    case ModelKind::operator_sum:
    case ModelKind::blend: {
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
      if (kind == ModelKind::blend) fit_layer_knn(m, x, y);
      break;
    }
    case ModelKind::layer_knn:
      fit_layer_knn(m, x, y);
      break;
    case ModelKind::layer_gbm:
      fit_layer_gbm(m, x, y);
      break;
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
    case ModelKind::operator_sum:
      return operator_ms(m, x);
    case ModelKind::layer_knn:
      return layer_knn_ms(m, x);
    case ModelKind::layer_gbm:
      return layer_gbm_ms(m, x);
    case ModelKind::blend:
      return std::sqrt(std::max(operator_ms(m, x), 1e-6) * layer_knn_ms(m, x));
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
  if (m.kind == ModelKind::operator_sum || m.kind == ModelKind::blend) {
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
  if (needs_layer_times(m.kind)) {
    int unseen = 0;
    for (const auto& u : x.units) {
      if (m.kind == ModelKind::layer_gbm) {
        unseen +=
            !std::binary_search(m.kinds_seen.begin(), m.kinds_seen.end(), slope_key(u.op, u.kind));
        continue;
      }
      bool miss = false;
      (void)unit_ms(m, u, &miss);
      unseen += miss;
    }
    if (unseen > 0)
      p.warnings.push_back(std::to_string(unseen) +
                           " of its layers have no calibrated layer of the same kind (kernel, "
                           "stride, groups): their times come from layers of other kinds");
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
  if (m.kind == ModelKind::layer_gbm) {
    j["trees"] = m.trees.to_json();
    j["kinds"] = m.kinds_seen;
    j["a_ms"] = m.a_ms;
  } else if (needs_layer_times(m.kind)) {
    // One row per measured layer: op, kind, x[6], log2 work, footprint, milliseconds.
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& u : m.table)
      rows.push_back({u.op, u.kind, u.x[0], u.x[1], u.x[2], u.x[3], u.x[4], u.x[5], u.log_work,
                      u.footprint, u.ms});
    j["layers"] = std::move(rows);
    nlohmann::json slopes = nlohmann::json::array();
    for (const auto& [op, v] : m.slope) slopes.push_back({op, v});
    j["slopes"] = std::move(slopes);
    j["a_ms"] = m.a_ms;
    j["b"] = m.b;
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
    if (m.kind == ModelKind::loglog_global || m.kind == ModelKind::loglog_space) {
      m.global = j.at("global").get<std::vector<double>>();
      if (m.global.size() != 3) fail(origin, ": latency model 'global' needs 3 coefficients");
      if (j.contains("spaces"))
        m.spaces = j["spaces"].get<std::map<std::string, std::vector<double>>>();
      for (const auto& [s, c] : m.spaces)
        if (c.size() != 3) fail(origin, ": latency model of space '", s, "' needs 3 coefficients");
    }
    if (m.kind == ModelKind::operator_sum || m.kind == ModelKind::blend) {
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
    if (m.kind == ModelKind::layer_gbm) {
      m.trees = BoostedTrees::from_json(j.at("trees"), kLayerGbmFeatures, origin);
      m.kinds_seen = j.at("kinds").get<std::vector<int64_t>>();
      std::sort(m.kinds_seen.begin(), m.kinds_seen.end());
      m.a_ms = j.at("a_ms").get<double>();
      if (m.trees.empty() || !(m.a_ms >= 0))
        fail(origin, ": the layer_gbm model has no trees or a bad a_ms; fit it again");
    } else if (needs_layer_times(m.kind)) {
      for (const auto& row : j.at("layers")) {
        if (!row.is_array() || row.size() != 11)
          fail(origin, ": a layer_knn layer row needs 11 numbers; fit it again");
        LayerUnit u;
        u.op = row[0].get<int>();
        u.kind = row[1].get<int>();
        for (size_t k = 0; k < u.x.size(); ++k) u.x[k] = row[2 + k].get<double>();
        u.log_work = row[8].get<double>();
        u.footprint = row[9].get<double>();
        u.ms = row[10].get<double>();
        if (u.op < 0 || u.op >= kNumOps || !(u.ms >= 0))
          fail(origin, ": a layer_knn layer row is out of range; fit it again");
        m.table.push_back(u);
      }
      for (const auto& s : j.at("slopes")) m.slope[s.at(0).get<int64_t>()] = s.at(1).get<double>();
      m.a_ms = j.at("a_ms").get<double>();
      m.b = j.at("b").get<double>();
      if (m.table.empty()) fail(origin, ": the layer_knn model has no layers; fit it again");
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
