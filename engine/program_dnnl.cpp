// The oneDNN program: every op is a oneDNN primitive created once per (graph, batch size), with
// layouts negotiated across the graph (format_tag::any: blocked layouts such as nChw16c), so
// activations stay blocked from the first convolution to the classifier and reorders happen only
// at the edges (the input image, maps of 1x1 spatial size, weights). ReLU after a conv2d/dense
// that has no other consumer is fused as a post-op.
//
// Gradients: each node's gradient has its output's layout. A node with several consumers gets
// one buffer per edge, summed before its own backward step. The image never gets a gradient.
#include <omp.h>

#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

#include "engine/program.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

#if IOTNAS_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace iotnas {

#if !IOTNAS_DNNL

std::unique_ptr<Program> compile_dnnl(const Graph&, const ProgramOptions&, const ProgramBuffers&) {
  fail("this iotnas was built without oneDNN (IOTNAS_DNNL=OFF); use --backend portable");
}

#else

namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::primitive;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;
using Args = std::unordered_map<int, memory>;

memory::dims pad_r(int in, int out, int k, int s, int pl) {
  return {(out - 1) * s + k - in - pl};
}

void prepend_edge_sum(std::vector<std::function<void()> >& bwd, const memory& grad,
                      const std::vector<memory>& edges, const dnnl::engine& eng,
                      dnnl::stream& strm);

// The executable form of a graph for one batch size.
class Plan {
 public:
  Plan(const Graph& g, const ProgramOptions& o, const ProgramBuffers& b, int n,
       const dnnl::engine& eng, dnnl::stream& strm);

  void forward(const float* input, const ActivationHook& hook, const std::vector<bool>& skip);
  void backward(const float* dlogits);
  const float* logits() const {
    return static_cast<const float*>(rt_.back().out.get_data_handle());
  }
  void params_changed() { weights_ready_ = false; }
  const std::vector<std::string>& implementations() const { return impls_; }

 private:
  using Step = std::function<void()>;

  struct NodeRt {
    memory::desc md;            // output layout (4-D N, C, H, W)
    memory out;                 // forward output (aliases for fused relu and flatten-into-dense)
    memory grad;                // dL/d(out), layout md (train)
    std::vector<memory> edges;  // per consuming edge when there are several (train)
    int next_edge = 0;
    std::vector<Step> fwd, bwd;
  };

  void build_node(int i);
  void build_conv(int i);
  void build_dense(int i);
  void build_relu(int i);
  void build_pool(int i);
  void build_gap(int i);
  void build_batch_norm(int i);
  void build_add(int i);
  void build_concat(int i);
  void build_flatten(int i);

  memory new_mem(const memory::desc& md) { return memory(md, eng_); }
  memory user_mem(const memory::desc& md, const float* p) {
    return memory(md, eng_, const_cast<float*>(p));
  }
  // A primitive execution; a oneDNN failure names the node being built when the step was made.
  Step exec(primitive p, Args args) {
    const std::string where = g_.nodes[building_].layer.name;
    const char* impl = nullptr;
    if (dnnl_primitive_desc_query(p.get_primitive_desc(), dnnl_query_impl_info_str, 0, &impl) ==
            dnnl_success &&
        impl)
      impls_.push_back(impl);
    return [this, p, args, where]() {
      try {
        p.execute(strm_, args);
      } catch (const dnnl::error& e) {
        throw InternalError("oneDNN step of node '" + where + "' failed: " + e.what());
      }
    };
  }
  // `m` in layout `want`: m itself, or a new buffer filled by a reorder appended to `steps`.
  memory as_layout(const memory& m, const memory::desc& want, std::vector<Step>& steps);
  // Where a primitive with result layout `have` writes dL/d(input k of node i): the target
  // directly when layouts agree, else a temporary reordered into the target by `after`.
  memory grad_target(int i, int k, const memory::desc& have, std::vector<Step>& after);
  // Stores the output of node i: maps of 1x1 spatial size are kept plain (nchw) so that
  // classifiers and logits never see blocked layouts.
  void set_output(int i, const memory& produced);
  memory::desc plain(const Shape& s) const {
    return memory::desc({n_, s.c, s.h, s.w}, dt::f32, tag::nchw);
  }
  memory user_as(const memory& user, const memory& prim);
  void add_weight_reorder(const memory& user, const memory& prim);
  void add_grad_reorder(const memory& prim, const memory& user, std::vector<Step>& steps);

  const Graph& g_;
  ProgramOptions opt_;
  ProgramBuffers buf_;
  int n_;
  bool train_;
  const dnnl::engine& eng_;
  dnnl::stream& strm_;
  std::vector<NodeRt> rt_;
  std::vector<int> fused_relu_;      // conv/dense node -> relu node fused into it, or -1
  std::vector<bool> relu_is_fused_;  // relu node computed by its producer
  // Training: relu node applied after its max-pool consumer instead (relu and max pooling
  // commute, values and gradients alike), so its forward and backward touch the pooled map,
  // a quarter of the size for 2x2 pools: the relu backward over the full map was 15% of a
  // plain-1k step.
  std::vector<bool> relu_after_pool_;
  std::vector<Step> weight_steps_;  // canonical params -> primitive layouts
  bool weights_ready_ = false;
  std::vector<std::string> impls_;  // implementation of each primitive, in the order built
  int building_ = 0;                // node whose steps are being made
};

