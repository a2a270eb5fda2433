// resnet: CIFAR-style residual networks (He et al. 2016). A 3x3 stem conv + BN + ReLU, then three
// stages of basic blocks (conv-BN-ReLU-conv-BN + shortcut, ReLU) at widths width * growth^stage;
// the first block of stages 2 and 3 has stride 2, and a block whose shape changes gets a 1x1 conv
// + BN projection shortcut (option B), as in ref:resnet20. Then global average pool and dense.
#include "search/space.hpp"

namespace iotnas::search {

namespace {

enum { kBlocks1, kBlocks2, kBlocks3, kWidth, kGrowth };

void build_resnet(std::span<const int> v, NetBuilder& b) {
  int width = v[kWidth];
  int x = b.conv_bn_relu(NetBuilder::kInput, width, 3);
  int stage_width = v[kWidth];
  for (int stage = 0; stage < 3; ++stage) {
    if (stage > 0) stage_width *= v[kGrowth];
    for (int block = 0; block < v[kBlocks1 + stage]; ++block) {
      const int stride = (stage > 0 && block == 0) ? 2 : 1;
      int y = b.conv_bn_relu(x, stage_width, 3, stride);
      y = b.batch_norm(b.conv(y, stage_width, 3, 3, 1, 1, false));
      int shortcut = x;
      if (stride != 1 || stage_width != width) {
        shortcut = b.batch_norm(b.conv(x, stage_width, 1, 1, stride, 1, false));
      }
      x = b.relu(b.add(y, shortcut));
      width = stage_width;
    }
  }
  b.dense(b.global_avg_pool(x), b.classes());
}

}  // namespace

Space make_resnet_space() {
  Space s;
  s.name = "resnet";
  s.description =
      "CIFAR ResNet: 3x3 stem, three stages of basic blocks (stride 2 into stages 2 and 3, "
      "projection shortcuts), widths width*growth^stage, global average pool, dense";
  s.vars = {{"blocks1", 1, 9, 1, "basic blocks in stage 1"},
            {"blocks2", 1, 9, 1, "basic blocks in stage 2"},
            {"blocks3", 1, 9, 1, "basic blocks in stage 3"},
            {"width", 1, 64, 1, "channels of the stem and of stage 1"},
            {"growth", 1, 3, 1, "width factor from one stage to the next"}};
  s.references = {
      {"resnet20", "ref:resnet20: 3 blocks per stage, widths 16, 32, 64", {3, 3, 3, 16, 2}},
      {"resnet32", "ResNet-32: 5 blocks per stage, widths 16, 32, 64", {5, 5, 5, 16, 2}},
      {"resnet56", "ResNet-56: 9 blocks per stage, widths 16, 32, 64", {9, 9, 9, 16, 2}}};
  s.build = build_resnet;
  return s;
}

}  // namespace iotnas::search
