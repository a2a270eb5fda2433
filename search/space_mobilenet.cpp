// mobilenet: MobileNet (v1) for small images (Howard et al. 2017). A 3x3 stem conv-BN-ReLU with
// `width` channels, then up to five stages of depthwise-separable blocks (3x3 depthwise conv-BN-
// ReLU, 1x1 pointwise conv-BN-ReLU); stage s has width * 2^s channels and 1, 2, 2, `repeats`, 2
// blocks, the first block of stages 2..5 with stride 2. Then global average pool and dense.
// width 32, 5 stages, 6 repeats is the CIFAR MobileNet (3.2M parameters).
#include "search/space.hpp"

namespace iotnas::search {

namespace {

enum { kWidth, kStages, kRepeats };

void build_mobilenet(std::span<const int> v, NetBuilder& b) {
  int x = b.conv_bn_relu(NetBuilder::kInput, v[kWidth], 3);
  const int blocks[5] = {1, 2, 2, v[kRepeats], 2};
  for (int stage = 0; stage < v[kStages]; ++stage) {
    const int out = v[kWidth] << (stage + 1);
    for (int block = 0; block < blocks[stage]; ++block) {
      const int stride = (stage > 0 && block == 0) ? 2 : 1;
      const int c = b.channels(x);
      x = b.conv_bn_relu(b.conv_bn_relu(x, c, 3, stride, c), out, 1);
    }
  }
  b.dense(b.global_avg_pool(x), b.classes());
}

}  // namespace

Space make_mobilenet_space() {
  Space s;
  s.name = "mobilenet";
  s.description =
      "MobileNet v1: 3x3 stem, up to five stages of depthwise-separable blocks (widths "
      "width*2^stage, stride 2 into stages 2..5), global average pool, dense";
  s.vars = {{"width", 1, 64, 1, "stem channels (the width multiplier x 32)"},
            {"stages", 1, 5, 1, "stages of depthwise-separable blocks"},
            {"repeats", 1, 6, 1, "blocks in stage 4 (the 512-channel stage at width 32)"}};
  s.references = {
      {"mobilenet", "MobileNet v1 for CIFAR (width multiplier 1): 13 separable blocks", {32, 5, 6}},
      {"mobilenet-0.25", "MobileNet v1 with width multiplier 0.25", {8, 5, 6}}};
  s.build = build_mobilenet;
  return s;
}

}  // namespace iotnas::search