Plan::Plan(const Graph& g, const ProgramOptions& o, const ProgramBuffers& b, int n,
           const dnnl::engine& eng, dnnl::stream& strm)
    : g_(g), opt_(o), buf_(b), n_(n), train_(o.mode == Mode::train), eng_(eng), strm_(strm) {
  const size_t count = g.nodes.size();
  rt_.resize(count);
  fused_relu_.assign(count, -1);
  relu_is_fused_.assign(count, false);
  relu_after_pool_.assign(count, false);
  for (size_t i = 1; i < count; ++i) {
    const Node& node = g.nodes[i];
    if (node.layer.op != Op::relu) continue;
    const Node& p = g.nodes[node.inputs[0]];
    if (train_ && node.inputs[0] != 0 && p.consumers.size() == 1 && node.consumers.size() == 1 &&
        g.nodes[node.consumers[0]].layer.op == Op::max_pool) {
      relu_after_pool_[i] = true;
      continue;
    }
    if ((p.layer.op == Op::conv2d || p.layer.op == Op::dense) && p.consumers.size() == 1) {
      fused_relu_[node.inputs[0]] = int(i);
      relu_is_fused_[i] = true;
    }
  }
  rt_[0].md = plain(g.input);
  rt_[0].out = new_mem(rt_[0].md);
  for (size_t i = 1; i < count; ++i) build_node(int(i));
  if (train_) {
    for (size_t i = 1; i < count; ++i)
      prepend_edge_sum(rt_[i].bwd, rt_[i].grad, rt_[i].edges, eng_, strm_);
  }
}

void Plan::build_node(int i) {
  building_ = i;
  switch (g_.nodes[i].layer.op) {
    case Op::conv2d:
      return build_conv(i);
    case Op::dense:
      return build_dense(i);
    case Op::relu:
      return build_relu(i);
    case Op::max_pool:
    case Op::avg_pool:
      return build_pool(i);
    case Op::global_avg_pool:
      return build_gap(i);
    case Op::batch_norm:
      return build_batch_norm(i);
    case Op::add:
      return build_add(i);
    case Op::concat:
      return build_concat(i);
    case Op::flatten:
      return build_flatten(i);
    case Op::input:
      break;
  }
  IOTNAS_ASSERT(false, "unhandled op");
}

memory Plan::as_layout(const memory& m, const memory::desc& want, std::vector<Step>& steps) {
  if (m.get_desc() == want) return m;
  if (m.get_desc().dims() != want.dims()) {
    // oneDNN reshaped a 4-D map (e.g. [n, C*H*W, 1, 1] for an inner product): through a plain
    // copy, whose bytes are the same under either shape.
    const memory::desc& have = m.get_desc();
    memory p = as_layout(m, memory::desc(have.dims(), dt::f32, tag::nchw), steps);
    return as_layout(
        memory(memory::desc(want.dims(), dt::f32, tag::nchw), eng_, p.get_data_handle()), want,
        steps);
  }
  memory t = new_mem(want);
  steps.push_back(exec(dnnl::reorder(m, t), {{DNNL_ARG_FROM, m}, {DNNL_ARG_TO, t}}));
  return t;
}

void Plan::set_output(int i, const memory& produced) {
  NodeRt& r = rt_[i];
  const Shape& s = g_.nodes[i].out;
  if (s.h == 1 && s.w == 1 && produced.get_desc() != plain(s)) {
    r.out = new_mem(plain(s));
    r.fwd.push_back(
        exec(dnnl::reorder(produced, r.out), {{DNNL_ARG_FROM, produced}, {DNNL_ARG_TO, r.out}}));
  } else {
    r.out = produced;
  }
  r.md = r.out.get_desc();
  if (train_) {
    r.grad = new_mem(r.md);
    const Node& node = g_.nodes[i];
    if (node.consumers.size() > 1) {
      for (size_t k = 0; k < node.consumers.size(); ++k) r.edges.push_back(new_mem(r.md));
    }
  }
  if (fused_relu_[i] >= 0) {  // the relu node shares this output
    NodeRt& relu = rt_[fused_relu_[i]];
    relu.md = r.md;
    relu.out = r.out;
  }
}

memory Plan::grad_target(int i, int k, const memory::desc& have, std::vector<Step>& after) {
  const int src = g_.nodes[i].inputs[k];
  if (src == 0) return memory();  // the image needs no gradient
  NodeRt& s = rt_[src];
  memory target = s.edges.empty() ? s.grad : s.edges.at(s.next_edge++);
  if (have == target.get_desc()) return target;
  if (have.dims() != target.get_desc().dims()) {  // reshaped (see as_layout): via a plain copy
    const memory::desc tplain(target.get_desc().dims(), dt::f32, tag::nchw);
    memory p = target.get_desc() == tplain ? target : new_mem(tplain);
    memory t = new_mem(have);
    memory view(memory::desc(have.dims(), dt::f32, tag::nchw), eng_, p.get_data_handle());
    after.push_back(exec(dnnl::reorder(t, view), {{DNNL_ARG_FROM, t}, {DNNL_ARG_TO, view}}));
    if (p != target)
      after.push_back(exec(dnnl::reorder(p, target), {{DNNL_ARG_FROM, p}, {DNNL_ARG_TO, target}}));
    return t;
  }
  memory t = new_mem(have);
  after.push_back(exec(dnnl::reorder(t, target), {{DNNL_ARG_FROM, t}, {DNNL_ARG_TO, target}}));
  return t;
}

// `user` viewed with the dims of `prim` when oneDNN reshaped them (plain bytes are the same).
memory Plan::user_as(const memory& user, const memory& prim) {
  const memory::desc& p = prim.get_desc();
  if (user.get_desc().dims() == p.dims()) return user;
  const tag plain_tag = p.data.ndims == 2 ? tag::ab : p.data.ndims == 4 ? tag::abcd : tag::abcde;
  return memory(memory::desc(p.dims(), dt::f32, plain_tag), eng_, user.get_data_handle());
}

