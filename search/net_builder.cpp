#include "search/net_builder.hpp"

#include <algorithm>

#include "kernels/base/error.hpp"

namespace iotnas::search {

namespace {

int out_dim(int in, int kernel, int stride, int pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}

const char* short_name(Op op) {
  switch (op) {
    case Op::conv2d:
      return "conv";
    case Op::batch_norm:
      return "bn";
    case Op::relu:
      return "relu";
    case Op::max_pool:
      return "maxpool";
    case Op::avg_pool:
      return "avgpool";
    case Op::global_avg_pool:
      return "gap";
    case Op::add:
      return "add";
    case Op::concat:
      return "cat";
    case Op::dense:
      return "fc";
    default:
      return op_name(op);
  }
}

}  // namespace

void NetBuilder::reset(Shape input, int classes, bool record_spec, std::string name) {
  IOTNAS_ASSERT(input.c > 0 && input.h > 0 && input.w > 0, "empty input shape");
  nodes_.clear();
  NodeInfo in;
  in.out = input;
  nodes_.push_back(in);
  classes_ = classes;
  record_ = record_spec;
  std::fill(std::begin(counters_), std::end(counters_), 0);
  if (record_) spec_ = ModelSpec{std::move(name), input, {}};
}

int NetBuilder::push(Op op, int src, Shape out, int64_t params, int64_t bias_count, int64_t flops) {
  IOTNAS_ASSERT(out.c >= 1 && out.h >= 1 && out.w >= 1, "a search space built an empty tensor");
  NodeInfo n;
  n.op = op;
  n.out = out;
  n.params = params;
  n.bias_count = bias_count;
  n.flops = flops;
  n.src = src;
  n.last_use = int(nodes_.size());
  nodes_.push_back(n);
  return int(nodes_.size()) - 1;
}

void NetBuilder::use(int src, int by) {
  IOTNAS_ASSERT(src >= 0 && src < by, "tensor handle out of range");
  nodes_[src].consumers++;
  nodes_[src].last_use = std::max(nodes_[src].last_use, by);
}

std::string NetBuilder::layer_name(Op op) {
  const int k = ++counters_[static_cast<int>(op)];
  if (op == Op::global_avg_pool || op == Op::dense) {
    return k == 1 ? short_name(op) : short_name(op) + std::to_string(k);
  }
  return short_name(op) + std::to_string(k);
}

void NetBuilder::record(Layer layer, std::span<const int> srcs) {
  const int self = int(nodes_.size()) - 1;
  if (!(srcs.size() == 1 && srcs[0] == self - 1)) {
    for (int s : srcs) {
      layer.inputs.push_back(s == kInput ? std::string("input") : spec_.layers[s - 1].name);
    }
  }
  spec_.layers.push_back(std::move(layer));
}

int NetBuilder::conv(int src, int out_channels, int kernel_h, int kernel_w, int stride, int groups,
                     bool bias) {
  const Shape s = shape(src);
  IOTNAS_ASSERT(out_channels >= 1 && groups >= 1 && s.c % groups == 0 && out_channels % groups == 0,
                "bad conv channels/groups");
  IOTNAS_ASSERT(s.h + 2 * (kernel_h / 2) >= kernel_h && s.w + 2 * (kernel_w / 2) >= kernel_w,
                "conv kernel larger than its padded input");
  const Shape out{out_channels, out_dim(s.h, kernel_h, stride, kernel_h / 2),
                  out_dim(s.w, kernel_w, stride, kernel_w / 2)};
  const int64_t weights = int64_t(out_channels) * (s.c / groups) * kernel_h * kernel_w;
  const int64_t biases = bias ? out_channels : 0;
  const int64_t flops = 2 * out.size() * (s.c / groups) * kernel_h * kernel_w;
  const int t = push(Op::conv2d, src, out, weights + biases, biases, flops);
  use(src, t);
  if (record_) {
    record(iotnas::conv_hw(layer_name(Op::conv2d), out_channels, kernel_h, kernel_w, stride, groups,
                           bias),
           {&src, 1});
  }
  return t;
}

int NetBuilder::batch_norm(int src) {
  const Shape s = shape(src);
  const int t = push(Op::batch_norm, src, s, 2 * int64_t(s.c), s.c, 0);
  use(src, t);
  if (record_) record(iotnas::batch_norm(layer_name(Op::batch_norm)), {&src, 1});
  return t;
}

int NetBuilder::relu(int src) {
  const int t = push(Op::relu, src, shape(src), 0, 0, 0);
  use(src, t);
  if (record_) record(iotnas::relu(layer_name(Op::relu)), {&src, 1});
  return t;
}

int NetBuilder::max_pool(int src, int kernel, int stride, int pad) {
  const Shape s = shape(src);
  IOTNAS_ASSERT(s.h + 2 * pad >= kernel && s.w + 2 * pad >= kernel && pad < kernel,
                "pool window larger than its padded input");
  const Shape out{s.c, out_dim(s.h, kernel, stride, pad), out_dim(s.w, kernel, stride, pad)};
  const int t = push(Op::max_pool, src, out, 0, 0, 0);
  use(src, t);
  if (record_) record(iotnas::max_pool(layer_name(Op::max_pool), kernel, stride, pad), {&src, 1});
  return t;
}

int NetBuilder::avg_pool(int src, int kernel, int stride, int pad) {
  const Shape s = shape(src);
  IOTNAS_ASSERT(s.h + 2 * pad >= kernel && s.w + 2 * pad >= kernel && pad < kernel,
                "pool window larger than its padded input");
  const Shape out{s.c, out_dim(s.h, kernel, stride, pad), out_dim(s.w, kernel, stride, pad)};
  const int t = push(Op::avg_pool, src, out, 0, 0, 0);
  use(src, t);
  if (record_) record(iotnas::avg_pool(layer_name(Op::avg_pool), kernel, stride, pad), {&src, 1});
  return t;
}

int NetBuilder::global_avg_pool(int src) {
  const int t = push(Op::global_avg_pool, src, {shape(src).c, 1, 1}, 0, 0, 0);
  use(src, t);
  if (record_) record(iotnas::global_avg_pool(layer_name(Op::global_avg_pool)), {&src, 1});
  return t;
}

int NetBuilder::dense(int src, int units, bool bias) {
  const int64_t in = shape(src).size();
  const int64_t weights = int64_t(units) * in;
  const int64_t biases = bias ? units : 0;
  const int t = push(Op::dense, src, {units, 1, 1}, weights + biases, biases, 2 * weights);
  use(src, t);
  if (record_) record(iotnas::dense(layer_name(Op::dense), units, bias), {&src, 1});
  return t;
}

int NetBuilder::add(int a, int b) {
  IOTNAS_ASSERT(shape(a) == shape(b), "add of different shapes");
  const int t = push(Op::add, a, shape(a), 0, 0, 0);
  use(a, t);
  use(b, t);
  if (record_) {
    const int srcs[2] = {a, b};
    record(iotnas::add(layer_name(Op::add), {}), srcs);
  }
  return t;
}

int NetBuilder::concat(std::span<const int> srcs) {
  IOTNAS_ASSERT(srcs.size() >= 2, "concat needs two inputs");
  Shape out = shape(srcs[0]);
  out.c = 0;
  for (int s : srcs) {
    IOTNAS_ASSERT(shape(s).h == out.h && shape(s).w == out.w, "concat of different sizes");
    out.c += shape(s).c;
  }
  const int t = push(Op::concat, srcs[0], out, 0, 0, 0);
  for (int s : srcs) use(s, t);
  if (record_) {
    Layer l = iotnas::concat(layer_name(Op::concat), {});
    for (int s : srcs) {
      l.inputs.push_back(s == kInput ? std::string("input") : spec_.layers[s - 1].name);
    }
    spec_.layers.push_back(std::move(l));
  }
  return t;
}

int NetBuilder::conv_bn_relu(int src, int out_channels, int kernel, int stride, int groups) {
  return relu(batch_norm(conv(src, out_channels, kernel, kernel, stride, groups, false)));
}

Analytics NetBuilder::analytics() const {
  Analytics a;
  const int count = int(nodes_.size());
  freed_.assign(count, 0);
  for (int i = 1; i < count; ++i) {
    const NodeInfo& n = nodes_[i];
    a.params += n.params;
    a.flops += n.flops;
    if (n.op == Op::conv2d || n.op == Op::dense) a.num_layers++;
    const NodeInfo& p = nodes_[n.src];
    if (n.op == Op::batch_norm && (p.op == Op::conv2d || p.op == Op::dense) && p.consumers == 1) {
      // Folded: gamma/beta vanish into the producer, which gains a bias if it had none.
      a.inference_params += p.bias_count == 0 ? n.out.c : 0;
    } else {
      a.inference_params += n.params;
    }
  }
  // Liveness as engine/graph.cpp's analyze: a map lives from its producer to its last consumer.
  for (int i = 0; i < count; ++i) {
    const int last = i == count - 1 ? i : nodes_[i].last_use;
    freed_[last] += nodes_[i].out.size() * int64_t(sizeof(float));
  }
  int64_t live = 0;
  for (int i = 0; i < count; ++i) {
    const int64_t bytes = nodes_[i].out.size() * int64_t(sizeof(float));
    live += bytes;
    a.total_activation_bytes += bytes;
    a.peak_activation_bytes = std::max(a.peak_activation_bytes, live);
    live -= freed_[i];
  }
  return a;
}

ModelSpec NetBuilder::take_spec() {
  IOTNAS_ASSERT(record_, "take_spec() without record_spec");
  record_ = false;
  return std::move(spec_);
}

}  // namespace iotnas::search
