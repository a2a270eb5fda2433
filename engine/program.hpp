// A program runs one model's graph on one backend for a fixed batch capacity: forward, and in
// training mode backward into parameter gradients. compile() plans the graph once (engine/
// plan.hpp: fusion, views, hook points, gradient edges, buffer slots), asks the backend's
// registry row (engine/backend.hpp) for its executable, and runs it: the loop over nodes, the
// activation hook and the copies in and out are here, the same for every backend.
//
// Why a program per graph rather than one executor calling per-op kernels: with oneDNN the fast
// layouts are blocked and chosen per primitive; an op-level NCHW interface would force a reorder
// around every op. Single-op graphs run through the same programs are how tests compare every op
// on every backend with the naive references.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "engine/graph.hpp"
#include "engine/plan.hpp"

namespace iotnas {

// Called with every activation map the moment it is produced: node 0 (the input, after it is
// loaded) and each node's output before any consumer reads it. `data` holds `count` floats in the
// backend's layout (padding lanes of blocked layouts are zero and must stay zero: any function
// with f(0) = 0 is safe). Inference only. Used to fuse reduced-precision rounding.
// With several programs in flight (one per thread), the hook is called concurrently: it must be
// safe to call from several threads at once.
using ActivationHook = std::function<void(int node, float* data, int64_t count)>;

enum class HookScope {
  all_maps,       // the input and every produced map
  computed_maps,  // skips maps of relu, max_pool, concat and flatten whose inputs were all
                  // hooked (or skipped) already: they only select or move values the hook has
                  // seen, so a hook that is idempotent and commutes with max and with x -> 0
                  // for x < 0 (rounding to a float format) would leave them unchanged
};

struct ProgramOptions {
  BackendKind backend = BackendKind::portable;
  int batch = 1;  // capacity: forward takes n <= batch images
  Mode mode = Mode::infer;
  // train: batch-norm momentum applies to running stats; infer: batch norms use running stats.
  // Inference programs expect foldable batch norms already folded (fold_batch_norm).
};

class Program {
 public:
  Program(const Graph& graph, const ProgramOptions& options, const ProgramBuffers& buffers);
  // input: [n, C, H, W] float32 NCHW; n <= capacity.
  void forward(const float* input, int n);
  // Logits [n, classes] of the last forward, row-major.
  const float* logits() const { return exe_->logits(); }
  // Training only: dlogits [n, classes] (n of the last forward) -> buffers.grads (overwritten).
  void backward(const float* dlogits);
  // Inference only: installs (or clears, with nullptr) the activation hook.
  void set_hook(ActivationHook hook, HookScope scope = HookScope::all_maps);
  int capacity() const { return options_.batch; }
  // Inference programs may keep parameters repacked between forwards: call after changing the
  // contents of buffers.params. (Training programs read them at every forward.)
  void params_changed() { exe_->params_changed(); }
  // Diagnostics: the kernel behind each step of the last forward's plan, in the order built
  // (oneDNN's implementation names, e.g. "brgconv:avx512_core"; "ref:" marks its slow reference
  // kernels). Empty for backends without such names.
  std::vector<std::string> implementations() const { return exe_->implementations(); }
  const ExecPlan& plan() const { return plan_; }

 private:
  const Graph& graph_;
  ProgramOptions options_;
  ExecPlan plan_;
  std::unique_ptr<Executable> exe_;
  ActivationHook hook_;
  HookScope scope_ = HookScope::all_maps;
  int n_ = 0;  // images in the last forward
};

// Compiles `graph` for a backend. Throws iotnas::Error when the backend cannot run here.
std::unique_ptr<Program> compile(const Graph& graph, const ProgramOptions& options,
                                 const ProgramBuffers& buffers);

}  // namespace iotnas
