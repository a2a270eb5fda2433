#include "engine/model.hpp"

#include <cmath>
#include <map>
#include <random>

#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

Model make_model(const ModelSpec& spec, uint64_t seed) {
  Model m;
  m.spec = spec;
  m.graph = build_graph(spec);
  m.params.assign(m.graph.num_params, 0.f);
  m.state.assign(m.graph.num_state, 0.f);
  std::mt19937_64 rng(seed);
  for (const Node& n : m.graph.nodes) {
    float* p = m.params.data() + n.param_offset;
    if (n.layer.op == Op::conv2d || n.layer.op == Op::dense) {
      const int64_t fan_in = n.weight_count / n.layer.out_channels;
      const float bound = 1.0f / std::sqrt(float(fan_in));
      for (int64_t i = 0; i < n.weight_count + n.bias_count; ++i)
        p[i] = uniform_float(rng, -bound, bound);
    } else if (n.layer.op == Op::batch_norm) {
      for (int64_t i = 0; i < n.weight_count; ++i) p[i] = 1.f;  // gamma; beta stays 0
      float* s = m.state.data() + n.state_offset;
      for (int c = 0; c < n.out.c; ++c) s[n.out.c + c] = 1.f;  // running var
    }
  }
  return m;
}

Model fold_batch_norm(const Model& model) {
  const Graph& g = model.graph;
  const auto fold = foldable_batch_norms(g);
  // producer node index -> folded batch-norm node index
  std::map<int, int> bn_of;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (fold[i]) bn_of[g.nodes[i].inputs[0]] = int(i);
  }
  if (bn_of.empty()) return model;

  // New spec: producers gain a bias, folded batch norms disappear and their consumers read the
  // producer (same name mapping).
  std::map<std::string, std::string> rename;
  ModelSpec spec = model.spec;
  spec.layers.clear();
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    if (fold[i]) {
      rename[g.nodes[i].layer.name] = g.nodes[g.nodes[i].inputs[0]].layer.name;
      continue;
    }
    Layer l = g.nodes[i].layer;
    if (bn_of.count(int(i))) l.bias = true;
    // Explicit inputs (the graph order may differ from the file order).
    l.inputs.clear();
    for (int in : g.nodes[i].inputs) {
      std::string name = g.nodes[in].layer.name;
      auto it = rename.find(name);
      l.inputs.push_back(it == rename.end() ? name : it->second);
    }
    spec.layers.push_back(std::move(l));
  }
  // The output must stay last: it is last in graph order, and we kept graph order.
  Model out;
  out.spec = spec;
  out.graph = build_graph(spec);
  out.params.assign(out.graph.num_params, 0.f);
  out.state.assign(out.graph.num_state, 0.f);
  std::map<std::string, int> new_index;
  for (size_t i = 0; i < out.graph.nodes.size(); ++i)
    new_index[out.graph.nodes[i].layer.name] = int(i);

  for (size_t i = 1; i < g.nodes.size(); ++i) {
    if (fold[i]) continue;
    const Node& src = g.nodes[i];
    const Node& dst = out.graph.nodes[new_index.at(src.layer.name)];
    const float* sp = model.params.data() + src.param_offset;
    float* dp = out.params.data() + dst.param_offset;
    auto bn = bn_of.find(int(i));
    if (bn == bn_of.end()) {
      std::copy(sp, sp + src.params, dp);
      if (src.layer.op == Op::batch_norm) {
        const float* ss = model.state.data() + src.state_offset;
        std::copy(ss, ss + 2 * src.out.c, out.state.data() + dst.state_offset);
      }
      continue;
    }
    // y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, per output channel.
    const Node& b = g.nodes[bn->second];
    const float* gamma = model.params.data() + b.param_offset;
    const float* beta = gamma + b.out.c;
    const float* mean = model.state.data() + b.state_offset;
    const float* var = mean + b.out.c;
    const int channels = src.layer.out_channels;
    const int64_t per_channel = src.weight_count / channels;
    for (int c = 0; c < channels; ++c) {
      const double scale = double(gamma[c]) / std::sqrt(double(var[c]) + b.layer.eps);
      for (int64_t k = 0; k < per_channel; ++k) {
        dp[c * per_channel + k] = float(sp[c * per_channel + k] * scale);
      }
      const double bias = src.bias_count ? sp[src.weight_count + c] : 0.0;
      dp[dst.weight_count + c] = float((bias - mean[c]) * scale + beta[c]);
    }
  }
  return out;
}

}  // namespace iotnas
