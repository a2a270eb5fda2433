// Batch norm on oneDNN: training statistics (running statistics updated as the plan says) or
// the running ones in inference; backward to gamma, beta and the input.

#include "engine/dnnl/emit.hpp"

namespace iotnas::onednn {

void emit_batch_norm(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  const Layer& l = node.layer;
  const int c = node.out.c;
  const memory::desc c_md({c}, dt::f32, tag::x);
  const float* gamma = x.buf_.params + node.param_offset;
  memory scale = x.user_mem(c_md, gamma), shift = x.user_mem(c_md, gamma + c);
  float* running = x.buf_.state + node.state_offset;
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  if (!x.train_) {
    flags = flags | dnnl::normalization_flags::use_global_stats;
    dnnl::batch_normalization_forward::desc d(prop_kind::forward_inference, src.get_desc(), l.eps,
                                              flags);
    dnnl::batch_normalization_forward::primitive_desc pd(d, x.eng_);
    memory dst = x.new_mem(pd.dst_desc());
    r.fwd.push_back(x.exec(dnnl::batch_normalization_forward(pd),
                           {{DNNL_ARG_SRC, src},
                            {DNNL_ARG_DST, dst},
                            {DNNL_ARG_SCALE, scale},
                            {DNNL_ARG_SHIFT, shift},
                            {DNNL_ARG_MEAN, x.user_mem(c_md, running)},
                            {DNNL_ARG_VARIANCE, x.user_mem(c_md, running + c)}}));
    x.set_output(i, dst);
    return;
  }
  dnnl::batch_normalization_forward::desc d(prop_kind::forward_training, src.get_desc(), l.eps,
                                            flags);
  dnnl::batch_normalization_forward::primitive_desc pd(d, x.eng_);
  memory dst = x.new_mem(pd.dst_desc());
  memory mean = x.new_mem(pd.mean_desc()), var = x.new_mem(pd.variance_desc());
  r.fwd.push_back(x.exec(dnnl::batch_normalization_forward(pd), {{DNNL_ARG_SRC, src},
                                                                 {DNNL_ARG_DST, dst},
                                                                 {DNNL_ARG_SCALE, scale},
                                                                 {DNNL_ARG_SHIFT, shift},
                                                                 {DNNL_ARG_MEAN, mean},
                                                                 {DNNL_ARG_VARIANCE, var}}));
  if (x.plan_.nodes[size_t(i)].updates_running_stats) {
    const float m = l.momentum;
    const int64_t count = int64_t(x.n_) * node.out.h * node.out.w;
    r.fwd.push_back([mean, var, running, c, m, count]() {
      update_running_stats(m, c, count, static_cast<const float*>(mean.get_data_handle()),
                           static_cast<const float*>(var.get_data_handle()), running);
    });
  }
  x.set_output(i, dst);
  float* gptr = x.buf_.grads + node.param_offset;
  dnnl::batch_normalization_backward::desc bd(prop_kind::backward, pd.dst_desc(), src.get_desc(),
                                              l.eps, flags);
  dnnl::batch_normalization_backward::primitive_desc bpd(bd, x.eng_, pd);
  memory ddst = x.as_layout(r.grad, bpd.diff_dst_desc(), r.bwd);
  std::vector<Step> after;
  memory dsrc = x.grad_target(i, 0, bpd.diff_src_desc(), after);
  if (!dsrc) dsrc = x.new_mem(bpd.diff_src_desc());  // the image: gradient unused
  Net::append(r.bwd,
              x.exec(dnnl::batch_normalization_backward(bpd),
                     {{DNNL_ARG_SRC, src},
                      {DNNL_ARG_MEAN, mean},
                      {DNNL_ARG_VARIANCE, var},
                      {DNNL_ARG_DIFF_DST, ddst},
                      {DNNL_ARG_SCALE, scale},
                      // Unused by backward, but oneDNN 2.6's plain-layout (ncsp)
                      // implementation refuses to run without it.
                      {DNNL_ARG_SHIFT, shift},
                      {DNNL_ARG_DIFF_SRC, dsrc},
                      {DNNL_ARG_DIFF_SCALE, x.user_mem(c_md, gptr)},
                      {DNNL_ARG_DIFF_SHIFT, x.user_mem(c_md, gptr + c)}}),
              after);
}

}  // namespace iotnas::onednn
