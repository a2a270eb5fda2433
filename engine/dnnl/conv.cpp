// conv2d on oneDNN: forward with the plan's fused relu as a post-op; backward to the weights
// (on a channels-last layout where the forward's leaves only a gemm fallback) and to the input.

#include <string>

#include "engine/dnnl/emit.hpp"

namespace iotnas::onednn {

void emit_conv2d(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  const Layer& l = node.layer;
  const Shape in = node.in, out = node.out;
  const int g = l.groups;
  memory::dims wdims = g == 1 ? memory::dims{out.c, in.c, l.kernel_h, l.kernel_w}
                              : memory::dims{g, out.c / g, in.c / g, l.kernel_h, l.kernel_w};
  const memory::desc w_user_md(wdims, dt::f32, g == 1 ? tag::oihw : tag::goihw);
  const memory::desc w_any(wdims, dt::f32, tag::any);
  const memory::desc b_md({out.c}, dt::f32, tag::x);
  const memory::desc src_any({x.n_, in.c, in.h, in.w}, dt::f32, tag::any);
  const memory::desc dst_any({x.n_, out.c, out.h, out.w}, dt::f32, tag::any);
  const memory::dims strides{l.stride_h, l.stride_w}, pl{l.pad_h, l.pad_w};
  const memory::dims pr{pad_right(in.h, out.h, l.kernel_h, l.stride_h, l.pad_h),
                        pad_right(in.w, out.w, l.kernel_w, l.stride_w, l.pad_w)};
  const dnnl::primitive_attr attr = x.relu_attr(i);
  const prop_kind pk = x.forward_kind();
  const bool has_bias = node.bias_count > 0;
  auto desc = has_bias ? dnnl::convolution_forward::desc(pk, algorithm::convolution_direct, src_any,
                                                         w_any, b_md, dst_any, strides, pl, pr)
                       : dnnl::convolution_forward::desc(pk, algorithm::convolution_direct, src_any,
                                                         w_any, dst_any, strides, pl, pr);
  dnnl::convolution_forward::primitive_desc pd(desc, attr, x.eng_);

  const float* wptr = x.buf_.params + node.param_offset;
  memory w_user = x.user_mem(w_user_md, wptr);
  memory w = x.weights_as(w_user, pd.weights_desc());
  memory src_used = x.as_layout(src, pd.src_desc(), r.fwd);
  memory dst = x.new_mem(pd.dst_desc());
  Args args{{DNNL_ARG_SRC, src_used}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
  memory b_user;
  if (has_bias) {
    b_user = x.user_mem(b_md, wptr + node.weight_count);
    args[DNNL_ARG_BIAS] = b_user;
  }
  r.fwd.push_back(x.exec(dnnl::convolution_forward(pd), args));
  x.set_output(i, dst);
  if (!x.train_) return;

  // Backward: weights (always) and data (unless the input is the image).
  auto make_wpd = [&](const memory::desc& s, const memory::desc& d) {
    auto wd = has_bias ? dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, s,
                                                                  w_any, b_md, d, strides, pl, pr)
                       : dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, s,
                                                                  w_any, d, strides, pl, pr);
    return dnnl::convolution_backward_weights::primitive_desc(wd, x.eng_, pd);
  };
  auto slow = [](const dnnl::convolution_backward_weights::primitive_desc& p) {
    const std::string impl = p.impl_info_str();
    return impl.find("gemm") != std::string::npos || impl.find("ref") != std::string::npos;
  };
  // On the forward's source layout; when that leaves oneDNN only its gemm fallback (channel
  // counts not a multiple of 16, e.g. 8 -> 12: 1.4 ms per batch of 128 against 0.4), the
  // channels-last layout gets a jit kernel, worth its two reorders (about 0.1 ms).
  dnnl::convolution_backward_weights::primitive_desc wpd = make_wpd(pd.src_desc(), dst_any);
  if (slow(wpd)) {
    try {
      auto alt = make_wpd(memory::desc({x.n_, in.c, in.h, in.w}, dt::f32, tag::nhwc),
                          memory::desc({x.n_, out.c, out.h, out.w}, dt::f32, tag::nhwc));
      if (!slow(alt)) wpd = alt;
    } catch (const dnnl::error&) {  // no channels-last kernel either: keep the first
    }
  }
  std::vector<Step>& bwd = r.bwd;
  memory ddst_w = x.as_layout(r.grad, wpd.diff_dst_desc(), bwd);
  memory src_w = x.as_layout(src_used, wpd.src_desc(), bwd);
  x.backward_weights<dnnl::convolution_backward_weights>(i, wpd, src_w, ddst_w, w_user_md, b_md);

  if (node.inputs[0] != 0) {
    dnnl::convolution_backward_data::desc ddesc(algorithm::convolution_direct, src_any, w_any,
                                                dst_any, strides, pl, pr);
    dnnl::convolution_backward_data::primitive_desc dpd(ddesc, x.eng_, pd);
    memory ddst_d = x.as_layout(r.grad, dpd.diff_dst_desc(), bwd);
    x.backward_data<dnnl::convolution_backward_data>(i, dpd, ddst_d, w_user, w);
  }
}

}  // namespace iotnas::onednn
