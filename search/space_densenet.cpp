// densenet: DenseNet-BC for small images (Huang et al. 2017). A 3x3 stem conv with 2k channels,
// then `blocks` dense blocks of `layers` bottleneck layers (BN-ReLU-1x1 conv 4k, BN-ReLU-3x3 conv
// k, concatenated to the block's running features), transitions between blocks (BN-ReLU-1x1 conv
// to floor(C * compression / 100) channels, 2x2 average pool), then BN-ReLU, global average pool
// and dense. Convolutions have no bias.
#include <algorithm>

#include "search/space.hpp"

namespace iotnas::search {

namespace {

enum { kGrowth, kLayers, kBlocks, kCompression };

int bn_relu(NetBuilder& b, int x) {
  return b.relu(b.batch_norm(x));
}

void build_densenet(std::span<const int> v, NetBuilder& b) {
  const int k = v[kGrowth];
  int x = b.conv(NetBuilder::kInput, 2 * k, 3, 3, 1, 1, false);
  for (int block = 0; block < v[kBlocks]; ++block) {
    if (block > 0) {
      const int c = std::max(1, b.channels(x) * v[kCompression] / 100);
      x = b.avg_pool(b.conv(bn_relu(b, x), c, 1, 1, 1, 1, false), 2, 2);
    }
    for (int layer = 0; layer < v[kLayers]; ++layer) {
      const int bottleneck = b.conv(bn_relu(b, x), 4 * k, 1, 1, 1, 1, false);
      const int y = b.conv(bn_relu(b, bottleneck), k, 3, 3, 1, 1, false);
      x = b.concat({x, y});
    }
  }
  b.dense(b.global_avg_pool(bn_relu(b, x)), b.classes());
}

}  // namespace

Space make_densenet_space() {
  Space s;
  s.name = "densenet";
  s.description =
      "DenseNet-BC: stem 2k, dense blocks of bottleneck layers (1x1 4k, 3x3 k), compressing "
      "transitions with 2x2 average pool, BN-ReLU, global average pool, dense";
  s.vars = {{"growth", 1, 48, 1, "growth rate k (channels each layer adds)"},
            {"layers", 1, 16, 1, "bottleneck layers per dense block"},
            {"blocks", 1, 3, 1, "dense blocks (a transition between consecutive blocks)"},
            {"compression", 25, 100, 25, "transition output channels, percent of its input"}};
  s.references = {{"densenet-bc-100",
                   "DenseNet-BC (L=100, k=12): 3 blocks of 16 layers, compression 0.5",
                   {12, 16, 3, 50}},
                  {"densenet-bc-40",
                   "DenseNet-BC (L=40, k=12): 3 blocks of 6 layers, compression 0.5",
                   {12, 6, 3, 50}}};
  s.build = build_densenet;
  return s;
}

}  // namespace iotnas::search
