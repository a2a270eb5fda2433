// The portable program: NCHW buffers, kernels/portable, conv/dense + relu fused when the relu is
// the only consumer. Gradients of a map with several consumers are accumulated in place (the
// first consumer in backward order writes, the others add).
#include <algorithm>
#include <cstring>

#include "engine/program.hpp"
#include "kernels/base/error.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas {

namespace {

namespace pk = kernels::portable;

class PortableProgram final : public Program {
 public:
  PortableProgram(const Graph& g, const ProgramOptions& o, const ProgramBuffers& b)
      : g_(g), opt_(o), buf_(b) {
    const size_t count = g.nodes.size();
    const int cap = o.batch;
    IOTNAS_ASSERT(cap >= 1);
    const bool train = o.mode == Mode::train;
    // Which conv/dense nodes write their relu's output directly.
    fused_relu_.assign(count, -1);
    for (size_t i = 1; i < count; ++i) {
      const Node& n = g.nodes[i];
      if (n.layer.op != Op::relu) continue;
      const Node& p = g.nodes[n.inputs[0]];
      if ((p.layer.op == Op::conv2d || p.layer.op == Op::dense) && p.consumers.size() == 1) {
        fused_relu_[n.inputs[0]] = int(i);
      }
    }
    // One buffer per node output (flatten aliases its input); conv+relu share relu's buffer.
    out_.assign(count, nullptr);
    storage_.resize(count);
    for (size_t i = 0; i < count; ++i) {
      const Node& n = g.nodes[i];
      if (n.layer.op == Op::flatten) continue;
      if (fused_relu_[i] >= 0) continue;  // written into the relu's buffer
      storage_[i].assign(size_t(cap) * n.out.size(), 0.f);
      out_[i] = storage_[i].data();
    }
    for (size_t i = 0; i < count; ++i) {
      const Node& n = g.nodes[i];
      if (n.layer.op == Op::flatten) out_[i] = out_[n.inputs[0]];
    }
    for (size_t i = 0; i < count; ++i) {
      if (fused_relu_[i] >= 0) out_[i] = out_[fused_relu_[i]];
    }
    // flatten of a fused producer must resolve after the fused aliasing.
    for (size_t i = 0; i < count; ++i) {
      if (g.nodes[i].layer.op == Op::flatten) out_[i] = out_[g.nodes[i].inputs[0]];
    }
    if (train) {
      grad_storage_.resize(count);
      grad_.assign(count, nullptr);
      for (size_t i = 1; i < count; ++i) {  // no gradient for the input image
        const Node& n = g.nodes[i];
        grad_storage_[i].assign(size_t(cap) * n.out.size(), 0.f);
        grad_[i] = grad_storage_[i].data();
      }
      argmax_.resize(count);
      bn_mean_.resize(count);
      bn_var_.resize(count);
      for (size_t i = 1; i < count; ++i) {
        const Node& n = g.nodes[i];
        if (n.layer.op == Op::max_pool) argmax_[i].assign(size_t(cap) * n.out.size(), 0);
        if (n.layer.op == Op::batch_norm) {
          bn_mean_[i].assign(n.out.c, 0.f);
          bn_var_[i].assign(n.out.c, 0.f);
        }
      }
    }
  }

  int capacity() const override { return opt_.batch; }
  const float* logits() const override { return out_.back(); }
  void set_hook(ActivationHook hook, HookScope scope) override {
    IOTNAS_ASSERT(opt_.mode == Mode::infer, "hooks are for inference programs");
    hook_ = std::move(hook);
    skip_.assign(g_.nodes.size(), false);
    if (scope == HookScope::computed_maps) skip_ = hook_skips(g_);
  }

