#include "engine/graph.hpp"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <queue>

#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

int out_dim(int in, int kernel, int stride, int pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}

[[noreturn]] void layer_error(const Node& n, const std::string& msg) {
  fail("layer '", n.layer.name, "' (", op_name(n.layer.op), "): ", msg);
}

// The product of `factors` (all >= 0), refused past `limit` (and never wrapped).
int64_t product(const Node& n, const char* what, std::initializer_list<int64_t> factors,
                int64_t limit) {
  int64_t p = 1;
  for (int64_t f : factors) {
    if (__builtin_mul_overflow(p, f, &p) || p > limit) {
      layer_error(n, std::string(what) + " exceeds " + std::to_string(limit) +
                         ", the limit in docs/model-spec.md");
    }
  }
  return p;
}

// A map of c x h x w elements per image, refused past kMaxTensorElements.
Shape checked_shape(const Node& n, int64_t c, int64_t h, int64_t w) {
  product(n, "the output's element count (C x H x W)", {c, h, w}, kMaxTensorElements);
  return Shape{int(c), int(h), int(w)};
}

void infer(Graph& g, Node& n) {
  const Layer& l = n.layer;
  std::vector<Shape> ins;
  for (int i : n.inputs) ins.push_back(g.nodes[i].out);
  const bool many = l.op == Op::add || l.op == Op::concat;
  if (many && (ins.size() < 2 || ins.size() > 1000)) {
    layer_error(n, "takes 2 to 1000 inputs, not " + std::to_string(ins.size()));
  }
  if (!many && ins.size() != 1) {
    layer_error(n, "takes exactly one input, not " + std::to_string(ins.size()));
  }
  const Shape s = ins[0];
  n.in = s;
  switch (l.op) {
    case Op::conv2d: {
      if (s.c % l.groups != 0) {
        layer_error(n, "input has " + std::to_string(s.c) + " channels, not a multiple of groups " +
                           std::to_string(l.groups));
      }
      if (s.h + 2 * l.pad_h < l.kernel_h || s.w + 2 * l.pad_w < l.kernel_w) {
        layer_error(n, "kernel " + std::to_string(l.kernel_h) + "x" + std::to_string(l.kernel_w) +
                           " is larger than the padded input " + to_string(s));
      }
      n.out = checked_shape(n, l.out_channels, out_dim(s.h, l.kernel_h, l.stride_h, l.pad_h),
                            out_dim(s.w, l.kernel_w, l.stride_w, l.pad_w));
      n.weight_count =
          product(n, "the weight count", {l.out_channels, s.c / l.groups, l.kernel_h, l.kernel_w},
                  kMaxModelParams);
      n.bias_count = l.bias ? l.out_channels : 0;
      n.flops = product(n, "the FLOP count",
                        {2, n.out.size(), s.c / l.groups, l.kernel_h, l.kernel_w}, kMaxModelFlops);
      break;
    }
    case Op::max_pool:
    case Op::avg_pool:
      if (s.h + 2 * l.pad_h < l.kernel_h || s.w + 2 * l.pad_w < l.kernel_w) {
        layer_error(n, "window " + std::to_string(l.kernel_h) + "x" + std::to_string(l.kernel_w) +
                           " is larger than the padded input " + to_string(s));
      }
      n.out = checked_shape(n, s.c, out_dim(s.h, l.kernel_h, l.stride_h, l.pad_h),
                            out_dim(s.w, l.kernel_w, l.stride_w, l.pad_w));
      break;
    case Op::batch_norm:
      n.out = s;
      n.weight_count = s.c;
      n.bias_count = s.c;
      break;
    case Op::relu:
      n.out = s;
      break;
    case Op::global_avg_pool:
      n.out = {s.c, 1, 1};
      break;
    case Op::flatten:
      n.out = checked_shape(n, s.size(), 1, 1);
      break;
    case Op::dense:
      n.out = checked_shape(n, l.out_channels, 1, 1);
      n.weight_count = product(n, "the weight count", {l.out_channels, s.size()}, kMaxModelParams);
      n.bias_count = l.bias ? l.out_channels : 0;
      n.flops = 2 * n.weight_count;
      break;
    case Op::add:
      for (size_t i = 1; i < ins.size(); ++i) {
        if (!(ins[i] == s)) {
          layer_error(n, "inputs have different shapes: '" + g.nodes[n.inputs[0]].layer.name +
                             "' is " + to_string(s) + ", '" + g.nodes[n.inputs[i]].layer.name +
                             "' is " + to_string(ins[i]));
        }
      }
      n.out = s;
      break;
    case Op::concat: {
      int64_t c = 0;
      for (size_t i = 0; i < ins.size(); ++i) {
        if (ins[i].h != s.h || ins[i].w != s.w) {
          layer_error(n, "inputs differ in height/width: '" + g.nodes[n.inputs[0]].layer.name +
                             "' is " + to_string(s) + ", '" + g.nodes[n.inputs[i]].layer.name +
                             "' is " + to_string(ins[i]));
        }
        c += ins[i].c;  // at most 1000 inputs of < 2^31 channels: no overflow
      }
      n.out = checked_shape(n, c, s.h, s.w);
      break;
    }
    case Op::input:
      IOTNAS_ASSERT(false, "input node inside the layer list");
  }
  if (n.out.h < 1 || n.out.w < 1 || n.out.c < 1) {
    layer_error(n, "output shape " + to_string(n.out) + " is empty; input was " + to_string(s));
  }
  n.params = n.weight_count + n.bias_count;
}

}  // namespace

