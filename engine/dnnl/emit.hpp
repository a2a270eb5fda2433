// The oneDNN backend: every op is a oneDNN primitive created once per (graph, batch size), with
// layouts negotiated across the graph (format_tag::any: blocked layouts such as nChw16c), so
// activations stay blocked from the first convolution to the classifier and reorders happen only
// at the edges (the input image, maps of 1x1 spatial size, weights). The plan's fused relus are
// post-ops of their conv2d/dense.
//
// Gradients: each node's gradient has its output's layout. A map with several consumers gets one
// buffer per edge, summed before its own backward step. The image never gets a gradient.
//
// A Net is the graph built for one batch size; one emitter per op family, one file each
// (conv.cpp, dense.cpp, pool.cpp, batch_norm.cpp, eltwise.cpp, concat.cpp); program.cpp holds the
// Net's helpers, the op -> emitter table, the executable (a Net per batch size) and the registry
// row.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/backend.hpp"

namespace iotnas::onednn {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::primitive;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;
using Args = std::unordered_map<int, memory>;
using Step = std::function<void()>;

// Right padding that makes `out` outputs of a window `k` with stride `s` over `in` inputs with
// left padding `pl`.
inline int pad_right(int in, int out, int k, int s, int pl) {
  return (out - 1) * s + k - in - pl;
}

class Net {
 public:
  Net(const BuildArgs& a, int n, const dnnl::engine& eng, dnnl::stream& strm);

  struct NodeRt {
    memory::desc md;            // output layout (4-D N, C, H, W)
    memory out;                 // forward output (aliases for fused relu and flatten-into-dense)
    memory grad;                // dL/d(out), layout md (train)
    std::vector<memory> edges;  // per consuming edge when there are several (train)
    int next_edge = 0;          // edges handed out so far, in build order
    std::vector<Step> fwd, bwd;
  };

  // ---- for the emitters
  // Node i, its runtime record and its first input's map.
  struct At {
    const Node& node;
    NodeRt& r;
    const memory& src;
  };
  At at(int i) {
    const Node& n = g_.nodes[size_t(i)];
    return {n, rt_[size_t(i)], rt_[size_t(n.inputs[0])].out};
  }
  // Memory args DNNL_ARG_MULTIPLE_SRC + k for every input k of node i; their layouts into `mds`.
  Args sources(int i, std::vector<memory::desc>& mds);
  // Weights `user` (canonical layout) as a primitive wants them: `have` when it is in that
  // layout already, else `user` itself, else a buffer the weight reorders fill before a forward.
  memory weights_as(const memory& user, const memory::desc& want, const memory& have = memory());
  // Where a primitive writes a weight gradient whose canonical buffer is `user`: `user` itself,
  // or a buffer in layout `have` that a step appended to `after` reorders into `user`.
  memory diff_weights_as(const memory& user, const memory::desc& have, std::vector<Step>& after);
  // The backward-weights step of a layer with weights (conv2d, dense): primitive P from `pd`,
  // reading `src` and `diff_dst`, into the parameter gradients (canonical layouts `w_user_md`
  // and `b_md`; the bias only when the layer has one).
  template <typename P, typename PD>
  void backward_weights(int i, const PD& pd, const memory& src, const memory& diff_dst,
                        const memory::desc& w_user_md, const memory::desc& b_md) {
    const Node& node = g_.nodes[size_t(i)];
    float* gptr = buf_.grads + node.param_offset;
    std::vector<Step> after;
    memory dw = diff_weights_as(user_mem(w_user_md, gptr), pd.diff_weights_desc(), after);
    Args args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
    if (node.bias_count) args[DNNL_ARG_DIFF_BIAS] = user_mem(b_md, gptr + node.weight_count);
    append(rt_[size_t(i)].bwd, exec(P(pd), args), after);
  }
  // The backward-data step of a layer with weights (conv2d, dense) into the gradient of node i's
  // input: primitive P from `pd`, reading `diff_dst` and the weights `user` in pd's layout
  // (`have` when it is that layout already).
  template <typename P, typename PD>
  void backward_data(int i, const PD& pd, const memory& diff_dst, const memory& user,
                     const memory& have) {
    memory w = weights_as(user, pd.weights_desc(), have);
    std::vector<Step> after;
    memory dsrc = grad_target(i, 0, pd.diff_src_desc(), after);
    append(rt_[size_t(i)].bwd,
           exec(P(pd),
                {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dsrc}}),
           after);
  }
  // Appends `step`, then `after` (the reorders of its results into their targets).
  static void append(std::vector<Step>& steps, Step step, const std::vector<Step>& after) {
    steps.push_back(std::move(step));
    steps.insert(steps.end(), after.begin(), after.end());
  }
  memory new_mem(const memory::desc& md) { return memory(md, eng_); }
  memory user_mem(const memory::desc& md, const float* p) {
    return memory(md, eng_, const_cast<float*>(p));
  }
  // A primitive execution; a oneDNN failure names the node being built when the step was made.
  Step exec(primitive p, Args args);
  // `m` in layout `want`: m itself, or a new buffer filled by a reorder appended to `steps`.
  memory as_layout(const memory& m, const memory::desc& want, std::vector<Step>& steps);
  // Where a primitive with result layout `have` writes dL/d(input k of node i): the target
  // directly when layouts agree, else a temporary reordered into the target by `after`.
  memory grad_target(int i, int k, const memory::desc& have, std::vector<Step>& after);
  // Stores the output of node i: maps of 1x1 spatial size are kept plain (nchw) so that
  // classifiers and logits never see blocked layouts.
  void set_output(int i, const memory& produced);
  // The gradient buffers of node i (its own, and one per edge when it has several consumers).
  void make_grads(int i);
  memory::desc plain(const Shape& s) const {
    return memory::desc({n_, s.c, s.h, s.w}, dt::f32, tag::nchw);
  }
  // `user` viewed with the dims of `prim` when oneDNN reshaped them (plain bytes are the same).
  memory user_as(const memory& user, const memory& prim);
  // A relu post-op when the plan fuses node i's relu into it.
  dnnl::primitive_attr relu_attr(int i) const;
  prop_kind forward_kind() const {
    return train_ ? prop_kind::forward_training : prop_kind::forward_inference;
  }

  const Graph& g_;
  const ExecPlan& plan_;
  ProgramBuffers buf_;
  int n_;
  bool train_;
  const dnnl::engine& eng_;
  dnnl::stream& strm_;
  std::vector<NodeRt> rt_;
  std::vector<Step> weight_steps_;  // canonical params -> primitive layouts
  bool weights_ready_ = false;
  std::vector<std::string> impls_;  // "<layer>: <implementation>" per primitive, in build order
  int building_ = 0;                // node whose steps are being made
  void building(int i) { building_ = i; }
};

// Emitters (engine/emitters.hpp): node i's forward (and, training, backward) steps into rt_[i].
void emit_conv2d(Net&, int), emit_dense(Net&, int), emit_batch_norm(Net&, int);
void emit_max_pool(Net&, int), emit_avg_pool(Net&, int), emit_global_avg_pool(Net&, int);
void emit_relu(Net&, int), emit_add(Net&, int), emit_concat(Net&, int), emit_flatten(Net&, int);

}  // namespace iotnas::onednn
