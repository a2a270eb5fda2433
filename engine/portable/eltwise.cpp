// Elementwise ops on the portable backend (kernels/portable/eltwise.cpp): relu (no step of its
// own when the plan fuses it into its producer or moves it behind its max pool; its backward
// still runs from its own gradient when fused) and n-ary add.
#include "engine/portable/emit.hpp"

namespace iotnas::portable {

void emit_relu(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  const NodePlan& p = x.plan_.nodes[size_t(i)];
  if (p.relu_after_pool) return;  // its pool applies it; its gradient is its producer's
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  if (!p.fused)
    x.fwd_[size_t(i)].push_back([&x, &node, src, dst] { pk::relu_fwd(x.count(node), src, dst); });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  if (!t.ptr) return;
  x.bwd_[size_t(i)].push_back(
      [&x, &node, dst, g, t] { pk::relu_bwd(x.count(node), dst, g, t.ptr, t.accumulate); });
}

void emit_add(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  std::vector<const float*> srcs;
  for (int in : node.inputs) srcs.push_back(x.out_[size_t(in)]);
  float* dst = x.out_[size_t(i)];
  x.fwd_[size_t(i)].push_back(
      [&x, &node, srcs, dst] { pk::add_fwd(x.count(node), int(srcs.size()), srcs.data(), dst); });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const Exec::Target t = x.target(i, int(k));
    if (!t.ptr) continue;
    x.bwd_[size_t(i)].push_back(
        [&x, &node, g, t] { write_or_add(t.ptr, g, x.count(node), t.accumulate); });
  }
}

}  // namespace iotnas::portable
