#include "engine/plan.hpp"

#include <algorithm>

#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

bool computes_with_epilogue(Op op) {
  return op == Op::conv2d || op == Op::dense;
}

// Which relus move behind their max pool (training) or fuse into their producer.
void plan_relus(const Graph& g, Mode mode, std::vector<NodePlan>& p) {
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.layer.op != Op::relu) continue;
    const int src = n.inputs[0];
    const Node& producer = g.nodes[size_t(src)];
    // In training the relu backward over the full map was 15% of a plain-1k step; behind a 2x2
    // pool it touches a quarter of the values.
    if (mode == Mode::train && src != 0 && producer.consumers.size() == 1 &&
        n.consumers.size() == 1 && g.nodes[size_t(n.consumers[0])].layer.op == Op::max_pool) {
      p[i].relu_after_pool = true;
      p[size_t(n.consumers[0])].relu_by_pool = true;
      continue;
    }
    if (computes_with_epilogue(producer.layer.op) && producer.consumers.size() == 1) {
      p[size_t(src)].fused_relu = int(i);
      p[i].fused = true;
    }
  }
}

// HookScope::computed_maps: maps that only select or move values the hook has seen.
void plan_hook_skips(const Graph& g, std::vector<NodePlan>& p) {
  std::vector<bool> seen(g.nodes.size(), false);
  seen[0] = true;
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const Op op = g.nodes[i].layer.op;
    const bool selects =
        op == Op::relu || op == Op::max_pool || op == Op::concat || op == Op::flatten;
    bool inputs_seen = true;
    for (int in : g.nodes[i].inputs) inputs_seen = inputs_seen && seen[size_t(in)];
    p[i].skip_computed = selects && inputs_seen;
    seen[i] = true;
  }
}

// Inference: a slot per live map, reused once its last reader has run. A node's output slot is
// taken before its inputs' slots are freed, so no step writes a buffer it reads.
void plan_slots(const Graph& g, ExecPlan& plan) {
  std::vector<int> free_slots;
  std::vector<std::vector<int>> frees(g.nodes.size() + 1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    NodePlan& n = plan.nodes[i];
    if (n.storage != int(i)) continue;
    const int64_t size = g.nodes[i].out.size();
    // The smallest free slot that fits; else the largest free one, grown; else a new one.
    int best = -1;
    const auto better = [&](int s, int b) {
      const bool s_fits = plan.slots[size_t(s)] >= size, b_fits = plan.slots[size_t(b)] >= size;
      if (s_fits != b_fits) return s_fits;
      return s_fits ? plan.slots[size_t(s)] < plan.slots[size_t(b)]
                    : plan.slots[size_t(s)] > plan.slots[size_t(b)];
    };
    for (size_t k = 0; k < free_slots.size(); ++k)
      if (best < 0 || better(free_slots[k], free_slots[size_t(best)])) best = int(k);
    if (best >= 0) {
      n.slot = free_slots[size_t(best)];
      free_slots.erase(free_slots.begin() + best);
      plan.slots[size_t(n.slot)] = std::max(plan.slots[size_t(n.slot)], size);
    } else {
      n.slot = int(plan.slots.size());
      plan.slots.push_back(size);
    }
    frees[size_t(n.last_use)].push_back(n.slot);
    for (int s : frees[i]) free_slots.push_back(s);
  }
}

}  // namespace

ExecPlan make_plan(const Graph& g, Mode mode) {
  ExecPlan plan;
  plan.mode = mode;
  const size_t count = g.nodes.size();
  auto& p = plan.nodes;
  p.resize(count);
  plan_relus(g, mode, p);
  plan_hook_skips(g, p);
  for (size_t i = 0; i < count; ++i) {
    const Node& n = g.nodes[i];
    NodePlan& q = p[i];
    const bool view = n.layer.op == Op::flatten || q.fused || q.relu_after_pool;
    q.storage = view ? p[size_t(n.inputs[0])].storage : int(i);
    q.hook_id = q.fused_relu >= 0 ? q.fused_relu : int(i);
    q.hookable = !q.fused && !q.relu_after_pool;
    q.updates_running_stats = mode == Mode::train && n.layer.op == Op::batch_norm;
    q.last_use = int(i);
  }
  for (size_t i = 0; i < count; ++i) {
    for (int in : g.nodes[i].inputs) {
      NodePlan& owner = p[size_t(p[size_t(in)].storage)];
      owner.last_use = std::max(owner.last_use, int(i));
    }
  }
  if (mode == Mode::train) {
    for (size_t i = count; i-- > 1;)  // the backward pass's order
      for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k)
        p[size_t(g.nodes[i].inputs[k])].edges.push_back({int(i), int(k)});
  }
  p[size_t(p[count - 1].storage)].last_use = int(count);  // the logits are read after the pass
  if (mode == Mode::infer) plan_slots(g, plan);
  return plan;
}

int ExecPlan::edge_index(int node, int consumer, int k) const {
  const auto& e = nodes[size_t(node)].edges;
  for (size_t j = 0; j < e.size(); ++j)
    if (e[j].consumer == consumer && e[j].k == k) return int(j);
  IOTNAS_ASSERT(false, "no such edge in the plan");
  return -1;
}

bool ExecPlan::accumulates(int node, int consumer, int k) const {
  return edge_index(node, consumer, k) > 0;
}

void update_running_stats(float momentum, int c, int64_t count, const float* mean, const float* var,
                          float* running) {
  const float m = momentum;
  const double unbias = count > 1 ? double(count) / double(count - 1) : 1.0;
  for (int k = 0; k < c; ++k) {
    running[k] = (1 - m) * running[k] + m * mean[k];
    running[c + k] = float((1 - m) * running[c + k] + m * var[k] * unbias);
  }
}

}  // namespace iotnas
