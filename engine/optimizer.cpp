#include "engine/optimizer.hpp"

#include <cmath>

#include "kernels/base/error.hpp"

namespace iotnas {

void validate(const OptimizerConfig& c) {
  if (c.kind != "sgd" && c.kind != "adam")
    fail("unknown optimizer '", c.kind, "' (use sgd or adam)");
  if (c.schedule != "cosine" && c.schedule != "constant") {
    fail("unknown learning-rate schedule '", c.schedule, "' (use cosine or constant)");
  }
  if (!(c.lr > 0 && c.lr <= kMaxLr))
    fail("learning rate ", c.lr, " is out of range (0, ", kMaxLr, "]");
  if (!(c.momentum >= 0 && c.momentum < 1))
    fail("momentum ", c.momentum, " is out of range [0, 1)");
  if (!(c.weight_decay >= 0 && c.weight_decay < 1)) {
    fail("weight decay ", c.weight_decay, " is out of range [0, 1)");
  }
  if (!(c.warmup_epochs >= 0 && c.warmup_epochs <= kMaxWarmupEpochs)) {
    fail("warm-up ", c.warmup_epochs, " epochs is out of range [0, ", kMaxWarmupEpochs, "]");
  }
}

double learning_rate(const OptimizerConfig& c, int64_t step, int64_t total_steps,
                     int64_t steps_per_epoch) {
  const double warm = c.warmup_epochs * double(steps_per_epoch);
  if (step < warm) {
    const double f = (double(step) + 1.0) / warm;
    return c.lr * (0.01 + 0.99 * f);
  }
  if (c.schedule == "constant") return c.lr;
  const double span = std::max(1.0, double(total_steps) - warm);
  const double p = std::min(1.0, (double(step) - warm) / span);
  return 0.5 * c.lr * (1.0 + std::cos(M_PI * p));
}

Optimizer::Optimizer(const Graph& g, const OptimizerConfig& c) : c_(c) {
  validate(c);
  decay_.assign(g.num_params, 0);
  for (const Node& n : g.nodes) {
    if (n.layer.op == Op::conv2d || n.layer.op == Op::dense) {
      std::fill(decay_.begin() + n.param_offset, decay_.begin() + n.param_offset + n.weight_count,
                1);
    }
  }
  m_.assign(g.num_params, 0.f);
  if (c.kind == "adam") v_.assign(g.num_params, 0.f);
}

void Optimizer::step(float* p, const float* grads, double lr_d) {
  const int64_t n = int64_t(m_.size());
  const float lr = float(lr_d), wd = float(c_.weight_decay);
  ++t_;
  // The parallel loops below only do arithmetic on buffers sized in the constructor: nothing in
  // them can throw (no exception may leave an OpenMP region).
  if (c_.kind == "sgd") {
    const float mu = float(c_.momentum);
    const bool nesterov = c_.nesterov;
    float* m = m_.data();
    const uint8_t* d = decay_.data();
#pragma omp parallel for simd if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const float g = grads[i] + (d[i] ? wd * p[i] : 0.f);
      m[i] = mu * m[i] + g;
      p[i] -= lr * (nesterov ? g + mu * m[i] : m[i]);
    }
    return;
  }
  const float b1 = float(c_.beta1), b2 = float(c_.beta2), eps = float(c_.eps);
  const float c1 = float(1.0 - std::pow(c_.beta1, double(t_)));
  const float c2 = float(1.0 - std::pow(c_.beta2, double(t_)));
  float* m = m_.data();
  float* v = v_.data();
  const uint8_t* d = decay_.data();
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] + (d[i] ? wd * p[i] : 0.f);
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    p[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
  }
}

}  // namespace iotnas