void Plan::add_weight_reorder(const memory& user_in, const memory& prim) {
  memory user = user_as(user_in, prim);
  weight_steps_.push_back(
      exec(dnnl::reorder(user, prim), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, prim}}));
}

void Plan::add_grad_reorder(const memory& prim, const memory& user_in, std::vector<Step>& steps) {
  memory user = user_as(user_in, prim);
  steps.push_back(exec(dnnl::reorder(prim, user), {{DNNL_ARG_FROM, prim}, {DNNL_ARG_TO, user}}));
}

// Sum of a node's edge gradients into its gradient, first in its backward steps.
void prepend_edge_sum(std::vector<std::function<void()> >& bwd, const memory& grad,
                      const std::vector<memory>& edges, const dnnl::engine& eng,
                      dnnl::stream& strm) {
  if (edges.empty()) return;
  std::vector<memory::desc> mds;
  std::vector<float> scales(edges.size(), 1.f);
  for (const auto& e : edges) mds.push_back(e.get_desc());
  dnnl::sum::primitive_desc pd(grad.get_desc(), scales, mds, eng);
  Args args{{DNNL_ARG_DST, grad}};
  for (size_t k = 0; k < edges.size(); ++k) args[DNNL_ARG_MULTIPLE_SRC + int(k)] = edges[k];
  dnnl::sum p(pd);
  bwd.insert(bwd.begin(), [p, args, &strm]() { p.execute(strm, args); });
}

void Plan::build_conv(int i) {
  const Node& node = g_.nodes[i];
  const Layer& l = node.layer;
  NodeRt& r = rt_[i];
  const memory& src = rt_[node.inputs[0]].out;
  const Shape in = node.in, out = node.out;
  const int g = l.groups;
  memory::dims wdims = g == 1 ? memory::dims{out.c, in.c, l.kernel_h, l.kernel_w}
                              : memory::dims{g, out.c / g, in.c / g, l.kernel_h, l.kernel_w};
  const memory::desc w_user_md(wdims, dt::f32, g == 1 ? tag::oihw : tag::goihw);
  const memory::desc w_any(wdims, dt::f32, tag::any);
  const memory::desc b_md({out.c}, dt::f32, tag::x);
  const memory::desc src_any({n_, in.c, in.h, in.w}, dt::f32, tag::any);
  const memory::desc dst_any({n_, out.c, out.h, out.w}, dt::f32, tag::any);
  const memory::dims strides{l.stride_h, l.stride_w}, pl{l.pad_h, l.pad_w};
  const memory::dims pr{pad_r(in.h, out.h, l.kernel_h, l.stride_h, l.pad_h)[0],
                        pad_r(in.w, out.w, l.kernel_w, l.stride_w, l.pad_w)[0]};
  dnnl::primitive_attr attr;
  if (fused_relu_[i] >= 0) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  const prop_kind pk = train_ ? prop_kind::forward_training : prop_kind::forward_inference;
  const bool has_bias = node.bias_count > 0;
  auto desc = has_bias ? dnnl::convolution_forward::desc(pk, algorithm::convolution_direct, src_any,
                                                         w_any, b_md, dst_any, strides, pl, pr)
                       : dnnl::convolution_forward::desc(pk, algorithm::convolution_direct, src_any,
                                                         w_any, dst_any, strides, pl, pr);
  dnnl::convolution_forward::primitive_desc pd(desc, attr, eng_);

  const float* wptr = buf_.params + node.param_offset;
  memory w_user = user_mem(w_user_md, wptr);
  memory w = w_user;
  if (pd.weights_desc() != w_user_md) {
    w = new_mem(pd.weights_desc());
    add_weight_reorder(w_user, w);
  }
  memory src_used = as_layout(src, pd.src_desc(), r.fwd);
  memory dst = new_mem(pd.dst_desc());
  Args args{{DNNL_ARG_SRC, src_used}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
  memory b_user;
  if (has_bias) {
    b_user = user_mem(b_md, wptr + node.weight_count);
    args[DNNL_ARG_BIAS] = b_user;
  }
  r.fwd.push_back(exec(dnnl::convolution_forward(pd), args));
  set_output(i, dst);
  if (!train_) return;

  // Backward: weights (always) and data (unless the input is the image).
  float* gptr = buf_.grads + node.param_offset;
  auto make_wpd = [&](const memory::desc& s, const memory::desc& d) {
    auto wd = has_bias ? dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, s,
                                                                  w_any, b_md, d, strides, pl, pr)
                       : dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, s,
                                                                  w_any, d, strides, pl, pr);
    return dnnl::convolution_backward_weights::primitive_desc(wd, eng_, pd);
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
      auto alt = make_wpd(memory::desc({n_, in.c, in.h, in.w}, dt::f32, tag::nhwc),
                          memory::desc({n_, out.c, out.h, out.w}, dt::f32, tag::nhwc));
      if (!slow(alt)) wpd = alt;
    } catch (const dnnl::error&) {  // no channels-last kernel either: keep the first
    }
  }
  std::vector<Step>& bwd = r.bwd;
  memory ddst_w = as_layout(r.grad, wpd.diff_dst_desc(), bwd);
  memory src_w = as_layout(src_used, wpd.src_desc(), bwd);
  memory dw_user = user_mem(w_user_md, gptr);
  memory dw = wpd.diff_weights_desc() == w_user_md ? dw_user : new_mem(wpd.diff_weights_desc());
  Args wargs{{DNNL_ARG_SRC, src_w}, {DNNL_ARG_DIFF_DST, ddst_w}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
  if (has_bias) wargs[DNNL_ARG_DIFF_BIAS] = user_mem(b_md, gptr + node.weight_count);
  bwd.push_back(exec(dnnl::convolution_backward_weights(wpd), wargs));
  if (dw != dw_user) add_grad_reorder(dw, dw_user, bwd);

  if (node.inputs[0] != 0) {
    dnnl::convolution_backward_data::desc ddesc(algorithm::convolution_direct, src_any, w_any,
                                                dst_any, strides, pl, pr);
    dnnl::convolution_backward_data::primitive_desc dpd(ddesc, eng_, pd);
    memory w_d = w;
    if (dpd.weights_desc() != w.get_desc()) {
      w_d = new_mem(dpd.weights_desc());
      add_weight_reorder(w_user, w_d);
    }
    memory ddst_d = as_layout(r.grad, dpd.diff_dst_desc(), bwd);
    std::vector<Step> after;
    memory dsrc = grad_target(i, 0, dpd.diff_src_desc(), after);
    bwd.push_back(
        exec(dnnl::convolution_backward_data(dpd),
             {{DNNL_ARG_DIFF_DST, ddst_d}, {DNNL_ARG_WEIGHTS, w_d}, {DNNL_ARG_DIFF_SRC, dsrc}}));
    bwd.insert(bwd.end(), after.begin(), after.end());
  }
}