Graph build_graph(const ModelSpec& spec) {
  if (spec.layers.empty()) fail("model spec '", spec.name, "' has no layers");
  Graph g;
  g.input = spec.input;
  g.name = spec.name;
  const size_t n = spec.layers.size();
  std::map<std::string, int> index;  // name -> position in spec.layers
  for (size_t i = 0; i < n; ++i) index[spec.layers[i].name] = int(i);

  // Resolve inputs to spec positions (-1 = the model input).
  std::vector<std::vector<int>> deps(n);
  for (size_t i = 0; i < n; ++i) {
    const Layer& l = spec.layers[i];
    if (l.inputs.empty()) {
      deps[i].push_back(int(i) - 1);
      continue;
    }
    for (const auto& name : l.inputs) {
      if (name == "input") {
        deps[i].push_back(-1);
        continue;
      }
      auto it = index.find(name);
      if (it == index.end()) {
        fail("layer '", l.name, "': input '", name, "' is not a layer of this model");
      }
      if (it->second == int(i)) fail("layer '", l.name, "' takes itself as input (a cycle)");
      deps[i].push_back(it->second);
    }
  }

  // Kahn's algorithm, smallest spec position first, so a spec in order keeps its order.
  std::vector<int> indegree(n, 0);
  std::vector<std::vector<int>> users(n);
  for (size_t i = 0; i < n; ++i) {
    for (int d : deps[i]) {
      if (d >= 0) {
        indegree[i]++;
        users[d].push_back(int(i));
      }
    }
  }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (indegree[i] == 0) ready.push(int(i));
  }
  std::vector<int> order;
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int u : users[i]) {
      if (--indegree[u] == 0) ready.push(u);
    }
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i) {
      if (indegree[i] > 0) {
        fail("layer '", spec.layers[i].name, "' is part of a cycle; a model must be a DAG");
      }
    }
  }
  // The output (last spec layer) must be last in order: nothing may depend on it.
  if (order.back() != int(n) - 1) {
    fail("layer '", spec.layers.back().name, "' is the output (the last layer) but layer '",
         spec.layers[order.back()].name, "' comes after it; put the output layer last");
  }

  std::vector<int> node_of(n);
  g.nodes.resize(n + 1);
  g.nodes[0].layer.name = "input";
  g.nodes[0].layer.op = Op::input;
  g.nodes[0].out = checked_shape(g.nodes[0], spec.input.c, spec.input.h, spec.input.w);
  for (size_t k = 0; k < n; ++k) node_of[order[k]] = int(k) + 1;
  for (size_t k = 0; k < n; ++k) {
    Node& node = g.nodes[k + 1];
    node.layer = spec.layers[order[k]];
    for (int d : deps[order[k]]) node.inputs.push_back(d < 0 ? 0 : node_of[d]);
  }
  for (size_t k = 1; k <= n; ++k) {
    Node& node = g.nodes[k];
    infer(g, node);
    node.param_offset = g.num_params;
    g.num_params += node.params;  // each term <= kMaxModelParams + 2^16: no overflow
    if (g.num_params > kMaxModelParams) {
      layer_error(node, "the model's parameter count exceeds " + std::to_string(kMaxModelParams) +
                            ", the limit in docs/model-spec.md");
    }
    if (node.layer.op == Op::batch_norm) {
      node.state_offset = g.num_state;
      g.num_state += 2 * int64_t(node.out.c);
    }
    for (int i : node.inputs) g.nodes[i].consumers.push_back(int(k));
  }
  for (size_t k = 0; k < n; ++k) {
    if (g.nodes[k].consumers.empty()) {
      fail("layer '", g.nodes[k].layer.name,
           "' is not used by the output; remove it or connect it (the last layer is the output)");
    }
  }
  return g;
}

