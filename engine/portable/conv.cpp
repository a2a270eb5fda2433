// conv2d on the portable backend (kernels/portable/conv2d*.cpp): forward with the plan's fused
// relu in its epilogue; backward to the weights and bias, then to the input.
#include "engine/portable/emit.hpp"

namespace iotnas::portable {

void emit_conv2d(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  const bool relu = x.plan_.nodes[size_t(i)].fused_relu >= 0;
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  x.fwd_[size_t(i)].push_back([&x, &node, src, dst, relu] {
    pk::conv2d_fwd(x.conv_shape(node), src, x.param(node), x.bias(node), dst, relu);
  });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  x.bwd_[size_t(i)].push_back([&x, &node, src, g, t] {
    const auto s = x.conv_shape(node);
    pk::conv2d_bwd_weights(s, src, g, x.dparam(node), x.dbias(node));
    if (t.ptr) pk::conv2d_bwd_data(s, g, x.param(node), t.ptr, t.accumulate);
  });
}

}  // namespace iotnas::portable