void Plan::build_dense(int i) {
  const Node& node = g_.nodes[i];
  NodeRt& r = rt_[i];
  const memory& src = rt_[node.inputs[0]].out;
  const Shape in = node.in;
  const int units = node.out.c;
  const memory::desc w_user_md({units, in.c, in.h, in.w}, dt::f32, tag::oihw);
  const memory::desc w_any({units, in.c, in.h, in.w}, dt::f32, tag::any);
  const memory::desc b_md({units}, dt::f32, tag::x);
  const memory::desc src_any({n_, in.c, in.h, in.w}, dt::f32, tag::any);
  const memory::desc dst_md({n_, units}, dt::f32, tag::nc);
  dnnl::primitive_attr attr;
  if (fused_relu_[i] >= 0) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  const prop_kind pk = train_ ? prop_kind::forward_training : prop_kind::forward_inference;
  const bool has_bias = node.bias_count > 0;
  auto desc = has_bias ? dnnl::inner_product_forward::desc(pk, src_any, w_any, b_md, dst_md)
                       : dnnl::inner_product_forward::desc(pk, src_any, w_any, dst_md);
  dnnl::inner_product_forward::primitive_desc pd(desc, attr, eng_);
  const float* wptr = buf_.params + node.param_offset;
  memory w_user = user_mem(w_user_md, wptr);
  memory w = w_user;
  if (pd.weights_desc() != w_user_md) {
    w = new_mem(pd.weights_desc());
    add_weight_reorder(w_user, w);
  }
  memory src_used = as_layout(src, pd.src_desc(), r.fwd);
  memory dst = new_mem(plain(node.out));  // [n, units, 1, 1] plain == [n, units]
  memory dst2d(dst_md, eng_, dst.get_data_handle());
  Args args{{DNNL_ARG_SRC, src_used}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst2d}};
  if (has_bias) args[DNNL_ARG_BIAS] = user_mem(b_md, wptr + node.weight_count);
  r.fwd.push_back(exec(dnnl::inner_product_forward(pd), args));
  set_output(i, dst);
  if (!train_) return;

  float* gptr = buf_.grads + node.param_offset;
  std::vector<Step>& bwd = r.bwd;
  memory grad2d(dst_md, eng_, r.grad.get_data_handle());
  auto wdesc = has_bias
                   ? dnnl::inner_product_backward_weights::desc(pd.src_desc(), w_any, b_md, dst_md)
                   : dnnl::inner_product_backward_weights::desc(pd.src_desc(), w_any, dst_md);
  dnnl::inner_product_backward_weights::primitive_desc wpd(wdesc, eng_, pd);
  memory src_w = as_layout(src_used, wpd.src_desc(), bwd);
  memory dw_user = user_mem(w_user_md, gptr);
  memory dw = wpd.diff_weights_desc() == w_user_md ? dw_user : new_mem(wpd.diff_weights_desc());
  Args wargs{{DNNL_ARG_SRC, src_w}, {DNNL_ARG_DIFF_DST, grad2d}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
  if (has_bias) wargs[DNNL_ARG_DIFF_BIAS] = user_mem(b_md, gptr + node.weight_count);
  bwd.push_back(exec(dnnl::inner_product_backward_weights(wpd), wargs));
  if (dw != dw_user) add_grad_reorder(dw, dw_user, bwd);
  if (node.inputs[0] != 0) {
    dnnl::inner_product_backward_data::desc ddesc(src_any, w_any, dst_md);
    dnnl::inner_product_backward_data::primitive_desc dpd(ddesc, eng_, pd);
    memory w_d = w;
    if (dpd.weights_desc() != w.get_desc()) {
      w_d = new_mem(dpd.weights_desc());
      add_weight_reorder(w_user, w_d);
    }
    std::vector<Step> after;
    memory dsrc = grad_target(i, 0, dpd.diff_src_desc(), after);
    bwd.push_back(
        exec(dnnl::inner_product_backward_data(dpd),
             {{DNNL_ARG_DIFF_DST, grad2d}, {DNNL_ARG_WEIGHTS, w_d}, {DNNL_ARG_DIFF_SRC, dsrc}}));
    bwd.insert(bwd.end(), after.begin(), after.end());
  }
}

