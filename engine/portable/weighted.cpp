// The layers with weights on the portable backend: conv2d (kernels/portable/conv2d*.cpp) and
// dense (kernels/portable/dense.cpp; it reads its input flattened, NCHW order). Their kernels share
// one signature per direction, so one emitter serves both: forward with the plan's fused relu in
// the epilogue; backward to the weights and bias, then to the input.
#include "engine/portable/emit.hpp"

namespace iotnas::portable {

namespace {

template <typename S>
struct WeightedKernels {
  void (*fwd)(const S&, const float* src, const float* wei, const float* bias, float* dst,
              bool relu);
  void (*bwd_weights)(const S&, const float* src, const float* ddst, float* dwei, float* dbias);
  void (*bwd_data)(const S&, const float* ddst, const float* wei, float* dsrc, bool accumulate);
};

// shape(node) -> S at the pass's batch size (read when the steps run).
template <typename S, typename ShapeOf>
void emit_weighted(Exec& x, int i, ShapeOf shape, WeightedKernels<S> k) {
  const Node& node = x.g_.nodes[size_t(i)];
  const bool relu = x.plan_.nodes[size_t(i)].fused_relu >= 0;
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  x.fwd_[size_t(i)].push_back([&x, &node, shape, k, src, dst, relu] {
    k.fwd(shape(node), src, x.param(node), x.bias(node), dst, relu);
  });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  x.bwd_[size_t(i)].push_back([&x, &node, shape, k, src, g, t] {
    const S s = shape(node);
    k.bwd_weights(s, src, g, x.dparam(node), x.dbias(node));
    if (t.ptr) k.bwd_data(s, g, x.param(node), t.ptr, t.accumulate);
  });
}

}  // namespace

void emit_conv2d(Exec& x, int i) {
  emit_weighted<kernels::ConvShape>(x, i, [&x](const Node& n) { return x.conv_shape(n); },
                                    {pk::conv2d_fwd, pk::conv2d_bwd_weights, pk::conv2d_bwd_data});
}

void emit_dense(Exec& x, int i) {
  emit_weighted<kernels::DenseShape>(x, i,
                                     [&x](const Node& n) {
                                       return kernels::DenseShape{x.n_, int(n.in.size()), n.out.c};
                                     },
                                     {pk::dense_fwd, pk::dense_bwd_weights, pk::dense_bwd_data});
}

}  // namespace iotnas::portable
