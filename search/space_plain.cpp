// plain: the paper's Fig. 1 family (DESIGN.md §5). Three conv layers (kernel height and width
// each in {1,3,5,7}, 1..128 output channels, bias, "same" padding), ReLU after each, 2x2 max
// pooling after the first two, then global average pooling and the dense classifier.
// |S| = 4^6 * 128^3 = 8.6e9 models.
#include "search/space.hpp"

namespace iotnas::search {

namespace {

void build_plain(std::span<const int> v, NetBuilder& b) {
  int x = NetBuilder::kInput;
  for (int layer = 0; layer < 3; ++layer) {
    const int* p = &v[3 * layer];  // channels, kernel_h, kernel_w
    x = b.relu(b.conv(x, p[0], p[1], p[2]));
    if (layer < 2) x = b.max_pool(x, 2, 2);
  }
  b.dense(b.global_avg_pool(x), b.classes());
}

}  // namespace

Space make_plain_space() {
  Space s;
  s.name = "plain";
  s.description =
      "three conv layers (kernels {1,3,5,7}^2, 1..128 channels) + ReLU, 2x2 max pool after the "
      "first two, global average pool, dense classifier (paper Fig. 1)";
  for (int layer = 1; layer <= 3; ++layer) {
    const std::string id = "conv" + std::to_string(layer);
    s.vars.push_back({id + "_channels", 1, 128, 1, "output channels of " + id});
    s.vars.push_back({id + "_kh", 1, 7, 2, "kernel height of " + id + " (1, 3, 5 or 7)"});
    s.vars.push_back({id + "_kw", 1, 7, 2, "kernel width of " + id + " (1, 3, 5 or 7)"});
  }
  // ref:plain-14k (engine/reference_models.cpp). ref:plain-1k has two conv layers and the
  // plain-120k/960k models a hidden dense layer, so they are not members of this space.
  s.references = {
      {"plain-14k",
       "ref:plain-14k: conv 16, pool, conv 32, pool, conv 32 (3x3)",
       {16, 3, 3, 32, 3, 3, 32, 3, 3}},
      {"plain-min", "the smallest member: 1 channel, 1x1 kernels", {1, 1, 1, 1, 1, 1, 1, 1, 1}},
      {"plain-max",
       "the largest member: 128 channels, 7x7 kernels",
       {128, 7, 7, 128, 7, 7, 128, 7, 7}}};
  s.build = build_plain;
  return s;
}

}  // namespace iotnas::search