void Plan::build_relu(int i) {
  const Node& node = g_.nodes[i];
  NodeRt& r = rt_[i];
  const int src_node = node.inputs[0];
  if (relu_after_pool_[i]) {  // identity here; the pool applies it (its producer's map is ours)
    r.out = rt_[src_node].out;
    r.md = r.out.get_desc();
    r.grad = rt_[src_node].grad;
    return;
  }
  if (!relu_is_fused_[i]) {
    const memory& src = rt_[src_node].out;
    const prop_kind pk = train_ ? prop_kind::forward_training : prop_kind::forward_inference;
    dnnl::eltwise_forward::desc d(pk, algorithm::eltwise_relu_use_dst_for_bwd, src.get_desc(), 0.f,
                                  0.f);
    dnnl::eltwise_forward::primitive_desc pd(d, eng_);
    memory dst = new_mem(pd.dst_desc());
    r.fwd.push_back(exec(dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}));
    set_output(i, dst);
  } else {
    // Output already shared by set_output of the producer; gradient buffers are this node's.
    r.md = r.out.get_desc();
    if (train_) {
      r.grad = new_mem(r.md);
      if (node.consumers.size() > 1) {
        for (size_t k = 0; k < node.consumers.size(); ++k) r.edges.push_back(new_mem(r.md));
      }
    }
  }
  if (!train_ || src_node == 0) return;
  dnnl::eltwise_forward::desc fd(prop_kind::forward_training,
                                 algorithm::eltwise_relu_use_dst_for_bwd, r.md, 0.f, 0.f);
  dnnl::eltwise_forward::primitive_desc fpd(fd, eng_);
  dnnl::eltwise_backward::desc bd(algorithm::eltwise_relu_use_dst_for_bwd, r.md, r.md, 0.f, 0.f);
  dnnl::eltwise_backward::primitive_desc bpd(bd, eng_, fpd);
  std::vector<Step> after;
  memory dsrc = grad_target(i, 0, bpd.diff_src_desc(), after);
  r.bwd.push_back(
      exec(dnnl::eltwise_backward(bpd),
           {{DNNL_ARG_DST, r.out}, {DNNL_ARG_DIFF_DST, r.grad}, {DNNL_ARG_DIFF_SRC, dsrc}}));
  r.bwd.insert(r.bwd.end(), after.begin(), after.end());
}

void Plan::build_pool(int i) {
  const Node& node = g_.nodes[i];
  const Layer& l = node.layer;
  NodeRt& r = rt_[i];
  const memory& src = rt_[node.inputs[0]].out;
  const Shape in = node.in, out = node.out;
  const algorithm alg =
      l.op == Op::max_pool ? algorithm::pooling_max : algorithm::pooling_avg_include_padding;
  const memory::desc dst_any({n_, out.c, out.h, out.w}, dt::f32, tag::any);
  const memory::dims strides{l.stride_h, l.stride_w}, kernel{l.kernel_h, l.kernel_w};
  const memory::dims pl{l.pad_h, l.pad_w};
  const memory::dims pr{pad_r(in.h, out.h, l.kernel_h, l.stride_h, l.pad_h)[0],
                        pad_r(in.w, out.w, l.kernel_w, l.stride_w, l.pad_w)[0]};
  const prop_kind pk = train_ ? prop_kind::forward_training : prop_kind::forward_inference;
  dnnl::pooling_forward::desc d(pk, alg, src.get_desc(), dst_any, strides, kernel, pl, pr);
  dnnl::pooling_forward::primitive_desc pd(d, eng_);
  memory dst = new_mem(pd.dst_desc());
  Args args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  memory ws;
  if (train_ && l.op == Op::max_pool) {
    ws = new_mem(pd.workspace_desc());
    args[DNNL_ARG_WORKSPACE] = ws;
  }
  r.fwd.push_back(exec(dnnl::pooling_forward(pd), args));
  const bool relu_here = relu_after_pool_[node.inputs[0]];
  dnnl::eltwise_forward::primitive_desc relu_pd;
  if (relu_here) {  // in place on the pooled map
    dnnl::eltwise_forward::desc d(prop_kind::forward_training,
                                  algorithm::eltwise_relu_use_dst_for_bwd, dst.get_desc(), 0.f,
                                  0.f);
    relu_pd = dnnl::eltwise_forward::primitive_desc(d, eng_);
    r.fwd.push_back(
        exec(dnnl::eltwise_forward(relu_pd), {{DNNL_ARG_SRC, dst}, {DNNL_ARG_DST, dst}}));
  }
  set_output(i, dst);
  if (!train_ || node.inputs[0] == 0) return;
  if (relu_here) {  // in place on this node's gradient, before the pool's backward reads it
    dnnl::eltwise_forward::desc fd(prop_kind::forward_training,
                                   algorithm::eltwise_relu_use_dst_for_bwd, r.md, 0.f, 0.f);
    dnnl::eltwise_forward::primitive_desc fpd(fd, eng_);
    dnnl::eltwise_backward::desc ed(algorithm::eltwise_relu_use_dst_for_bwd, r.md, r.md, 0.f, 0.f);
    dnnl::eltwise_backward::primitive_desc epd(ed, eng_, fpd);
    r.bwd.push_back(
        exec(dnnl::eltwise_backward(epd),
             {{DNNL_ARG_DST, r.out}, {DNNL_ARG_DIFF_DST, r.grad}, {DNNL_ARG_DIFF_SRC, r.grad}}));
  }
  dnnl::pooling_backward::desc bd(alg, src.get_desc(), pd.dst_desc(), strides, kernel, pl, pr);
  dnnl::pooling_backward::primitive_desc bpd(bd, eng_, pd);
  memory ddst = as_layout(r.grad, bpd.diff_dst_desc(), r.bwd);
  std::vector<Step> after;
  memory dsrc = grad_target(i, 0, bpd.diff_src_desc(), after);
  Args bargs{{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}};
  if (ws) bargs[DNNL_ARG_WORKSPACE] = ws;
  r.bwd.push_back(exec(dnnl::pooling_backward(bpd), bargs));
  r.bwd.insert(r.bwd.end(), after.begin(), after.end());
}

