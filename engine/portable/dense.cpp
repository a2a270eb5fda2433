// dense on the portable backend (kernels/portable/dense.cpp): reads its input flattened (NCHW
// order), fused relu in its epilogue; backward to the weights and bias, then to the input.
#include "engine/portable/emit.hpp"

namespace iotnas::portable {

void emit_dense(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  const bool relu = x.plan_.nodes[size_t(i)].fused_relu >= 0;
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  const auto shape = [&x, &node] {
    return kernels::DenseShape{x.n_, int(node.in.size()), node.out.c};
  };
  x.fwd_[size_t(i)].push_back([&x, &node, shape, src, dst, relu] {
    pk::dense_fwd(shape(), src, x.param(node), x.bias(node), dst, relu);
  });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  x.bwd_[size_t(i)].push_back([&x, &node, shape, src, g, t] {
    pk::dense_bwd_weights(shape(), src, g, x.dparam(node), x.dbias(node));
    if (t.ptr) pk::dense_bwd_data(shape(), g, x.param(node), t.ptr, t.accumulate);
  });
}

}  // namespace iotnas::portable
