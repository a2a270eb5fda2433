// What the latency models see of a model: the operator features summed over its inference graph
// (operator_sum, blend), its layer units (layer_knn, layer_gbm, blend) and their measured times.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "calib/latency/kinds.hpp"
#include "calib/latency_model.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

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

bool has_layer_times(const ModelFeatures& f) {
  if (f.units.empty()) return false;
  for (const auto& u : f.units)
    if (!std::isfinite(u.ms)) return false;
  return true;
}

}  // namespace

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

void warn_unseen_layers(int unseen, std::vector<std::string>& out) {
  if (unseen > 0)
    out.push_back(std::to_string(unseen) +
                  " of its layers have no calibrated layer of the same kind (kernel, "
                  "stride, groups): their times come from layers of other kinds");
}

}  // namespace iotnas::calib