void Plan::build_gap(int i) {
  const Node& node = g_.nodes[i];
  NodeRt& r = rt_[i];
  const memory& src = rt_[node.inputs[0]].out;
  const Shape in = node.in;
  const memory::desc dst_any({n_, in.c, 1, 1}, dt::f32, tag::any);
  const memory::dims kernel{in.h, in.w}, zero{0, 0};
  const prop_kind pk = train_ ? prop_kind::forward_training : prop_kind::forward_inference;
  dnnl::pooling_forward::desc d(pk, algorithm::pooling_avg_include_padding, src.get_desc(), dst_any,
                                kernel, kernel, zero, zero);
  dnnl::pooling_forward::primitive_desc pd(d, eng_);
  memory dst = new_mem(pd.dst_desc());
  r.fwd.push_back(exec(dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}));
  set_output(i, dst);
  if (!train_ || node.inputs[0] == 0) return;
  dnnl::pooling_backward::desc bd(algorithm::pooling_avg_include_padding, src.get_desc(),
                                  pd.dst_desc(), kernel, kernel, zero, zero);
  dnnl::pooling_backward::primitive_desc bpd(bd, eng_, pd);
  memory ddst = as_layout(r.grad, bpd.diff_dst_desc(), r.bwd);
  std::vector<Step> after;
  memory dsrc = grad_target(i, 0, bpd.diff_src_desc(), after);
  r.bwd.push_back(
      exec(dnnl::pooling_backward(bpd), {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}}));
  r.bwd.insert(r.bwd.end(), after.begin(), after.end());
}

void Plan::build_batch_norm(int i) {
  const Node& node = g_.nodes[i];
  const Layer& l = node.layer;
  NodeRt& r = rt_[i];
  const memory& src = rt_[node.inputs[0]].out;
  const int c = node.out.c;
  const memory::desc c_md({c}, dt::f32, tag::x);
  const float* gamma = buf_.params + node.param_offset;
  memory scale = user_mem(c_md, gamma), shift = user_mem(c_md, gamma + c);
  float* running = buf_.state + node.state_offset;
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  if (!train_) {
    flags = flags | dnnl::normalization_flags::use_global_stats;
    dnnl::batch_normalization_forward::desc d(prop_kind::forward_inference, src.get_desc(), l.eps,
                                              flags);
    dnnl::batch_normalization_forward::primitive_desc pd(d, eng_);
    memory dst = new_mem(pd.dst_desc());
    r.fwd.push_back(exec(dnnl::batch_normalization_forward(pd),
                         {{DNNL_ARG_SRC, src},
                          {DNNL_ARG_DST, dst},
                          {DNNL_ARG_SCALE, scale},
                          {DNNL_ARG_SHIFT, shift},
                          {DNNL_ARG_MEAN, user_mem(c_md, running)},
                          {DNNL_ARG_VARIANCE, user_mem(c_md, running + c)}}));
    set_output(i, dst);
    return;
  }
  dnnl::batch_normalization_forward::desc d(prop_kind::forward_training, src.get_desc(), l.eps,
                                            flags);
  dnnl::batch_normalization_forward::primitive_desc pd(d, eng_);
  memory dst = new_mem(pd.dst_desc());
  memory mean = new_mem(pd.mean_desc()), var = new_mem(pd.variance_desc());
  r.fwd.push_back(exec(dnnl::batch_normalization_forward(pd), {{DNNL_ARG_SRC, src},
                                                               {DNNL_ARG_DST, dst},
                                                               {DNNL_ARG_SCALE, scale},
                                                               {DNNL_ARG_SHIFT, shift},
                                                               {DNNL_ARG_MEAN, mean},
                                                               {DNNL_ARG_VARIANCE, var}}));
  // Running statistics, PyTorch's convention: unbiased variance.
  const float m = l.momentum;
  const int64_t count = int64_t(n_) * node.out.h * node.out.w;
  r.fwd.push_back([mean, var, running, c, m, count]() {
    const float* bm = static_cast<const float*>(mean.get_data_handle());
    const float* bv = static_cast<const float*>(var.get_data_handle());
    const double unbias = count > 1 ? double(count) / double(count - 1) : 1.0;
    for (int k = 0; k < c; ++k) {
      running[k] = (1 - m) * running[k] + m * bm[k];
      running[c + k] = float((1 - m) * running[c + k] + m * bv[k] * unbias);
    }
  });
  set_output(i, dst);
  float* gptr = buf_.grads + node.param_offset;
  dnnl::batch_normalization_backward::desc bd(prop_kind::backward, pd.dst_desc(), src.get_desc(),
                                              l.eps, flags);
  dnnl::batch_normalization_backward::primitive_desc bpd(bd, eng_, pd);
  memory ddst = as_layout(r.grad, bpd.diff_dst_desc(), r.bwd);
  std::vector<Step> after;
  memory dsrc = grad_target(i, 0, bpd.diff_src_desc(), after);
  if (!dsrc) dsrc = new_mem(bpd.diff_src_desc());  // the image: gradient unused
  r.bwd.push_back(exec(dnnl::batch_normalization_backward(bpd),
                       {{DNNL_ARG_SRC, src},
                        {DNNL_ARG_MEAN, mean},
                        {DNNL_ARG_VARIANCE, var},
                        {DNNL_ARG_DIFF_DST, ddst},
                        {DNNL_ARG_SCALE, scale},
                        // Unused by backward, but oneDNN 2.6's plain-layout (ncsp)
                        // implementation refuses to run without it.
                        {DNNL_ARG_SHIFT, shift},
                        {DNNL_ARG_DIFF_SRC, dsrc},
                        {DNNL_ARG_DIFF_SCALE, user_mem(c_md, gptr)},
                        {DNNL_ARG_DIFF_SHIFT, user_mem(c_md, gptr + c)}}));
  r.bwd.insert(r.bwd.end(), after.begin(), after.end());
}