  void forward(const float* input, int n) override {
    IOTNAS_ASSERT(n >= 1 && n <= opt_.batch, "batch exceeds the program's capacity");
    n_ = n;
    std::memcpy(out_[0], input, sizeof(float) * size_t(n) * g_.input.size());
    if (hook_) hook_(0, out_[0], int64_t(n) * g_.input.size());
    for (size_t i = 1; i < g_.nodes.size(); ++i) {
      const Node& node = g_.nodes[i];
      if (node.layer.op == Op::flatten) continue;
      if (node.layer.op == Op::relu && fused_relu_[node.inputs[0]] == int(i)) continue;
      forward_node(int(i));
      if (hook_ && !skip_[i]) {
        const int at = fused_relu_[i] >= 0 ? fused_relu_[i] : int(i);
        hook_(at, out_[i], int64_t(n) * node.out.size());
      }
    }
  }

  void backward(const float* dlogits) override {
    IOTNAS_ASSERT(opt_.mode == Mode::train, "backward needs a training program");
    const size_t count = g_.nodes.size();
    std::memcpy(grad_.back(), dlogits, sizeof(float) * size_t(n_) * g_.output().out.size());
    // written[i]: some consumer has written grad_[i] already this pass.
    std::vector<bool> written(count, false);
    written[count - 1] = true;
    for (size_t i = count - 1; i >= 1; --i) backward_node(int(i), written);
  }

 private:
  const float* param(const Node& n) const { return buf_.params + n.param_offset; }
  float* dparam(const Node& n) const { return buf_.grads + n.param_offset; }

  kernels::ConvShape conv_shape(const Node& node) const {
    const Layer& l = node.layer;
    kernels::ConvShape s;
    s.n = n_;
    s.c_in = node.in.c, s.h_in = node.in.h, s.w_in = node.in.w;
    s.c_out = node.out.c, s.h_out = node.out.h, s.w_out = node.out.w;
    s.kh = l.kernel_h, s.kw = l.kernel_w, s.sh = l.stride_h, s.sw = l.stride_w;
    s.ph = l.pad_h, s.pw = l.pad_w, s.groups = l.groups;
    return s;
  }
  kernels::PoolShape pool_shape(const Node& node) const {
    const Layer& l = node.layer;
    kernels::PoolShape s;
    s.n = n_, s.c = node.in.c, s.h_in = node.in.h, s.w_in = node.in.w;
    s.h_out = node.out.h, s.w_out = node.out.w;
    s.kh = l.kernel_h, s.kw = l.kernel_w, s.sh = l.stride_h, s.sw = l.stride_w;
    s.ph = l.pad_h, s.pw = l.pad_w;
    return s;
  }

  void forward_node(int i) {
    const Node& node = g_.nodes[i];
    const Layer& l = node.layer;
    const float* src = out_[node.inputs[0]];
    float* dst = out_[i];
    const bool relu = fused_relu_[i] >= 0;
    const bool train = opt_.mode == Mode::train;
    switch (l.op) {
      case Op::conv2d: {
        const float* w = param(node);
        pk::conv2d_fwd(conv_shape(node), src, w, node.bias_count ? w + node.weight_count : nullptr,
                       dst, relu);
        break;
      }
      case Op::dense: {
        const float* w = param(node);
        pk::dense_fwd({n_, int(node.in.size()), node.out.c}, src, w,
                      node.bias_count ? w + node.weight_count : nullptr, dst, relu);
        break;
      }
      case Op::relu:
        pk::relu_fwd(int64_t(n_) * node.out.size(), src, dst);
        break;
      case Op::max_pool:
        pk::max_pool_fwd(pool_shape(node), src, dst, train ? argmax_[i].data() : nullptr);
        break;
      case Op::avg_pool:
        pk::avg_pool_fwd(pool_shape(node), src, dst);
        break;
      case Op::global_avg_pool:
        pk::global_avg_pool_fwd(n_, node.in.c, node.in.h * node.in.w, src, dst);
        break;
      case Op::batch_norm: {
        const float* gamma = param(node);
        const float* beta = gamma + node.out.c;
        float* running = buf_.state + node.state_offset;
        const int hw = node.out.h * node.out.w;
        if (train) {
          pk::batch_norm_fwd_training(n_, node.out.c, hw, src, gamma, beta, l.eps, dst,
                                      bn_mean_[i].data(), bn_var_[i].data());
          update_running(node, running, bn_mean_[i].data(), bn_var_[i].data(), int64_t(n_) * hw);
        } else {
          pk::batch_norm_fwd_inference(n_, node.out.c, hw, src, gamma, beta, running,
                                       running + node.out.c, l.eps, dst);
        }
        break;
      }
      case Op::add: {
        std::vector<const float*> srcs;
        for (int in : node.inputs) srcs.push_back(out_[in]);
        pk::add_fwd(int64_t(n_) * node.out.size(), int(srcs.size()), srcs.data(), dst);
        break;
      }
      case Op::concat: {
        std::vector<const float*> srcs;
        std::vector<int> ch;
        for (int in : node.inputs) {
          srcs.push_back(out_[in]);
          ch.push_back(g_.nodes[in].out.c);
        }
        pk::concat_fwd(n_, node.out.h * node.out.w, int(srcs.size()), srcs.data(), ch.data(), dst);
        break;
      }
      case Op::flatten:
      case Op::input:
        break;
    }
  }

