// Elementwise ops: ReLU forward and backward, n-ary add.
#include <algorithm>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {
namespace {

constexpr int64_t kBlock = 1 << 14;  // floats per parallel piece

template <typename F>
void blocked(int64_t count, F&& body) {
  const int64_t blocks = (count + kBlock - 1) / kBlock;
  detail::parallel_for(blocks, count >= 4 * detail::kParallelMinWork, [&](int64_t b) {
    const int64_t i0 = b * kBlock;
    body(i0, std::min(count, i0 + kBlock));
  });
}

}  // namespace

void relu_fwd(int64_t count, const float* src, float* dst) {
  blocked(count, [=](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      const float x = src[i];
      dst[i] = x > 0.f ? x : (x != x ? x : 0.f);  // NaN stays NaN
    }
  });
}

void relu_bwd(int64_t count, const float* dst, const float* ddst, float* dsrc, bool accumulate) {
  if (accumulate) {
    blocked(count, [=](int64_t i0, int64_t i1) {
      const float* y = dst;
      const float* g = ddst;
      float* dx = dsrc;
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) dx[i] += y[i] > 0.f ? g[i] : 0.f;
    });
  } else {
    blocked(count, [=](int64_t i0, int64_t i1) {
      const float* y = dst;
      const float* g = ddst;
      float* dx = dsrc;
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) dx[i] = y[i] > 0.f ? g[i] : 0.f;
    });
  }
}

void add_fwd(int64_t count, int k, const float* const* srcs, float* dst) {
  IOTNAS_ASSERT(k >= 1, "add_fwd: needs at least one input");
  blocked(count, [=](int64_t i0, int64_t i1) {
    if (dst != srcs[0]) std::copy(srcs[0] + i0, srcs[0] + i1, dst + i0);
    for (int j = 1; j < k; ++j) {
      const float* x = srcs[j];
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) dst[i] += x[i];
    }
  });
}

}  // namespace iotnas::kernels::portable
