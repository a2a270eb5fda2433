// Channel concatenation of NCHW tensors and its backward (the split).
#include <algorithm>
#include <vector>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {
namespace {

// Offsets of each input's channels in the output, and the output's channel count.
std::vector<int> channel_offsets(int k, const int* channels, int* total) {
  std::vector<int> off(size_t(k) + 1, 0);
  for (int i = 0; i < k; ++i) {
    IOTNAS_ASSERT(channels[i] >= 0, "concat: negative channel count");
    off[i + 1] = off[i] + channels[i];
  }
  *total = off[k];
  return off;
}

}  // namespace

void concat_fwd(int n, int hw, int k, const float* const* srcs, const int* channels, float* dst) {
  int total;
  const auto off = channel_offsets(k, channels, &total);
  detail::parallel_for(int64_t(n) * k, int64_t(n) * total * hw >= 4 * detail::kParallelMinWork,
                       [&](int64_t t) {
                         const int img = int(t / k), i = int(t % k);
                         const int64_t len = int64_t(channels[i]) * hw;
                         const float* x = srcs[i] + img * len;
                         std::copy(x, x + len, dst + (int64_t(img) * total + off[i]) * hw);
                       });
}

void concat_bwd(int n, int hw, int k, const float* ddst, const int* channels, float* const* dsrcs,
                bool accumulate) {
  int total;
  const auto off = channel_offsets(k, channels, &total);
  detail::parallel_for(int64_t(n) * k, int64_t(n) * total * hw >= 4 * detail::kParallelMinWork,
                       [&](int64_t t) {
                         const int img = int(t / k), i = int(t % k);
                         const int64_t len = int64_t(channels[i]) * hw;
                         const float* g = ddst + (int64_t(img) * total + off[i]) * hw;
                         float* dx = dsrcs[i] + img * len;
                         if (accumulate) {
#pragma omp simd
                           for (int64_t e = 0; e < len; ++e) dx[e] += g[e];
                         } else {
                           std::copy(g, g + len, dx);
                         }
                       });
}

}  // namespace iotnas::kernels::portable