std::vector<bool> foldable_batch_norms(const Graph& g) {
  std::vector<bool> fold(g.nodes.size(), false);
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.layer.op != Op::batch_norm) continue;
    const Node& p = g.nodes[n.inputs[0]];
    if ((p.layer.op == Op::conv2d || p.layer.op == Op::dense) && p.consumers.size() == 1) {
      fold[i] = true;
    }
  }
  return fold;
}

Analytics analyze(const Graph& g) {
  Analytics a;
  auto fold = foldable_batch_norms(g);
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    a.params += n.params;
    if (__builtin_add_overflow(a.flops, n.flops, &a.flops) || a.flops > kMaxModelFlops) {
      layer_error(n, "the model's FLOP count exceeds " + std::to_string(kMaxModelFlops) +
                         ", the limit in docs/model-spec.md");
    }
    if (n.layer.op == Op::conv2d || n.layer.op == Op::dense) a.num_layers++;
    if (fold[i]) {
      // gamma/beta vanish into the producer, which gains a bias if it had none.
      const Node& p = g.nodes[n.inputs[0]];
      a.inference_params += p.bias_count == 0 ? n.out.c : 0;
    } else {
      a.inference_params += n.params;
    }
  }
  // Liveness at batch 1: a map lives from its producer until its last consumer has run.
  // flatten is a view of its input (no bytes of its own, but it extends the input's life).
  const size_t count = g.nodes.size();
  std::vector<int> owner(count);
  for (size_t i = 0; i < count; ++i) {
    owner[i] = (g.nodes[i].layer.op == Op::flatten) ? owner[g.nodes[i].inputs[0]] : int(i);
  }
  std::vector<size_t> last_use(count, 0);
  for (size_t i = 0; i < count; ++i) {
    last_use[owner[i]] = std::max(last_use[owner[i]], i);
    for (int c : g.nodes[i].consumers) last_use[owner[i]] = std::max(last_use[owner[i]], size_t(c));
  }
  last_use[count - 1] = count - 1;
  int64_t live = 0;
  std::vector<std::vector<int>> frees(count);
  for (size_t i = 0; i < count; ++i) {
    if (owner[i] == int(i)) frees[last_use[i]].push_back(int(i));
  }
  for (size_t i = 0; i < count; ++i) {
    if (owner[i] == int(i)) {
      int64_t bytes = g.nodes[i].out.size() * int64_t(sizeof(float));
      live += bytes;
      a.total_activation_bytes += bytes;
    }
    a.peak_activation_bytes = std::max(a.peak_activation_bytes, live);
    for (int f : frees[i]) live -= g.nodes[f].out.size() * int64_t(sizeof(float));
  }
  return a;
}

}  // namespace iotnas
