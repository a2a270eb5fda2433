// inception: GoogLeNet-style networks for small images (Szegedy et al. 2015). A 3x3 stem
// conv-BN-ReLU, then three stages of `modules` Inception modules with 2x2 max pooling between
// stages, global average pool and dense. A module concatenates four branches, each conv followed
// by BN + ReLU: 1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 | 3x3 max pool (stride 1) -> 1x1.
// Branch widths are multiplied by growth^stage.
#include "search/space.hpp"

namespace iotnas::search {

namespace {

enum { kStem, kModules, kB1, kB3Reduce, kB3, kB5Reduce, kB5, kPool, kGrowth };

void build_inception(std::span<const int> v, NetBuilder& b) {
  int x = b.conv_bn_relu(NetBuilder::kInput, v[kStem], 3);
  int scale = 1;
  for (int stage = 0; stage < 3; ++stage) {
    if (stage > 0) {
      x = b.max_pool(x, 2, 2);
      scale *= v[kGrowth];
    }
    for (int m = 0; m < v[kModules]; ++m) {
      const int b1 = b.conv_bn_relu(x, scale * v[kB1], 1);
      const int b3 = b.conv_bn_relu(b.conv_bn_relu(x, scale * v[kB3Reduce], 1), scale * v[kB3], 3);
      const int b5 = b.conv_bn_relu(b.conv_bn_relu(x, scale * v[kB5Reduce], 1), scale * v[kB5], 5);
      const int bp = b.conv_bn_relu(b.max_pool(x, 3, 1, 1), scale * v[kPool], 1);
      x = b.concat({b1, b3, b5, bp});
    }
  }
  b.dense(b.global_avg_pool(x), b.classes());
}

}  // namespace

Space make_inception_space() {
  Space s;
  s.name = "inception";
  s.description =
      "GoogLeNet-style: 3x3 stem, three stages of Inception modules (1x1 | 1x1-3x3 | 1x1-5x5 | "
      "pool-1x1, concatenated) with 2x2 max pool between stages, widths x growth per stage";
  s.vars = {{"stem", 1, 192, 1, "channels of the 3x3 stem conv"},
            {"modules", 1, 4, 1, "Inception modules per stage (three stages)"},
            {"b1", 1, 64, 1, "1x1 branch channels (stage 1)"},
            {"b3_reduce", 1, 96, 1, "1x1 reduction before the 3x3 branch (stage 1)"},
            {"b3", 1, 128, 1, "3x3 branch channels (stage 1)"},
            {"b5_reduce", 1, 32, 1, "1x1 reduction before the 5x5 branch (stage 1)"},
            {"b5", 1, 64, 1, "5x5 branch channels (stage 1)"},
            {"pool_proj", 1, 64, 1, "1x1 projection after the 3x3 max pool branch (stage 1)"},
            {"growth", 1, 2, 1, "branch width factor from one stage to the next"}};
  s.references = {
      {"inception-mini",
       "GoogLeNet-mini: stem 64, 2 modules per stage with GoogLeNet's inception(3a) widths "
       "(64, 96-128, 16-32, 32), doubling per stage",
       {64, 2, 64, 96, 128, 16, 32, 32, 2}},
      {"inception-3a",
       "stem 192 (GoogLeNet's CIFAR pre-layer), one inception(3a) module per stage, constant "
       "widths",
       {192, 1, 64, 96, 128, 16, 32, 32, 1}}};
  s.build = build_inception;
  return s;
}

}  // namespace iotnas::search
