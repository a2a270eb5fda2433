// Optimizers and learning-rate schedules over the model's flat parameter vector.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph.hpp"

namespace iotnas {

struct OptimizerConfig {
  std::string kind = "sgd";   // "sgd" (momentum, optional Nesterov) or "adam"
  double lr = 0.05;           // peak learning rate
  double momentum = 0.9;      // sgd
  bool nesterov = false;      // sgd
  double weight_decay = 0.0;  // L2 on conv2d/dense weights only (not biases, not batch norm)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
  std::string schedule = "cosine";                // "cosine" (to 0 at the end) or "constant"
  double warmup_epochs = 0.0;                     // linear warm-up from lr/100 to lr
};

// The ranges validate() accepts (a run config's "training" and `iotnas train`'s flags share them):
// lr in (0, kMaxLr], weight_decay in [0, 1), warmup_epochs in [0, kMaxWarmupEpochs].
inline constexpr double kMaxLr = 10;
inline constexpr double kMaxWarmupEpochs = 1000;
// Checks names and ranges; throws iotnas::Error naming the bad value and the accepted ones.
void validate(const OptimizerConfig& c);

// Learning rate at `step` (0-based) of `total_steps`, with `steps_per_epoch` for the warm-up.
double learning_rate(const OptimizerConfig& c, int64_t step, int64_t total_steps,
                     int64_t steps_per_epoch);

class Optimizer {
 public:
  Optimizer(const Graph& graph, const OptimizerConfig& config);
  // params -= update(grads) at learning rate lr; deterministic, elementwise.
  void step(float* params, const float* grads, double lr);

 private:
  OptimizerConfig c_;
  std::vector<uint8_t> decay_;  // 1 where weight decay applies
  std::vector<float> m_, v_;    // momentum buffer / Adam moments
  int64_t t_ = 0;
};

}  // namespace iotnas
