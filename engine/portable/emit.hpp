// The portable backend (kernels/portable: NCHW, OpenMP, no oneDNN; what the Raspberry Pi build
// runs). Its executable holds one buffer per stored map (training) or per buffer slot
// (inference, engine/plan.hpp), one gradient buffer per node, and per node the steps its op's
// emitter made; the steps read the pass's image count n_ when they run.
//
// One emitter per op family, one file each (weighted.cpp: conv2d and dense; pool.cpp,
// batch_norm.cpp, eltwise.cpp, concat.cpp); program.cpp holds the executable and the registry row.
#pragma once

#include <functional>
#include <vector>

#include "engine/backend.hpp"
#include "kernels/portable/ops.hpp"
#include "kernels/shapes.hpp"

namespace iotnas::portable {

namespace pk = kernels::portable;
using Step = std::function<void()>;

class Exec final : public Executable {
 public:
  explicit Exec(const BuildArgs& a);

  float* input(int n) override {
    n_ = n;
    return out_[0];
  }
  bool forward(int node) override;
  MapView map(int node) override;
  const float* logits() override { return out_.back(); }
  float* dlogits() override { return grad_.back(); }
  void backward(int node) override;

  // ---- for the emitters
  // Where the gradient of input k of node i goes, and whether it is added to what is there.
  struct Target {
    float* ptr = nullptr;  // null: input k is the image (no gradient)
    bool accumulate = false;
  };
  Target target(int i, int k) const;
  const float* param(const Node& n) const { return buf_.params + n.param_offset; }
  float* dparam(const Node& n) const { return buf_.grads + n.param_offset; }
  const float* bias(const Node& n) const {
    return n.bias_count ? param(n) + n.weight_count : nullptr;
  }
  float* dbias(const Node& n) const { return n.bias_count ? dparam(n) + n.weight_count : nullptr; }
  int64_t count(const Node& n) const { return int64_t(n_) * n.out.size(); }  // floats of its map
  kernels::ConvShape conv_shape(const Node& n) const;
  kernels::PoolShape pool_shape(const Node& n) const;

  const Graph& g_;
  const ExecPlan& plan_;
  ProgramBuffers buf_;
  int cap_;
  bool train_;
  int n_ = 0;                                 // images in the current pass
  std::vector<float*> out_, grad_;            // per node: its map, its gradient (training)
  std::vector<std::vector<Step>> fwd_, bwd_;  // state an op's steps share (a max pool's argmax,
                                              // a batch norm's batch statistics) they own

 private:
  std::vector<std::vector<float>> storage_, grad_storage_;
};

// Emitters (engine/emitters.hpp): append node i's forward (and, training, backward) steps.
void emit_conv2d(Exec&, int), emit_dense(Exec&, int), emit_batch_norm(Exec&, int);
void emit_max_pool(Exec&, int), emit_avg_pool(Exec&, int), emit_global_avg_pool(Exec&, int);
void emit_relu(Exec&, int), emit_add(Exec&, int), emit_concat(Exec&, int), emit_flatten(Exec&, int);

// dst = g (write) or dst += g (accumulate), count floats.
void write_or_add(float* dst, const float* g, int64_t count, bool accumulate);

}  // namespace iotnas::portable
