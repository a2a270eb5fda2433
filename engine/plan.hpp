// The backend-neutral plan of a graph: every decision about *what* runs that does not depend on
// how a backend computes it, made once per (graph, mode) and read by every backend (engine/
// backend.hpp): which relus fuse into their producer or move behind their max-pool, which maps
// are views of others, where the activation hook sees each map, which batch norms update running
// statistics, how gradients of a map with several consumers combine, and when each buffer is free.
//
// A backend may not need every answer (oneDNN keeps its own buffers; its layouts decide whether a
// view costs a copy), but it must not contradict one: the rules below are what the tests check
// all backends against.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/graph.hpp"

namespace iotnas {

enum class Mode { train, infer };

// One consumer edge of a map: input `k` of node `consumer`.
struct Edge {
  int consumer = 0;
  int k = 0;
};

struct NodePlan {
  // conv2d/dense: the relu node computed in this node's epilogue (it is the relu's only input
  // and the relu is this node's only consumer), else -1.
  int fused_relu = -1;
  // relu: computed by its producer (fused_relu of the producer), so it has no step of its own.
  bool fused = false;
  // Training only: a relu whose only consumer is a max pool and whose producer has no other
  // consumer is applied by the pool to the pooled map instead (relu and max pooling commute, in
  // values and in gradients); the relu itself is then an identity: its map and its gradient are
  // its producer's. `relu_by_pool` marks the pool that applies it.
  bool relu_after_pool = false;
  bool relu_by_pool = false;
  // The node whose buffer holds this map: itself, or its producer for a fused relu, a relu
  // moved behind its pool, and a flatten (a view of its input in NCHW order).
  int storage = 0;
  // The activation hook sees this map under this node id (a conv2d with a fused relu reports the
  // relu's id: the map it produces is the relu's).
  int hook_id = 0;
  // The hook may be called for this node at all (not for a fused relu or a relu moved behind its
  // pool: their maps are reported by the node that computes them).
  bool hookable = true;
  // HookScope::computed_maps skips it: relu, max_pool, concat and flatten whose inputs the hook
  // has all seen (they only select or move values already rounded).
  bool skip_computed = false;
  // Training batch norm: running statistics updated from the batch (update_running_stats).
  bool updates_running_stats = false;
  // Forward order index of the last node that reads this node's storage (the output: count).
  // Only meaningful where storage == this node.
  int last_use = 0;
  // Inference buffer reuse: slot of this node's storage (-1 for views); nodes whose lifetimes do
  // not overlap share a slot. slot_size() gives each slot's floats per image.
  int slot = -1;
  // Training: every edge reading this map, in the order the backward pass visits them (consumer
  // descending, then k ascending): the first writes the map's gradient, the others add to it.
  std::vector<Edge> edges;
};

struct ExecPlan {
  Mode mode = Mode::infer;
  std::vector<NodePlan> nodes;  // per graph node
  std::vector<int64_t> slots;   // inference: floats per image of each buffer slot
  // Whether dL/d(input k of `consumer`), a gradient of map `node`, is added to what the backward
  // pass has written there already (true) or written (false: the first edge it visits).
  bool accumulates(int node, int consumer, int k) const;
  // Index of edge (consumer, k) among node's edges (backends with one buffer per edge).
  int edge_index(int node, int consumer, int k) const;
};

// Plans `graph` for `mode`. Pure function of the graph: the same for every backend.
ExecPlan make_plan(const Graph& graph, Mode mode);

// Running statistics after a training batch (PyTorch's convention: the variance is unbiased):
// running = (1 - momentum) running + momentum batch. running: [2c] mean then variance; mean, var:
// [c] of the batch over `count` values per channel.
void update_running_stats(float momentum, int c, int64_t count, const float* mean, const float* var,
                          float* running);

}  // namespace iotnas
