// Max, average and global average pooling, forward and backward. Work is split over (n, c)
// planes; each plane is done by one thread in a fixed order.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {
namespace {

using detail::parallel_for;

// Window rows [*lo, *hi) inside [0, in) for output index o.
inline void window(int o, int stride, int pad, int k, int in, int* lo, int* hi) {
  const int start = o * stride - pad;
  *lo = std::max(start, 0);
  *hi = std::min(start + k, in);
}

// max(a, b) that returns NaN when either is NaN (std::max returns its first argument for a NaN
// second one); a select, so it vectorises.
inline float nan_max(float a, float b) {
  return (a > b || a != a) ? a : b;
}

// One output row of a 2x2 stride-2 unpadded max pool from input rows r0 and r1: blocks of
// kBlock outputs with a fixed-length loop (which vectorises whatever w_out is; rows of 7 or 14
// outputs otherwise run as scalar remainders), the last partial block from a padded copy.
constexpr int kBlock = 8;
inline void pool2x2_block(const float* r0, const float* r1, float* out) {
#pragma omp simd
  for (int v = 0; v < kBlock; ++v) {
    out[v] = nan_max(nan_max(r0[2 * v], r0[2 * v + 1]), nan_max(r1[2 * v], r1[2 * v + 1]));
  }
}
void pool2x2_row(const float* r0, const float* r1, int w_out, float* y) {
  int k = 0;
  for (; k + kBlock <= w_out; k += kBlock) pool2x2_block(r0 + 2 * k, r1 + 2 * k, y + k);
  if (k == w_out) return;
  const int left = w_out - k;
  float a[2 * kBlock] = {}, b[2 * kBlock] = {}, o[kBlock];
  std::copy(r0 + 2 * k, r0 + 2 * w_out, a);
  std::copy(r1 + 2 * k, r1 + 2 * w_out, b);
  pool2x2_block(a, b, o);
  std::copy(o, o + left, y + k);
}

// A whole plane. Rows but the last run whole blocks, the last block spilling past the row end:
// the spill lands in the next output row (rewritten right after, rows go in order) and reads
// stay inside the plane, as long as 2*w_out >= the blocks' width. The last row uses the padded
// copy, so nothing is written outside the plane.
void pool2x2_plane(const float* x, int w_in, int h_out, int w_out, float* y) {
  const int blocks = (w_out + kBlock - 1) / kBlock;
  const bool spill_ok = 2 * w_out >= blocks * kBlock;
  for (int oh = 0; oh < h_out; ++oh) {
    const float* r0 = x + int64_t(2 * oh) * w_in;
    const float* r1 = r0 + w_in;
    float* yr = y + int64_t(oh) * w_out;
    if (spill_ok && oh + 1 < h_out) {
      for (int b = 0; b < blocks; ++b)
        pool2x2_block(r0 + 2 * kBlock * b, r1 + 2 * kBlock * b, yr + kBlock * b);
    } else {
      pool2x2_row(r0, r1, w_out, yr);
    }
  }
}

bool parallel_pool(const PoolShape& s) {
  return s.dst_size() * s.kh * s.kw >= detail::kParallelMinWork;
}

}  // namespace

void max_pool_fwd(const PoolShape& s, const float* src, float* dst, int32_t* argmax) {
  const int64_t in_plane = int64_t(s.h_in) * s.w_in, out_plane = int64_t(s.h_out) * s.w_out;
  const bool fast2x2 = !argmax && s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 &&
                       s.pw == 0 && 2 * s.h_out <= s.h_in && 2 * s.w_out <= s.w_in;
  parallel_for(int64_t(s.n) * s.c, parallel_pool(s), [&](int64_t t) {
    const float* x = src + t * in_plane;
    float* y = dst + t * out_plane;
    if (fast2x2) {
      pool2x2_plane(x, s.w_in, s.h_out, s.w_out, y);
      return;
    }
    int32_t* am = argmax ? argmax + t * out_plane : nullptr;
    for (int oh = 0; oh < s.h_out; ++oh) {
      int h0, h1;
      window(oh, s.sh, s.ph, s.kh, s.h_in, &h0, &h1);
      for (int ow = 0; ow < s.w_out; ++ow) {
        int w0, w1;
        window(ow, s.sw, s.pw, s.kw, s.w_in, &w0, &w1);
        float best = -std::numeric_limits<float>::infinity();
        int32_t where = -1;
        for (int h = h0; h < h1; ++h) {
          for (int w = w0; w < w1; ++w) {
            const float v = x[int64_t(h) * s.w_in + w];
            // Strictly greater: ties keep the first; the first NaN wins and stays.
            if (where < 0 || v > best || (v != v && best == best)) {
              best = v;
              where = h * s.w_in + w;
            }
          }
        }
        y[int64_t(oh) * s.w_out + ow] = best;
        if (am) am[int64_t(oh) * s.w_out + ow] = where;
      }
    }
  });
}

