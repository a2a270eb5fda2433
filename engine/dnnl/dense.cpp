// dense on oneDNN (inner product): reads the 4-D map as it is; fused relu as a post-op.

#include "engine/dnnl/emit.hpp"

namespace iotnas::onednn {

void emit_dense(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  const Shape in = node.in;
  const int units = node.out.c;
  const memory::desc w_user_md({units, in.c, in.h, in.w}, dt::f32, tag::oihw);
  const memory::desc w_any({units, in.c, in.h, in.w}, dt::f32, tag::any);
  const memory::desc b_md({units}, dt::f32, tag::x);
  const memory::desc src_any({x.n_, in.c, in.h, in.w}, dt::f32, tag::any);
  const memory::desc dst_md({x.n_, units}, dt::f32, tag::nc);
  const dnnl::primitive_attr attr = x.relu_attr(i);
  const prop_kind pk = x.forward_kind();
  const bool has_bias = node.bias_count > 0;
  auto desc = has_bias ? dnnl::inner_product_forward::desc(pk, src_any, w_any, b_md, dst_md)
                       : dnnl::inner_product_forward::desc(pk, src_any, w_any, dst_md);
  dnnl::inner_product_forward::primitive_desc pd(desc, attr, x.eng_);
  const float* wptr = x.buf_.params + node.param_offset;
  memory w_user = x.user_mem(w_user_md, wptr);
  memory w = x.weights_as(w_user, pd.weights_desc());
  memory src_used = x.as_layout(src, pd.src_desc(), r.fwd);
  memory dst = x.new_mem(x.plain(node.out));  // [n, units, 1, 1] plain == [n, units]
  memory dst2d(dst_md, x.eng_, dst.get_data_handle());
  Args args{{DNNL_ARG_SRC, src_used}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst2d}};
  if (has_bias) args[DNNL_ARG_BIAS] = x.user_mem(b_md, wptr + node.weight_count);
  r.fwd.push_back(x.exec(dnnl::inner_product_forward(pd), args));
  x.set_output(i, dst);
  if (!x.train_) return;

  std::vector<Step>& bwd = r.bwd;
  memory grad2d(dst_md, x.eng_, r.grad.get_data_handle());
  auto wdesc = has_bias
                   ? dnnl::inner_product_backward_weights::desc(pd.src_desc(), w_any, b_md, dst_md)
                   : dnnl::inner_product_backward_weights::desc(pd.src_desc(), w_any, dst_md);
  dnnl::inner_product_backward_weights::primitive_desc wpd(wdesc, x.eng_, pd);
  memory src_w = x.as_layout(src_used, wpd.src_desc(), bwd);
  x.backward_weights<dnnl::inner_product_backward_weights>(i, wpd, src_w, grad2d, w_user_md, b_md);
  if (node.inputs[0] != 0) {
    dnnl::inner_product_backward_data::desc ddesc(src_any, w_any, dst_md);
    dnnl::inner_product_backward_data::primitive_desc dpd(ddesc, x.eng_, pd);
    x.backward_data<dnnl::inner_product_backward_data>(i, dpd, grad2d, w_user, w);
  }
}

}  // namespace iotnas::onednn
