// The model spec: a DAG of layers, read from and written to JSON (docs/model-spec.md).
// A spec says what a model is; engine/graph.hpp infers its shapes and analytic properties.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iotnas {

enum class Op : uint8_t {
  input,            // the image; only as node 0 of a graph, never written in a spec
  conv2d,           // weights [out, in/groups, kh, kw], optional bias [out]
  batch_norm,       // gamma, beta [C] trainable; running mean, var [C] state
  relu,             //
  max_pool,         // kernel, stride, padding (padding never wins the max)
  avg_pool,         // kernel, stride, padding; divisor = kernel area (padding counts as zeros)
  global_avg_pool,  // [C, H, W] -> [C, 1, 1]
  add,              // >= 2 inputs of equal shape
  concat,           // >= 2 inputs of equal H, W; channels concatenated in input order
  flatten,          // [C, H, W] -> [C*H*W, 1, 1]; a view, no copy
  dense,            // weights [out, in_features], optional bias [out]; flattens its input
};
inline constexpr int kNumOps = 11;

const char* op_name(Op op);
std::optional<Op> op_from_name(std::string_view name);
// Comma-separated list of the op names a spec may use, for error messages.
std::string op_names_list();

// Shape of one image's tensor; the batch dimension is kept apart.
struct Shape {
  int c = 0, h = 0, w = 0;
  int64_t size() const { return int64_t(c) * h * w; }
  bool operator==(const Shape&) const = default;
};
std::string to_string(const Shape& s);  // "[C, H, W]"

struct Layer {
  std::string name;
  Op op = Op::relu;
  std::vector<std::string> inputs;  // layer names or "input"; empty = the layer before it
  int out_channels = 0;             // conv2d: output channels; dense: units
  int kernel_h = 1, kernel_w = 1;   // conv2d, max_pool, avg_pool
  int stride_h = 1, stride_w = 1;   // conv2d (default 1), pools (default = kernel)
  int pad_h = 0, pad_w = 0;         // conv2d, pools
  int groups = 1;                   // conv2d; groups == in channels == out channels is depthwise
  bool bias = true;                 // conv2d, dense
  float eps = 1e-5f;                // batch_norm
  float momentum = 0.1f;            // batch_norm: running = (1-m) running + m batch
};

struct ModelSpec {
  std::string name;           // free text, e.g. "plain-1k"
  Shape input;                // one image, [C, H, W]
  std::vector<Layer> layers;  // the last layer's output is the model's output (class logits)
};

inline constexpr const char* kSpecFormat = "iotnas-model/1";

// Parses and checks a spec (keys, types, ranges, names); `origin` names the source in errors.
// Graph-level checks (cycles, shapes) are build_graph's. Throws iotnas::Error.
ModelSpec parse_spec(std::string_view json_text, const std::string& origin);
ModelSpec load_spec_file(const std::string& path);
std::string spec_to_json(const ModelSpec& spec, int indent = 2);

// Convenience builders used by reference models, search spaces and tests.
Layer conv(std::string name, int out_channels, int kernel, int stride = 1, int pad = -1,
           int groups = 1, bool bias = true);  // pad -1: "same" for odd kernels (kernel/2)
Layer conv_hw(std::string name, int out_channels, int kernel_h, int kernel_w, int stride = 1,
              int groups = 1, bool bias = true);  // padding kernel/2 per dimension
Layer relu(std::string name);
Layer batch_norm(std::string name);
Layer max_pool(std::string name, int kernel, int stride = -1, int pad = 0);
Layer avg_pool(std::string name, int kernel, int stride = -1, int pad = 0);
Layer global_avg_pool(std::string name);
Layer flatten(std::string name);
Layer dense(std::string name, int units, bool bias = true);
Layer add(std::string name, std::vector<std::string> inputs);
Layer concat(std::string name, std::vector<std::string> inputs);
// Returns `layer` with its inputs set, e.g. from(conv(...), {"block1_out"}).
Layer from(Layer layer, std::vector<std::string> inputs);

}  // namespace iotnas