  void update_running(const Node& node, float* running, const float* mean, const float* var,
                      int64_t count) {
    const float m = node.layer.momentum;
    const int c = node.out.c;
    const double unbias = count > 1 ? double(count) / double(count - 1) : 1.0;
    for (int k = 0; k < c; ++k) {
      running[k] = (1 - m) * running[k] + m * mean[k];
      running[c + k] = float((1 - m) * running[c + k] + m * var[k] * unbias);
    }
  }

  // Gradient target for input `in` of a node: written first, accumulated afterwards.
  struct Target {
    float* ptr;
    bool accumulate;
  };
  Target target(int in, std::vector<bool>& written) {
    if (in == 0) return {nullptr, false};
    // flatten shares its input's storage but has its own gradient buffer of the same size;
    // the gradient flows through flatten's own backward step.
    Target t{grad_[in], bool(written[in])};
    written[in] = true;
    return t;
  }

  void backward_node(int i, std::vector<bool>& written) {
    const Node& node = g_.nodes[i];
    const Layer& l = node.layer;
    const int64_t out_count = int64_t(n_) * node.out.size();
    float* g = grad_[i];
    IOTNAS_ASSERT(written[i], "gradient of a node read before it was written");
    const int in0 = node.inputs[0];
    switch (l.op) {
      case Op::conv2d: {
        const auto s = conv_shape(node);
        float* dw = dparam(node);
        pk::conv2d_bwd_weights(s, out_[in0], g, dw,
                               node.bias_count ? dw + node.weight_count : nullptr);
        Target t = target(in0, written);
        if (t.ptr) pk::conv2d_bwd_data(s, g, param(node), t.ptr, t.accumulate);
        break;
      }
      case Op::dense: {
        const kernels::DenseShape s{n_, int(node.in.size()), node.out.c};
        float* dw = dparam(node);
        pk::dense_bwd_weights(s, out_[in0], g, dw,
                              node.bias_count ? dw + node.weight_count : nullptr);
        Target t = target(in0, written);
        if (t.ptr) pk::dense_bwd_data(s, g, param(node), t.ptr, t.accumulate);
        break;
      }
      case Op::relu: {
        Target t = target(in0, written);
        if (t.ptr) pk::relu_bwd(out_count, out_[i], g, t.ptr, t.accumulate);
        break;
      }
      case Op::max_pool: {
        Target t = target(in0, written);
        if (t.ptr) pk::max_pool_bwd(pool_shape(node), g, argmax_[i].data(), t.ptr, t.accumulate);
        break;
      }
      case Op::avg_pool: {
        Target t = target(in0, written);
        if (t.ptr) pk::avg_pool_bwd(pool_shape(node), g, t.ptr, t.accumulate);
        break;
      }
      case Op::global_avg_pool: {
        Target t = target(in0, written);
        if (t.ptr) {
          pk::global_avg_pool_bwd(n_, node.in.c, node.in.h * node.in.w, g, t.ptr, t.accumulate);
        }
        break;
      }
      case Op::batch_norm: {
        float* dgamma = dparam(node);
        Target t = target(in0, written);
        std::vector<float> scratch;
        float* dsrc = t.ptr;
        if (!dsrc) {  // input image: gradients of gamma/beta only
          scratch.resize(size_t(out_count));
          dsrc = scratch.data();
        }
        pk::batch_norm_bwd(n_, node.out.c, node.out.h * node.out.w, out_[in0], g, param(node),
                           bn_mean_[i].data(), bn_var_[i].data(), l.eps, dsrc, dgamma,
                           dgamma + node.out.c, t.accumulate);
        break;
      }
      case Op::add: {
        for (int in : node.inputs) {
          Target t = target(in, written);
          if (!t.ptr) continue;
          if (t.accumulate) {
            const float* srcs[2] = {t.ptr, g};
            pk::add_fwd(out_count, 2, srcs, t.ptr);
          } else {
            std::memcpy(t.ptr, g, sizeof(float) * size_t(out_count));
          }
        }
        break;
      }
      case Op::concat: {
        std::vector<float*> dsrcs;
        std::vector<int> ch;
        std::vector<std::vector<float>> scratch;
        bool any_acc = false, all_acc = true;
        std::vector<Target> ts;
        for (int in : node.inputs) {
          Target t = target(in, written);
          ts.push_back(t);
          ch.push_back(g_.nodes[in].out.c);
          any_acc |= t.accumulate;
          all_acc &= t.accumulate;
        }
        // The kernel takes one accumulate flag: split into scratch where the flags differ.
        const bool acc = any_acc && all_acc;
        for (size_t k = 0; k < ts.size(); ++k) {
          const size_t sz = size_t(n_) * ch[k] * node.out.h * node.out.w;
          if (!ts[k].ptr || ts[k].accumulate != acc) {
            scratch.emplace_back(sz);
            dsrcs.push_back(scratch.back().data());
          } else {
            dsrcs.push_back(ts[k].ptr);
          }
        }
        pk::concat_bwd(n_, node.out.h * node.out.w, int(ts.size()), g, ch.data(), dsrcs.data(),
                       acc);
        for (size_t k = 0; k < ts.size(); ++k) {
          if (!ts[k].ptr || ts[k].accumulate == acc) continue;
          const size_t sz = size_t(n_) * ch[k] * node.out.h * node.out.w;
          if (ts[k].accumulate) {
            const float* srcs[2] = {ts[k].ptr, dsrcs[k]};
            pk::add_fwd(int64_t(sz), 2, srcs, ts[k].ptr);
          } else {
            std::memcpy(ts[k].ptr, dsrcs[k], sizeof(float) * sz);
          }
        }
        break;
      }
      case Op::flatten: {
        Target t = target(in0, written);
        if (!t.ptr) break;
        if (t.accumulate) {
          const float* srcs[2] = {t.ptr, g};
          pk::add_fwd(out_count, 2, srcs, t.ptr);
        } else {
          std::memcpy(t.ptr, g, sizeof(float) * size_t(out_count));
        }
        break;
      }
      case Op::input:
        break;
    }
  }

  const Graph& g_;
  ProgramOptions opt_;
  ProgramBuffers buf_;
  int n_ = 0;
  std::vector<int> fused_relu_;  // conv/dense node -> its relu node, or -1
  std::vector<std::vector<float>> storage_, grad_storage_;
  std::vector<float*> out_, grad_;
  std::vector<std::vector<int32_t>> argmax_;
  std::vector<std::vector<float>> bn_mean_, bn_var_;
  ActivationHook hook_;
  std::vector<bool> skip_;
};

}  // namespace

std::unique_ptr<Program> compile_portable(const Graph& graph, const ProgramOptions& options,
                                          const ProgramBuffers& buffers) {
  return std::make_unique<PortableProgram>(graph, options, buffers);
}

}  // namespace iotnas
