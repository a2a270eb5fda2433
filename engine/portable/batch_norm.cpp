// Batch norm on the portable backend (kernels/portable/batch_norm.cpp). Training: batch
// statistics, the running statistics updated as the plan says (update_running_stats), backward
// to gamma, beta and the input. Inference: running statistics (batch norms that fold into their
// producer are gone by then, fold_batch_norm).
#include <memory>

#include "engine/portable/emit.hpp"

namespace iotnas::portable {

void emit_batch_norm(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  const Layer& l = node.layer;
  const float* src = x.out_[size_t(node.inputs[0])];
  float* dst = x.out_[size_t(i)];
  float* running = x.buf_.state + node.state_offset;  // [2c]: mean, then variance
  const int c = node.out.c, hw = node.out.h * node.out.w;
  if (!x.train_) {
    x.fwd_[size_t(i)].push_back([&x, &node, src, dst, running, c, hw] {
      const float* gamma = x.param(node);
      pk::batch_norm_fwd_inference(x.n_, c, hw, src, gamma, gamma + c, running, running + c,
                                   node.layer.eps, dst);
    });
    return;
  }
  // The batch's mean and variance, [2c], from forward to backward.
  auto stats = std::make_shared<std::vector<float>>(size_t(2 * c), 0.f);
  const bool update = x.plan_.nodes[size_t(i)].updates_running_stats;
  x.fwd_[size_t(i)].push_back([&x, &node, src, dst, running, c, hw, stats, update] {
    const float* gamma = x.param(node);
    float* mean = stats->data();
    pk::batch_norm_fwd_training(x.n_, c, hw, src, gamma, gamma + c, node.layer.eps, dst, mean,
                                mean + c);
    if (update)
      update_running_stats(node.layer.momentum, c, int64_t(x.n_) * hw, mean, mean + c, running);
  });
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  x.bwd_[size_t(i)].push_back([&x, &node, src, g, t, c, hw, stats, eps = l.eps] {
    std::vector<float> scratch;
    float* dsrc = t.ptr;
    if (!dsrc) {  // the input image: gradients of gamma and beta only
      scratch.resize(size_t(x.count(node)));
      dsrc = scratch.data();
    }
    float* dgamma = x.dparam(node);
    pk::batch_norm_bwd(x.n_, c, hw, src, g, x.param(node), stats->data(), stats->data() + c, eps,
                       dsrc, dgamma, dgamma + c, t.accumulate);
  });
}

}  // namespace iotnas::portable