void max_pool_bwd(const PoolShape& s, const float* ddst, const int32_t* argmax, float* dsrc,
                  bool accumulate) {
  const int64_t in_plane = int64_t(s.h_in) * s.w_in, out_plane = int64_t(s.h_out) * s.w_out;
  parallel_for(int64_t(s.n) * s.c, parallel_pool(s), [&](int64_t t) {
    float* dx = dsrc + t * in_plane;
    if (!accumulate) std::fill(dx, dx + in_plane, 0.f);
    const float* dy = ddst + t * out_plane;
    const int32_t* am = argmax + t * out_plane;
    for (int64_t o = 0; o < out_plane; ++o) {
      if (am[o] >= 0) dx[am[o]] += dy[o];
    }
  });
}

void avg_pool_fwd(const PoolShape& s, const float* src, float* dst) {
  const int64_t in_plane = int64_t(s.h_in) * s.w_in, out_plane = int64_t(s.h_out) * s.w_out;
  const float inv = 1.f / float(s.kh * s.kw);
  parallel_for(int64_t(s.n) * s.c, parallel_pool(s), [&](int64_t t) {
    const float* x = src + t * in_plane;
    float* y = dst + t * out_plane;
    for (int oh = 0; oh < s.h_out; ++oh) {
      int h0, h1;
      window(oh, s.sh, s.ph, s.kh, s.h_in, &h0, &h1);
      for (int ow = 0; ow < s.w_out; ++ow) {
        int w0, w1;
        window(ow, s.sw, s.pw, s.kw, s.w_in, &w0, &w1);
        float sum = 0.f;
        for (int h = h0; h < h1; ++h) {
          for (int w = w0; w < w1; ++w) sum += x[int64_t(h) * s.w_in + w];
        }
        y[int64_t(oh) * s.w_out + ow] = sum * inv;
      }
    }
  });
}

void avg_pool_bwd(const PoolShape& s, const float* ddst, float* dsrc, bool accumulate) {
  const int64_t in_plane = int64_t(s.h_in) * s.w_in, out_plane = int64_t(s.h_out) * s.w_out;
  const float inv = 1.f / float(s.kh * s.kw);
  parallel_for(int64_t(s.n) * s.c, parallel_pool(s), [&](int64_t t) {
    float* dx = dsrc + t * in_plane;
    if (!accumulate) std::fill(dx, dx + in_plane, 0.f);
    const float* dy = ddst + t * out_plane;
    for (int oh = 0; oh < s.h_out; ++oh) {
      int h0, h1;
      window(oh, s.sh, s.ph, s.kh, s.h_in, &h0, &h1);
      for (int ow = 0; ow < s.w_out; ++ow) {
        int w0, w1;
        window(ow, s.sw, s.pw, s.kw, s.w_in, &w0, &w1);
        const float g = dy[int64_t(oh) * s.w_out + ow] * inv;
        for (int h = h0; h < h1; ++h) {
          for (int w = w0; w < w1; ++w) dx[int64_t(h) * s.w_in + w] += g;
        }
      }
    }
  });
}

void global_avg_pool_fwd(int n, int c, int hw, const float* src, float* dst) {
  const int64_t planes = int64_t(n) * c;
  parallel_for(planes, planes * hw >= detail::kParallelMinWork, [&](int64_t t) {
    const float* x = src + t * hw;
    double sum = 0;
    for (int i = 0; i < hw; ++i) sum += x[i];
    dst[t] = float(sum / hw);
  });
}

void global_avg_pool_bwd(int n, int c, int hw, const float* ddst, float* dsrc, bool accumulate) {
  const int64_t planes = int64_t(n) * c;
  const float inv = 1.f / float(hw);
  parallel_for(planes, planes * hw >= detail::kParallelMinWork, [&](int64_t t) {
    float* dx = dsrc + t * hw;
    const float g = ddst[t] * inv;
    if (accumulate) {
#pragma omp simd
      for (int i = 0; i < hw; ++i) dx[i] += g;
    } else {
      std::fill(dx, dx + hw, g);
    }
  });
}

}  // namespace iotnas::kernels::portable
