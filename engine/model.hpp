// A model with its parameters: the spec, its checked graph, trainable parameters and state
// (batch-norm running statistics), all flat float vectors in the graph's layout.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/graph.hpp"

namespace iotnas {

struct Model {
  ModelSpec spec;
  Graph graph;
  std::vector<float> params;  // [graph.num_params]
  std::vector<float> state;   // [graph.num_state]: per batch_norm node, running mean then var
};

// Builds the graph and initialises parameters as PyTorch does by default (weights and biases of
// conv2d/dense uniform in +-1/sqrt(fan_in); batch norm gamma 1, beta 0, running mean 0, var 1),
// from `seed`.
Model make_model(const ModelSpec& spec, uint64_t seed);

// Inference form: batch norms that follow a conv2d/dense (foldable_batch_norms) are folded into
// the producer's weights and bias (the producer gains a bias if it had none) and removed from the
// spec; the rest keep their running statistics. The result computes the same function in
// inference mode, up to float rounding.
Model fold_batch_norm(const Model& model);

}  // namespace iotnas
