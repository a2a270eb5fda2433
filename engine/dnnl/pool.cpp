// Pooling on oneDNN: max (with the relu the plan moves behind it, in place on the pooled map and
// its gradient) and average, and global average pooling.

#include "engine/dnnl/emit.hpp"

namespace iotnas::onednn {

namespace {

// max_pool or avg_pool: the same primitive with another algorithm.
void emit_window_pool(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  const Layer& l = node.layer;
  const Shape in = node.in, out = node.out;
  const algorithm alg =
      l.op == Op::max_pool ? algorithm::pooling_max : algorithm::pooling_avg_include_padding;
  const memory::desc dst_any({x.n_, out.c, out.h, out.w}, dt::f32, tag::any);
  const memory::dims strides{l.stride_h, l.stride_w}, kernel{l.kernel_h, l.kernel_w};
  const memory::dims pl{l.pad_h, l.pad_w};
  const memory::dims pr{pad_right(in.h, out.h, l.kernel_h, l.stride_h, l.pad_h),
                        pad_right(in.w, out.w, l.kernel_w, l.stride_w, l.pad_w)};
  const prop_kind pk = x.forward_kind();
  dnnl::pooling_forward::desc d(pk, alg, src.get_desc(), dst_any, strides, kernel, pl, pr);
  dnnl::pooling_forward::primitive_desc pd(d, x.eng_);
  memory dst = x.new_mem(pd.dst_desc());
  Args args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  memory ws;
  if (x.train_ && l.op == Op::max_pool) {
    ws = x.new_mem(pd.workspace_desc());
    args[DNNL_ARG_WORKSPACE] = ws;
  }
  r.fwd.push_back(x.exec(dnnl::pooling_forward(pd), args));
  const bool relu_here = x.plan_.nodes[size_t(i)].relu_by_pool;
  dnnl::eltwise_forward::primitive_desc relu_pd;
  if (relu_here) {  // in place on the pooled map
    dnnl::eltwise_forward::desc d(prop_kind::forward_training,
                                  algorithm::eltwise_relu_use_dst_for_bwd, dst.get_desc(), 0.f,
                                  0.f);
    relu_pd = dnnl::eltwise_forward::primitive_desc(d, x.eng_);
    r.fwd.push_back(
        x.exec(dnnl::eltwise_forward(relu_pd), {{DNNL_ARG_SRC, dst}, {DNNL_ARG_DST, dst}}));
  }
  x.set_output(i, dst);
  if (!x.train_ || node.inputs[0] == 0) return;
  if (relu_here) {  // in place on this node's gradient, before the pool's backward reads it
    dnnl::eltwise_forward::desc fd(prop_kind::forward_training,
                                   algorithm::eltwise_relu_use_dst_for_bwd, r.md, 0.f, 0.f);
    dnnl::eltwise_forward::primitive_desc fpd(fd, x.eng_);
    dnnl::eltwise_backward::desc ed(algorithm::eltwise_relu_use_dst_for_bwd, r.md, r.md, 0.f, 0.f);
    dnnl::eltwise_backward::primitive_desc epd(ed, x.eng_, fpd);
    r.bwd.push_back(
        x.exec(dnnl::eltwise_backward(epd),
               {{DNNL_ARG_DST, r.out}, {DNNL_ARG_DIFF_DST, r.grad}, {DNNL_ARG_DIFF_SRC, r.grad}}));
  }
  dnnl::pooling_backward::desc bd(alg, src.get_desc(), pd.dst_desc(), strides, kernel, pl, pr);
  dnnl::pooling_backward::primitive_desc bpd(bd, x.eng_, pd);
  memory ddst = x.as_layout(r.grad, bpd.diff_dst_desc(), r.bwd);
  std::vector<Step> after;
  memory dsrc = x.grad_target(i, 0, bpd.diff_src_desc(), after);
  Args bargs{{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}};
  if (ws) bargs[DNNL_ARG_WORKSPACE] = ws;
  Net::append(r.bwd, x.exec(dnnl::pooling_backward(bpd), bargs), after);
}

}  // namespace

void emit_max_pool(Net& x, int i) {
  emit_window_pool(x, i);
}

void emit_avg_pool(Net& x, int i) {
  emit_window_pool(x, i);
}

void emit_global_avg_pool(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  const Shape in = node.in;
  const memory::desc dst_any({x.n_, in.c, 1, 1}, dt::f32, tag::any);
  const memory::dims kernel{in.h, in.w}, zero{0, 0};
  const prop_kind pk = x.forward_kind();
  dnnl::pooling_forward::desc d(pk, algorithm::pooling_avg_include_padding, src.get_desc(), dst_any,
                                kernel, kernel, zero, zero);
  dnnl::pooling_forward::primitive_desc pd(d, x.eng_);
  memory dst = x.new_mem(pd.dst_desc());
  r.fwd.push_back(x.exec(dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}));
  x.set_output(i, dst);
  if (!x.train_ || node.inputs[0] == 0) return;
  dnnl::pooling_backward::desc bd(algorithm::pooling_avg_include_padding, src.get_desc(),
                                  pd.dst_desc(), kernel, kernel, zero, zero);
  dnnl::pooling_backward::primitive_desc bpd(bd, x.eng_, pd);
  memory ddst = x.as_layout(r.grad, bpd.diff_dst_desc(), r.bwd);
  std::vector<Step> after;
  memory dsrc = x.grad_target(i, 0, bpd.diff_src_desc(), after);
  Net::append(
      r.bwd,
      x.exec(dnnl::pooling_backward(bpd), {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}}),
      after);
}

}  // namespace iotnas::onednn