void Plan::build_add(int i) {
  const Node& node = g_.nodes[i];
  NodeRt& r = rt_[i];
  std::vector<memory::desc> mds;
  Args args;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const memory& m = rt_[node.inputs[k]].out;
    mds.push_back(m.get_desc());
    args[DNNL_ARG_MULTIPLE_SRC + int(k)] = m;
  }
  std::vector<float> scales(mds.size(), 1.f);
  // The first input's layout for the output, so residual chains keep one layout.
  dnnl::sum::primitive_desc pd(mds[0], scales, mds, eng_);
  memory dst = new_mem(pd.dst_desc());
  args[DNNL_ARG_DST] = dst;
  r.fwd.push_back(exec(dnnl::sum(pd), args));
  set_output(i, dst);
  if (!train_) return;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    if (node.inputs[k] == 0) continue;
    std::vector<Step> after;
    memory t = grad_target(i, int(k), r.md, after);
    r.bwd.push_back(exec(dnnl::reorder(r.grad, t), {{DNNL_ARG_FROM, r.grad}, {DNNL_ARG_TO, t}}));
    r.bwd.insert(r.bwd.end(), after.begin(), after.end());
  }
}

void Plan::build_concat(int i) {
  const Node& node = g_.nodes[i];
  NodeRt& r = rt_[i];
  std::vector<memory::desc> mds;
  Args args;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const memory& m = rt_[node.inputs[k]].out;
    mds.push_back(m.get_desc());
    args[DNNL_ARG_MULTIPLE_SRC + int(k)] = m;
  }
  // Channels-last inputs (batch 1: every convolution's choice) get a channels-last output. Left
  // to choose, oneDNN 2.6 picks an N-H-C-W layout (acbd) for maps of 7x7 and 14x14, on which the
  // pooling after an Inception block has only its reference kernel: 73-120 us instead of 1.
  bool channels_last = true;
  for (const auto& md : mds) channels_last &= md == memory::desc(md.dims(), dt::f32, tag::nhwc);
  const memory::desc nhwc_out({n_, node.out.c, node.out.h, node.out.w}, dt::f32, tag::nhwc);
  if (channels_last) {
    // A channels-last concat copies each pixel's channel runs. oneDNN's generic kernel pays about
    // 7 ns per run (21 us for 4 inputs at 28x28); a plain loop pays less.
    memory dst = new_mem(nhwc_out);
    std::vector<memory> srcs;
    std::vector<int> channels;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      srcs.push_back(rt_[node.inputs[k]].out);
      channels.push_back(g_.nodes[node.inputs[k]].out.c);
    }
    const int64_t pixels = int64_t(n_) * node.out.h * node.out.w;
    const int c_out = node.out.c;
    std::vector<const float*> from(srcs.size());
    r.fwd.push_back([dst, srcs, channels, pixels, c_out, from]() mutable {
      float* d = static_cast<float*>(dst.get_data_handle());
      for (size_t k = 0; k < srcs.size(); ++k)
        from[k] = static_cast<const float*>(srcs[k].get_data_handle());
      // Pixel by pixel: the output is written once, in order; the runs are short (a few to a
      // few dozen floats), so a plain loop beats a memcpy call per run.
      auto copy = [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          float* o = d + p * c_out;
          for (size_t k = 0; k < from.size(); ++k) {
            const int c = channels[k];
            const float* src = from[k] + p * c;
            for (int j = 0; j < c; ++j) o[j] = src[j];
            o += c;
          }
        }
      };
      if (pixels * c_out < (1 << 16)) {
        copy(0, pixels);  // batch 1: no parallel region (entering one costs more than the copy)
        return;
      }
#pragma omp parallel
      {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        copy(pixels * t / nt, pixels * (t + 1) / nt);
      }
    });
    set_output(i, dst);
  } else {
    dnnl::concat::primitive_desc pd(1, mds, eng_);
    memory dst = new_mem(pd.dst_desc());
    args[DNNL_ARG_DST] = dst;
    r.fwd.push_back(exec(dnnl::concat(pd), args));
    set_output(i, dst);
  }
  if (!train_) return;
  // Split the gradient through a plain copy (sub-memories of blocked layouts need aligned
  // channel offsets).
  memory flat = as_layout(r.grad, plain(node.out), r.bwd);
  int offset = 0;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const Shape s = g_.nodes[node.inputs[k]].out;
    if (node.inputs[k] != 0) {
      memory::desc part = plain(node.out).submemory_desc({n_, s.c, s.h, s.w}, {0, offset, 0, 0});
      memory view(part, eng_, flat.get_data_handle());
      std::vector<Step> after;
      memory t = grad_target(i, int(k), rt_[node.inputs[k]].md, after);
      r.bwd.push_back(exec(dnnl::reorder(view, t), {{DNNL_ARG_FROM, view}, {DNNL_ARG_TO, t}}));
      r.bwd.insert(r.bwd.end(), after.begin(), after.end());
    }
    offset += s.c;
  }
}

