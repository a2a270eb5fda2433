// Elementwise ops on oneDNN: relu (no step of its own when fused into its producer or moved
// behind its pool) and n-ary add (sum, in the first input's layout).

#include "engine/dnnl/emit.hpp"

namespace iotnas::onednn {

void emit_relu(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  const int src_node = node.inputs[0];
  const NodePlan& plan = x.plan_.nodes[size_t(i)];
  if (plan.relu_after_pool) {  // identity here; the pool applies it (its producer's map is ours)
    r.out = src;
    r.md = r.out.get_desc();
    r.grad = x.rt_[src_node].grad;
    return;
  }
  if (!plan.fused) {
    const prop_kind pk = x.forward_kind();
    dnnl::eltwise_forward::desc d(pk, algorithm::eltwise_relu_use_dst_for_bwd, src.get_desc(), 0.f,
                                  0.f);
    dnnl::eltwise_forward::primitive_desc pd(d, x.eng_);
    memory dst = x.new_mem(pd.dst_desc());
    r.fwd.push_back(x.exec(dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}));
    x.set_output(i, dst);
  } else {
    // Output already shared by set_output of the producer; gradient buffers are this node's.
    r.md = r.out.get_desc();
    if (x.train_) x.make_grads(i);
  }
  if (!x.train_ || src_node == 0) return;
  dnnl::eltwise_forward::desc fd(prop_kind::forward_training,
                                 algorithm::eltwise_relu_use_dst_for_bwd, r.md, 0.f, 0.f);
  dnnl::eltwise_forward::primitive_desc fpd(fd, x.eng_);
  dnnl::eltwise_backward::desc bd(algorithm::eltwise_relu_use_dst_for_bwd, r.md, r.md, 0.f, 0.f);
  dnnl::eltwise_backward::primitive_desc bpd(bd, x.eng_, fpd);
  std::vector<Step> after;
  memory dsrc = x.grad_target(i, 0, bpd.diff_src_desc(), after);
  Net::append(
      r.bwd,
      x.exec(dnnl::eltwise_backward(bpd),
             {{DNNL_ARG_DST, r.out}, {DNNL_ARG_DIFF_DST, r.grad}, {DNNL_ARG_DIFF_SRC, dsrc}}),
      after);
}

void emit_add(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  std::vector<memory::desc> mds;
  Args args = x.sources(i, mds);
  std::vector<float> scales(mds.size(), 1.f);
  // The first input's layout for the output, so residual chains keep one layout.
  dnnl::sum::primitive_desc pd(mds[0], scales, mds, x.eng_);
  memory dst = x.new_mem(pd.dst_desc());
  args[DNNL_ARG_DST] = dst;
  r.fwd.push_back(x.exec(dnnl::sum(pd), args));
  x.set_output(i, dst);
  if (!x.train_) return;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    if (node.inputs[k] == 0) continue;
    std::vector<Step> after;
    memory t = x.grad_target(i, int(k), r.md, after);
    Net::append(r.bwd,
                x.exec(dnnl::reorder(r.grad, t), {{DNNL_ARG_FROM, r.grad}, {DNNL_ARG_TO, t}}),
                after);
  }
}

}  // namespace iotnas::onednn
