// Pooling on the portable backend (kernels/portable/pool.cpp): max (with the relu the plan moves
// behind it, applied in place to the pooled map and to its gradient), average, global average.
#include <memory>

#include "engine/portable/emit.hpp"

namespace iotnas::portable {

void emit_max_pool(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  const bool relu = x.plan_.nodes[size_t(i)].relu_by_pool;
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  // Training: where each output's maximum came from, for the backward pass.
  auto argmax = std::make_shared<std::vector<int32_t>>();
  if (x.train_) argmax->assign(size_t(x.cap_) * node.out.size(), 0);
  x.fwd_[size_t(i)].push_back([&x, &node, src, dst, argmax, relu] {
    pk::max_pool_fwd(x.pool_shape(node), src, dst, argmax->empty() ? nullptr : argmax->data());
    if (relu) pk::relu_fwd(x.count(node), dst, dst);
  });
  if (!x.train_) return;
  float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  x.bwd_[size_t(i)].push_back([&x, &node, dst, g, t, argmax, relu] {
    if (relu) pk::relu_bwd(x.count(node), dst, g, g, false);
    if (t.ptr) pk::max_pool_bwd(x.pool_shape(node), g, argmax->data(), t.ptr, t.accumulate);
  });
}

void emit_avg_pool(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  x.fwd_[size_t(i)].push_back(
      [&x, &node, src, dst] { pk::avg_pool_fwd(x.pool_shape(node), src, dst); });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  if (!t.ptr) return;
  x.bwd_[size_t(i)].push_back(
      [&x, &node, g, t] { pk::avg_pool_bwd(x.pool_shape(node), g, t.ptr, t.accumulate); });
}

void emit_global_avg_pool(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  const int c = node.in.c, hw = node.in.h * node.in.w;
  x.fwd_[size_t(i)].push_back(
      [&x, src, dst, c, hw] { pk::global_avg_pool_fwd(x.n_, c, hw, src, dst); });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  if (!t.ptr) return;
  x.bwd_[size_t(i)].push_back(
      [&x, g, t, c, hw] { pk::global_avg_pool_bwd(x.n_, c, hw, g, t.ptr, t.accumulate); });
}

}  // namespace iotnas::portable
