// NetBuilder: what the search spaces build models with. It infers shapes and accumulates the
// analytic properties (parameters, FLOPs, activation bytes) layer by layer, with no strings and
// no allocation after warm-up, and records the equivalent ModelSpec only when asked. The two are
// kept equal by a test (analytics() == analyze(build_graph(spec)) on many random models), so the
// genetic algorithm can evaluate ~10^6 models per second per core without building graphs.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "engine/graph.hpp"
#include "engine/spec.hpp"

namespace iotnas::search {

class NetBuilder {
 public:
  // Starts a model. record_spec: also build the ModelSpec (layer names are generated: conv1,
  // bn1, relu1, ...); off, only the analytics are kept.
  void reset(Shape input, int classes, bool record_spec, std::string name = {});

  // Tensor handles are node indices; 0 is the model input. Shapes follow engine/graph.cpp.
  static constexpr int kInput = 0;
  const Shape& shape(int t) const { return nodes_[t].out; }
  int channels(int t) const { return nodes_[t].out.c; }
  int classes() const { return classes_; }

  // conv2d with "same" padding (kernel/2 per dimension); groups must divide both channel counts.
  int conv(int src, int out_channels, int kernel_h, int kernel_w, int stride = 1, int groups = 1,
           bool bias = true);
  int batch_norm(int src);
  int relu(int src);
  int max_pool(int src, int kernel, int stride, int pad = 0);
  int avg_pool(int src, int kernel, int stride, int pad = 0);
  int global_avg_pool(int src);
  int dense(int src, int units, bool bias = true);
  int add(int a, int b);
  int concat(std::span<const int> srcs);
  int concat(std::initializer_list<int> srcs) {
    return concat(std::span(srcs.begin(), srcs.size()));
  }

  // conv (no bias) + batch norm + ReLU, the unit most spaces are made of.
  int conv_bn_relu(int src, int out_channels, int kernel, int stride = 1, int groups = 1);

  // The model so far; its last node is the output. Equal to analyze(build_graph(spec())).
  Analytics analytics() const;
  // The recorded spec (record_spec must have been set). Leaves the builder empty.
  ModelSpec take_spec();
  int num_nodes() const { return int(nodes_.size()); }

 private:
  struct NodeInfo {
    Op op = Op::input;
    Shape out;
    int64_t params = 0;
    int64_t bias_count = 0;
    int64_t flops = 0;
    int src = -1;       // first input
    int consumers = 0;  // edges out of this node
    int last_use = 0;   // largest index of a consumer (or its own index)
  };
  int push(Op op, int src, Shape out, int64_t params, int64_t bias_count, int64_t flops);
  void use(int src, int by);
  void record(Layer layer, std::span<const int> srcs);
  std::string layer_name(Op op);

  std::vector<NodeInfo> nodes_;
  int classes_ = 10;
  bool record_ = false;
  ModelSpec spec_;
  int counters_[kNumOps] = {};
  mutable std::vector<int64_t> freed_;  // analytics(): bytes released after each node
};

}  // namespace iotnas::search