void Plan::build_flatten(int i) {
  const Node& node = g_.nodes[i];
  NodeRt& r = rt_[i];
  const int src_node = node.inputs[0];
  const memory& src = rt_[src_node].out;
  bool all_dense = !node.consumers.empty();  // the model's output must be plain
  for (int c : node.consumers) all_dense &= g_.nodes[c].layer.op == Op::dense;
  if (all_dense) {
    // Dense layers read the 4-D map directly; flatten is a view.
    r.out = src;
    r.md = src.get_desc();
  } else {
    const memory::desc flat4 = plain(node.in);  // same bytes as [n, C*H*W, 1, 1] plain
    memory out = new_mem(plain(node.out));
    memory view(flat4, eng_, out.get_data_handle());
    r.fwd.push_back(exec(dnnl::reorder(src, view), {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, view}}));
    r.out = out;
    r.md = out.get_desc();
  }
  if (!train_) return;
  r.grad = new_mem(r.md);
  if (node.consumers.size() > 1) {
    for (size_t k = 0; k < node.consumers.size(); ++k) r.edges.push_back(new_mem(r.md));
  }
  if (src_node == 0) return;
  std::vector<Step> after;
  memory t = grad_target(i, 0, rt_[src_node].md, after);
  memory from = all_dense ? r.grad : memory(plain(node.in), eng_, r.grad.get_data_handle());
  r.bwd.push_back(exec(dnnl::reorder(from, t), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, t}}));
  r.bwd.insert(r.bwd.end(), after.begin(), after.end());
}

void Plan::forward(const float* input, const ActivationHook& hook, const std::vector<bool>& skip) {
  if (!weights_ready_ || train_) {
    for (auto& s : weight_steps_) s();
    weights_ready_ = true;
  }
  float* in = static_cast<float*>(rt_[0].out.get_data_handle());
  std::memcpy(in, input, sizeof(float) * size_t(n_) * g_.input.size());
  if (hook) hook(0, in, int64_t(n_) * g_.input.size());
  for (size_t i = 1; i < rt_.size(); ++i) {
    NodeRt& r = rt_[i];
    for (auto& s : r.fwd) s();
    if (hook && !relu_is_fused_[i] && !r.fwd.empty() && !skip[i]) {
      const int at = fused_relu_[i] >= 0 ? fused_relu_[i] : int(i);
      hook(at, static_cast<float*>(r.out.get_data_handle()),
           int64_t(r.md.get_size() / sizeof(float)));
    }
  }
}

void Plan::backward(const float* dlogits) {
  NodeRt& last = rt_.back();
  std::memcpy(last.grad.get_data_handle(), dlogits,
              sizeof(float) * size_t(n_) * g_.output().out.size());
  for (size_t i = rt_.size() - 1; i >= 1; --i) {
    for (auto& s : rt_[i].bwd) s();
  }
}

class DnnlProgram final : public Program {
 public:
  DnnlProgram(const Graph& g, const ProgramOptions& o, const ProgramBuffers& b)
      : g_(g), opt_(o), buf_(b), eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
    plan(o.batch);
  }
  int capacity() const override { return opt_.batch; }
  const float* logits() const override { return current_->logits(); }
  void set_hook(ActivationHook hook, HookScope scope) override {
    IOTNAS_ASSERT(opt_.mode == Mode::infer, "hooks are for inference programs");
    hook_ = std::move(hook);
    skip_.assign(g_.nodes.size(), false);
    if (scope == HookScope::computed_maps) skip_ = hook_skips(g_);
  }
  void forward(const float* input, int n) override {
    IOTNAS_ASSERT(n >= 1 && n <= opt_.batch, "batch exceeds the program's capacity");
    current_ = &plan(n);
    if (skip_.empty()) skip_.assign(g_.nodes.size(), false);
    current_->forward(input, hook_, skip_);
  }
  void backward(const float* dlogits) override {
    IOTNAS_ASSERT(opt_.mode == Mode::train && current_, "backward needs a training forward first");
    current_->backward(dlogits);
  }
  void params_changed() override {
    for (auto& [n, p] : plans_) p->params_changed();
  }
  std::vector<std::string> implementations() const override {
    if (current_) return current_->implementations();
    auto it = plans_.find(opt_.batch);
    return it == plans_.end() ? std::vector<std::string>{} : it->second->implementations();
  }

 private:
  Plan& plan(int n) {
    auto it = plans_.find(n);
    if (it != plans_.end()) return *it->second;
    try {
      auto p = std::make_unique<Plan>(g_, opt_, buf_, n, eng_, strm_);
      return *plans_.emplace(n, std::move(p)).first->second;
    } catch (const dnnl::error& e) {
      fail("oneDNN cannot run model '", g_.name, "' at batch ", n, ": ", e.what(),
           " (try --backend portable)");
    }
  }

  const Graph& g_;
  ProgramOptions opt_;
  ProgramBuffers buf_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  std::map<int, std::unique_ptr<Plan> > plans_;
  Plan* current_ = nullptr;
  ActivationHook hook_;
  std::vector<bool> skip_;
};

}  // namespace

std::unique_ptr<Program> compile_dnnl(const Graph& graph, const ProgramOptions& options,
                                      const ProgramBuffers& buffers) {
  return std::make_unique<DnnlProgram>(graph, options, buffers);
}

#endif

}  // namespace iotnas
