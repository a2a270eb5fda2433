#include "engine/reference_models.hpp"

#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

// conv(3x3, pad 1) + relu, optionally followed by 2x2 max pooling.
void conv_relu(ModelSpec& m, const std::string& id, int channels, bool pool) {
  m.layers.push_back(conv("conv" + id, channels, 3));
  m.layers.push_back(relu("relu" + id));
  if (pool) m.layers.push_back(max_pool("pool" + id, 2));
}

ModelSpec plain_1k(Shape in, int k) {  // 1,086 parameters for 28x28x1, 10 classes
  ModelSpec m{"plain-1k", in, {}};
  conv_relu(m, "1", 8, true);
  conv_relu(m, "2", 12, true);
  m.layers.push_back(global_avg_pool("gap"));
  m.layers.push_back(dense("fc", k));
  return m;
}

ModelSpec plain_14k(Shape in, int k) {  // 14,378 parameters
  ModelSpec m{"plain-14k", in, {}};
  conv_relu(m, "1", 16, true);
  conv_relu(m, "2", 32, true);
  conv_relu(m, "3", 32, false);
  m.layers.push_back(global_avg_pool("gap"));
  m.layers.push_back(dense("fc", k));
  return m;
}

ModelSpec plain_fc(const char* name, Shape in, int k, int hidden) {
  ModelSpec m{name, in, {}};
  conv_relu(m, "1", 32, true);
  conv_relu(m, "2", 64, true);
  m.layers.push_back(flatten("flatten"));
  m.layers.push_back(dense("fc1", hidden));
  m.layers.push_back(relu("relu_fc1"));
  m.layers.push_back(dense("fc2", k));
  return m;
}

// CIFAR-style ResNet (He et al. 2016, option B shortcuts): 3 stages of n basic blocks at widths
// 16, 32, 64; ResNet-20 has n = 3.
ModelSpec resnet_cifar(const char* name, Shape in, int k, int n) {
  ModelSpec m{name, in, {}};
  m.layers.push_back(conv("stem", 16, 3, 1, 1, 1, false));
  m.layers.push_back(batch_norm("stem_bn"));
  m.layers.push_back(relu("stem_relu"));
  std::string prev = "stem_relu";
  int width = 16;
  for (int stage = 0; stage < 3; ++stage) {
    for (int b = 0; b < n; ++b) {
      const std::string id = "s" + std::to_string(stage + 1) + "b" + std::to_string(b + 1);
      const int stride = (stage > 0 && b == 0) ? 2 : 1;
      const int out = 16 << stage;
      m.layers.push_back(from(conv(id + "_conv1", out, 3, stride, 1, 1, false), {prev}));
      m.layers.push_back(batch_norm(id + "_bn1"));
      m.layers.push_back(relu(id + "_relu1"));
      m.layers.push_back(conv(id + "_conv2", out, 3, 1, 1, 1, false));
      m.layers.push_back(batch_norm(id + "_bn2"));
      std::string shortcut = prev;
      if (stride != 1 || out != width) {
        m.layers.push_back(from(conv(id + "_proj", out, 1, stride, 0, 1, false), {prev}));
        m.layers.push_back(batch_norm(id + "_proj_bn"));
        shortcut = id + "_proj_bn";
      }
      m.layers.push_back(add(id + "_add", {id + "_bn2", shortcut}));
      m.layers.push_back(relu(id + "_out"));
      prev = id + "_out";
      width = out;
    }
  }
  m.layers.push_back(global_avg_pool("gap"));
  m.layers.push_back(dense("fc", k));
  return m;
}

struct Entry {
  const char* name;
  const char* description;
  ModelSpec (*make)(Shape, int);
};

const Entry kEntries[] = {
    {"plain-1k", "conv 8, pool, conv 12, pool, GAP, fc (1,086 params on 28x28x1)", plain_1k},
    {"plain-14k", "conv 16, pool, conv 32, pool, conv 32, GAP, fc (14,378 params)", plain_14k},
    {"plain-120k", "conv 32, pool, conv 64, pool, fc 32, fc (119,530 params)",
     [](Shape in, int k) { return plain_fc("plain-120k", in, k, 32); }},
    {"resnet20", "CIFAR-style ResNet-20 with batch norm (about 0.27M params on 32x32x3)",
     [](Shape in, int k) { return resnet_cifar("resnet20", in, k, 3); }},
    {"plain-960k", "conv 32, pool, conv 64, pool, fc 300, fc (962,926 params)",
     [](Shape in, int k) { return plain_fc("plain-960k", in, k, 300); }},
};

}  // namespace

std::vector<ReferenceModel> reference_models() {
  std::vector<ReferenceModel> v;
  for (const auto& e : kEntries) v.push_back({e.name, e.description});
  return v;
}

ModelSpec reference_model(const std::string& name, Shape input, int classes) {
  for (const auto& e : kEntries) {
    if (name == e.name) return e.make(input, classes);
  }
  std::string known;
  for (const auto& e : kEntries)
    known += (known.empty() ? "" : ", ") + std::string("ref:") + e.name;
  fail("unknown reference model 'ref:", name, "' (known: ", known, "; `iotnas spec --list`)");
}

ModelSpec resolve_model(const std::string& ref_or_path, Shape input, int classes) {
  if (ref_or_path.rfind("ref:", 0) == 0) {
    return reference_model(ref_or_path.substr(4), input.c > 0 ? input : Shape{1, 28, 28}, classes);
  }
  return load_spec_file(ref_or_path);
}

}  // namespace iotnas
