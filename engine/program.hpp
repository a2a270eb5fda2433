// A program runs one model's graph on one backend for a fixed batch capacity: forward, and in
// training mode backward into parameter gradients. Each backend compiles the graph once into a
// list of steps over buffers planned up front (oneDNN: primitives created once, blocked layouts
// negotiated across the whole graph, reorders only at the edges; portable: NCHW kernels).
//
// Why a program per backend rather than one executor calling per-op kernels: with oneDNN the
// fast layouts are blocked and chosen per primitive; an op-level NCHW interface would force a
// reorder around every op. Single-op graphs run through the same programs are how tests compare
// every op on every backend with the naive references.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/graph.hpp"
#include "kernels/backends.hpp"

namespace iotnas {

enum class Mode { train, infer };

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

// The buffers a program reads and writes; owned by the caller, sized by the graph.
struct ProgramBuffers {
  const float* params = nullptr;  // [num_params]; read at every forward (may change in between)
  float* grads = nullptr;         // [num_params]; train: overwritten by backward
  float* state = nullptr;         // [num_state]; train: running stats updated by forward
};

struct ProgramOptions {
  kernels::BackendKind backend = kernels::BackendKind::portable;
  int batch = 1;  // capacity: forward takes n <= batch images
  Mode mode = Mode::infer;
  // train: batch-norm momentum applies to running stats; infer: batch norms use running stats.
  // Inference programs expect foldable batch norms already folded (fold_batch_norm).
};

class Program {
 public:
  virtual ~Program() = default;
  // input: [n, C, H, W] float32 NCHW; n <= capacity.
  virtual void forward(const float* input, int n) = 0;
  // Logits [n, classes] of the last forward, row-major.
  virtual const float* logits() const = 0;
  // Training only: dlogits [n, classes] (n of the last forward) -> buffers.grads (overwritten).
  virtual void backward(const float* dlogits) = 0;
  // Inference only: installs (or clears, with nullptr) the activation hook.
  virtual void set_hook(ActivationHook hook, HookScope scope = HookScope::all_maps) = 0;
  virtual int capacity() const = 0;
  // Inference programs may keep parameters repacked between forwards: call after changing the
  // contents of buffers.params. (Training programs read them at every forward.)
  virtual void params_changed() {}
  // Diagnostics: the kernel behind each step of the last forward's plan, in the order built
  // (oneDNN's implementation names, e.g. "brgconv:avx512_core"; "ref:" marks its slow reference
  // kernels). Empty for backends without such names.
  virtual std::vector<std::string> implementations() const { return {}; }
};

// Compiles `graph` for a backend. Throws iotnas::Error when the backend cannot run here.
std::unique_ptr<Program> compile(const Graph& graph, const ProgramOptions& options,
                                 const ProgramBuffers& buffers);

// For HookScope::computed_maps: per node, whether its map is skipped. (A conv2d/dense computed
// together with its relu is hooked once, at the relu, on relu's map; that relu is then skipped.)
std::vector<bool> hook_skips(const Graph& graph);

// Per-backend factories (compile dispatches on options.backend).
std::unique_ptr<Program> compile_portable(const Graph& graph, const ProgramOptions& options,
                                          const ProgramBuffers& buffers);
std::unique_ptr<Program> compile_dnnl(const Graph& graph, const ProgramOptions& options,
                                      const ProgramBuffers& buffers);

}  // namespace iotnas
