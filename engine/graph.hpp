// A checked model: the spec's layers in topological order with inferred shapes, parameter
// offsets and analytic properties. Built once per model; search calls only this and spec.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/spec.hpp"

namespace iotnas {

// Limits past which a model is refused (docs/model-spec.md). Every count below is computed in 64
// bits with overflow checks, so a model past a limit gets an error naming the layer, never a
// wrapped number, on 64- and 32-bit machines alike.
inline constexpr int64_t kMaxTensorElements = (int64_t(1) << 31) - 1;  // one image's map
inline constexpr int64_t kMaxModelParams = (int64_t(1) << 31) - 1;     // trainable, whole model
inline constexpr int64_t kMaxModelFlops = int64_t(1) << 62;            // per image, whole model

struct Node {
  Layer layer;               // layer.op == Op::input for node 0
  std::vector<int> inputs;   // node indices, all smaller than this node's index
  Shape in;                  // shape of the first input (all inputs for add)
  Shape out;                 // output shape of one image
  int64_t params = 0;        // trainable parameters of this node
  int64_t flops = 0;         // per image; 2 per multiply-add of conv2d and dense
  int64_t param_offset = 0;  // into the model's flat parameter vector
  int64_t state_offset = 0;  // into the model's flat state vector (batch-norm running stats)
  int64_t weight_count = 0;  // conv2d/dense: weights; batch_norm: gamma (bias/beta follow)
  int64_t bias_count = 0;    // conv2d/dense: bias; batch_norm: beta
  std::vector<int> consumers;
};

struct Graph {
  Shape input;
  std::vector<Node> nodes;  // nodes[0] is the input; nodes.back() is the output
  int64_t num_params = 0;   // trainable
  int64_t num_state = 0;    // batch-norm running mean and variance
  std::string name;
  const Node& output() const { return nodes.back(); }
};

// Topological order, shape inference and parameter layout. Throws iotnas::Error naming the layer
// (unknown input, cycle, shape mismatch, unused layer, empty output).
Graph build_graph(const ModelSpec& spec);

struct Analytics {
  int64_t params = 0;                  // trainable parameters
  int64_t inference_params = 0;        // parameters with batch norm folded into its conv/dense
  int64_t flops = 0;                   // forward, per image, 2 per multiply-add (conv2d, dense)
  int64_t peak_activation_bytes = 0;   // float32, batch 1: most bytes alive at once
  int64_t total_activation_bytes = 0;  // float32, batch 1: every activation map, summed
  int num_layers = 0;                  // layers with parameters (conv2d, dense)
};

Analytics analyze(const Graph& graph);
inline Analytics analyze(const ModelSpec& spec) {
  return analyze(build_graph(spec));
}

// Batch-norm nodes that fold into the conv2d/dense producing their input (inference): the
// producer has no other consumer. Indexed by node; false elsewhere.
std::vector<bool> foldable_batch_norms(const Graph& graph);

}  // namespace iotnas
