// Convolution forward and backward: the "gemm" (im2col + Eigen) and "generic" (plain loops)
// variants, and the variant lists the three ops dispatch from. The "direct" variant is in
// conv2d_direct.cpp.
//
// Determinism: work is cut into pieces that depend on the shape only (never on the thread
// count), each piece is computed by one thread in a fixed order, and the batch reduction of the
// weight gradient sums fixed chunks of the batch in chunk order.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {
namespace detail {  // conv2d_direct.cpp
bool conv2d_bwd_data_direct_supports(const ConvShape& s);
void conv2d_bwd_data_direct(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
                            bool accumulate);
void conv2d_bwd_weights_direct(const ConvShape& s, const float* src, const float* ddst, float* dwei,
                               float* dbias);
}  // namespace detail

namespace {

using detail::check_conv_shape;
using detail::gemm_acc;
using detail::parallel_for;

constexpr size_t kColBudget = 1 << 16;  // floats of im2col scratch per piece (256 KiB)
constexpr int kMinPieces = 8;           // pieces wanted for small batches (up to 8 threads busy)

// Output positions [ow_lo, ow_hi) whose input column ow*sw - pw + j lies in [0, w_in).
inline void valid_range(int w_out, int w_in, int sw, int pw, int j, int* lo, int* hi) {
  const int first = pw - j;  // ow*sw >= pw - j
  *lo = first <= 0 ? 0 : (first + sw - 1) / sw;
  const int last = w_in - 1 + pw - j;  // ow*sw <= w_in - 1 + pw - j
  *hi = last < 0 ? 0 : std::min(w_out, last / sw + 1);
  if (*lo > *hi) *lo = *hi;
}

bool is_pointwise(const ConvShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
}

// ---------------------------------------------------------------------------------------------
// gemm: per (image, group) dst_g[M, P] = W_g[M, K] * col[K, P], K = cin_g*kh*kw, P = h_out*w_out.

// col[r, p - p0] for rows r = (ci*kh + i)*kw + j of the group's input, positions [p0, p1).
void im2col(const ConvShape& s, const float* src_g, int p0, int p1, float* col) {
  const int cin_g = s.c_in / s.groups, pc = p1 - p0;
  for (int ci = 0; ci < cin_g; ++ci) {
    const float* plane = src_g + int64_t(ci) * s.h_in * s.w_in;
    for (int i = 0; i < s.kh; ++i) {
      for (int j = 0; j < s.kw; ++j) {
        float* crow = col + int64_t((ci * s.kh + i) * s.kw + j) * pc;
        int lo, hi;
        valid_range(s.w_out, s.w_in, s.sw, s.pw, j, &lo, &hi);
        for (int p = p0; p < p1;) {
          const int oh = p / s.w_out, ow0 = p % s.w_out;
          const int ow1 = std::min(s.w_out, ow0 + (p1 - p));
          float* c = crow + (p - p0) - ow0;  // c[ow] for ow in [ow0, ow1)
          const int ih = oh * s.sh - s.ph + i;
          if (ih < 0 || ih >= s.h_in) {
            std::fill(c + ow0, c + ow1, 0.f);
          } else {
            const float* srow = plane + int64_t(ih) * s.w_in - s.pw + j;
            const int a = std::clamp(lo, ow0, ow1), b = std::clamp(hi, ow0, ow1);
            std::fill(c + ow0, c + a, 0.f);
            if (s.sw == 1) {
              std::memcpy(c + a, srow + a, sizeof(float) * (b - a));
            } else {
#pragma omp simd
              for (int ow = a; ow < b; ++ow) c[ow] = srow[ow * s.sw];
            }
            std::fill(c + b, c + ow1, 0.f);
          }
          p += ow1 - ow0;
        }
      }
    }
  }
}

// dsrc_g += col2im(dcol) for input channels [c0, c1) of the group; dcol rows start at c0.
void col2im_add(const ConvShape& s, const float* dcol, int c0, int c1, float* dsrc_g) {
  const int pc = s.h_out * s.w_out;
  for (int ci = c0; ci < c1; ++ci) {
    float* plane = dsrc_g + int64_t(ci) * s.h_in * s.w_in;
    for (int i = 0; i < s.kh; ++i) {
      for (int j = 0; j < s.kw; ++j) {
        const float* crow = dcol + int64_t(((ci - c0) * s.kh + i) * s.kw + j) * pc;
        int lo, hi;
        valid_range(s.w_out, s.w_in, s.sw, s.pw, j, &lo, &hi);
        for (int oh = 0; oh < s.h_out; ++oh) {
          const int ih = oh * s.sh - s.ph + i;
          if (ih < 0 || ih >= s.h_in) continue;
          float* drow = plane + int64_t(ih) * s.w_in - s.pw + j;
          const float* c = crow + oh * s.w_out;
          if (s.sw == 1) {
#pragma omp simd
            for (int ow = lo; ow < hi; ++ow) drow[ow] += c[ow];
          } else {
            for (int ow = lo; ow < hi; ++ow) drow[ow * s.sw] += c[ow];
          }
        }
      }
    }
  }
}

// Positions per im2col piece: bounded scratch, and (for small batches) enough pieces to share
// among threads. Depends on the shape only.
int fwd_piece(const ConvShape& s) {
  const int K = s.c_in / s.groups * s.kh * s.kw, P = s.h_out * s.w_out;
  int pc = std::min<int64_t>(P, std::max<int64_t>(16, int64_t(kColBudget) / K / 16 * 16));
  const int64_t units = int64_t(s.n) * s.groups;
  if (units < kMinPieces) {
    const int want = int((kMinPieces + units - 1) / units);
    const int by_min = std::max(1, P / 64);  // keep pieces of at least ~64 positions
    const int pieces = std::min(want, by_min);
    pc = std::min(pc, (P + pieces - 1) / pieces);
  }
  return pc;
}

void conv2d_fwd_gemm(const ConvShape& s, const float* src, const float* wei, const float* bias,
                     float* dst, bool relu) {
  check_conv_shape(s);
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  const int K = cin_g * s.kh * s.kw, P = s.h_out * s.w_out;
  const int pc = fwd_piece(s), pieces = (P + pc - 1) / pc;
  const bool pointwise = is_pointwise(s);
  parallel_for(int64_t(s.n) * s.groups * pieces, s.flops() >= detail::kParallelMinWork,
               [&](int64_t t) {
                 const int piece = int(t % pieces);
                 const int64_t u = t / pieces;
                 const int img = int(u / s.groups), g = int(u % s.groups);
                 const int p0 = piece * pc, p1 = std::min(P, p0 + pc);
                 const float* src_g = src + (int64_t(img) * s.c_in + g * cin_g) * s.h_in * s.w_in;
                 float* dst_g = dst + (int64_t(img) * s.c_out + g * cout_g) * P;
                 for (int co = 0; co < cout_g; ++co) {
                   const float b = bias ? bias[g * cout_g + co] : 0.f;
                   std::fill(dst_g + int64_t(co) * P + p0, dst_g + int64_t(co) * P + p1, b);
                 }
                 const float* w_g = wei + int64_t(g) * cout_g * K;
                 if (pointwise) {
                   gemm_acc(cout_g, p1 - p0, K, w_g, K, false, src_g + p0, P, false, dst_g + p0, P);
                 } else {
                   float* col = detail::scratch(0, size_t(K) * (p1 - p0));
                   im2col(s, src_g, p0, p1, col);
                   gemm_acc(cout_g, p1 - p0, K, w_g, K, false, col, p1 - p0, false, dst_g + p0, P);
                 }
                 if (relu) {
                   for (int co = 0; co < cout_g; ++co) {
                     float* d = dst_g + int64_t(co) * P;
#pragma omp simd
                     for (int p = p0; p < p1; ++p) d[p] = detail::relu(d[p]);
                   }
                 }
               });
}

// Input channels per bwd-data piece (its dcol is (c1-c0)*kh*kw x P).
int bwd_data_piece(const ConvShape& s) {
  const int cin_g = s.c_in / s.groups, kk = s.kh * s.kw, P = s.h_out * s.w_out;
  int cc = std::clamp<int64_t>(int64_t(kColBudget) / (int64_t(kk) * P), 1, cin_g);
  const int64_t units = int64_t(s.n) * s.groups;
  if (units < kMinPieces) {
    const int want = int((kMinPieces + units - 1) / units);
    cc = std::min(cc, std::max(1, (cin_g + want - 1) / want));
  }
  return cc;
}

void conv2d_bwd_data_gemm(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
                          bool accumulate) {
  check_conv_shape(s);
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  const int kk = s.kh * s.kw, K = cin_g * kk, P = s.h_out * s.w_out, HW = s.h_in * s.w_in;
  const int cc = bwd_data_piece(s), pieces = (cin_g + cc - 1) / cc;
  const bool pointwise = is_pointwise(s);
  parallel_for(int64_t(s.n) * s.groups * pieces, s.flops() >= detail::kParallelMinWork,
               [&](int64_t t) {
                 const int piece = int(t % pieces);
                 const int64_t u = t / pieces;
                 const int img = int(u / s.groups), g = int(u % s.groups);
                 const int c0 = piece * cc, c1 = std::min(cin_g, c0 + cc);
                 const float* ddst_g = ddst + (int64_t(img) * s.c_out + g * cout_g) * P;
                 float* dsrc_g = dsrc + (int64_t(img) * s.c_in + g * cin_g) * HW;
                 const float* w_g = wei + int64_t(g) * cout_g * K + c0 * kk;  // [M, K] from c0
                 if (!accumulate) {
                   std::fill(dsrc_g + int64_t(c0) * HW, dsrc_g + int64_t(c1) * HW, 0.f);
                 }
                 if (pointwise) {
                   gemm_acc(c1 - c0, P, cout_g, w_g, K, true, ddst_g, P, false,
                            dsrc_g + int64_t(c0) * HW, HW);
                   return;
                 }
                 const int rows = (c1 - c0) * kk;
                 float* dcol = detail::scratch(0, size_t(rows) * P);
                 std::fill(dcol, dcol + size_t(rows) * P, 0.f);
                 gemm_acc(rows, P, cout_g, w_g, K, true, ddst_g, P, false, dcol, P);
                 col2im_add(s, dcol, c0, c1, dsrc_g);
               });
}

// Fixed chunks of the batch for the weight-gradient reduction: each chunk's partial sum is
// computed by one thread, then the chunks are added in order. The count depends on the batch and
// the weights' size (memory for the partials) only.
int weight_chunks(const ConvShape& s) {
  constexpr int64_t kPartialBudget = 1 << 23;  // floats held by all partials (32 MiB)
  const int64_t by_mem = std::max<int64_t>(1, kPartialBudget / std::max<int64_t>(1, s.wei_size()));
  return int(std::min<int64_t>({int64_t(s.n), 8, by_mem}));
}

void conv2d_bwd_weights_gemm(const ConvShape& s, const float* src, const float* ddst, float* dwei,
                             float* dbias) {
  check_conv_shape(s);
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  const int K = cin_g * s.kh * s.kw, P = s.h_out * s.w_out;
  const int64_t wsize = s.wei_size();
  const int chunks = weight_chunks(s);
  const bool pointwise = is_pointwise(s);
  ConvShape piece_shape = s;
  piece_shape.n = std::max(s.n, kMinPieces);  // no extra splitting for parallelism here
  const int pc = fwd_piece(piece_shape);
  const bool parallel = s.flops() >= detail::kParallelMinWork;

  std::vector<float> partial(size_t(chunks) * wsize, 0.f);
  std::vector<double> bias_partial(size_t(chunks) * s.c_out, 0.0);
  parallel_for(int64_t(chunks) * s.groups, parallel, [&](int64_t t) {
    const int chunk = int(t / s.groups), g = int(t % s.groups);
    const int n0 = int(int64_t(s.n) * chunk / chunks),
              n1 = int(int64_t(s.n) * (chunk + 1) / chunks);
    float* dw_g = partial.data() + chunk * wsize + int64_t(g) * cout_g * K;  // [M, K]
    double* db = bias_partial.data() + int64_t(chunk) * s.c_out + g * cout_g;
    for (int img = n0; img < n1; ++img) {
      const float* src_g = src + (int64_t(img) * s.c_in + g * cin_g) * s.h_in * s.w_in;
      const float* ddst_g = ddst + (int64_t(img) * s.c_out + g * cout_g) * P;
      for (int p0 = 0; p0 < P; p0 += pc) {
        const int p1 = std::min(P, p0 + pc);
        if (pointwise) {
          gemm_acc(cout_g, K, p1 - p0, ddst_g + p0, P, false, src_g + p0, P, true, dw_g, K);
        } else {
          float* col = detail::scratch(0, size_t(K) * (p1 - p0));
          im2col(s, src_g, p0, p1, col);
          gemm_acc(cout_g, K, p1 - p0, ddst_g + p0, P, false, col, p1 - p0, true, dw_g, K);
        }
      }
      if (dbias) {
        for (int co = 0; co < cout_g; ++co) {
          const float* d = ddst_g + int64_t(co) * P;
          double sum = 0;
          for (int p = 0; p < P; ++p) sum += d[p];
          db[co] += sum;
        }
      }
    }
  });
  parallel_for((wsize + 4095) / 4096, parallel, [&](int64_t blk) {
    const int64_t e0 = blk * 4096, e1 = std::min(wsize, e0 + 4096);
    std::copy(partial.begin() + e0, partial.begin() + e1, dwei + e0);
    for (int c = 1; c < chunks; ++c) {
      const float* pc_ = partial.data() + c * wsize;
#pragma omp simd
      for (int64_t e = e0; e < e1; ++e) dwei[e] += pc_[e];
    }
  });
  if (dbias) {
    for (int co = 0; co < s.c_out; ++co) {
      double sum = 0;
      for (int c = 0; c < chunks; ++c) sum += bias_partial[size_t(c) * s.c_out + co];
      dbias[co] = float(sum);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// generic: loops over output rows, vectorised along the row. Any shape; for depthwise and thin
// groups, where a GEMM per group would be a sliver.

void conv2d_fwd_generic(const ConvShape& s, const float* src, const float* wei, const float* bias,
                        float* dst, bool relu) {
  check_conv_shape(s);
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, kk = s.kh * s.kw;
  parallel_for(int64_t(s.n) * s.c_out, s.flops() >= detail::kParallelMinWork, [&](int64_t t) {
    const int img = int(t / s.c_out), co = int(t % s.c_out), g = co / cout_g;
    const float b = bias ? bias[co] : 0.f;
    float* d = dst + t * s.h_out * s.w_out;
    for (int oh = 0; oh < s.h_out; ++oh) {
      float* drow = d + oh * s.w_out;
      std::fill(drow, drow + s.w_out, b);
      for (int ci = 0; ci < cin_g; ++ci) {
        const float* plane = src + (int64_t(img) * s.c_in + g * cin_g + ci) * s.h_in * s.w_in;
        const float* w = wei + (int64_t(co) * cin_g + ci) * kk;
        for (int i = 0; i < s.kh; ++i) {
          const int ih = oh * s.sh - s.ph + i;
          if (ih < 0 || ih >= s.h_in) continue;
          for (int j = 0; j < s.kw; ++j) {
            int lo, hi;
            valid_range(s.w_out, s.w_in, s.sw, s.pw, j, &lo, &hi);
            const float* srow = plane + int64_t(ih) * s.w_in - s.pw + j;
            const float wv = w[i * s.kw + j];
            if (s.sw == 1) {
#pragma omp simd
              for (int ow = lo; ow < hi; ++ow) drow[ow] += wv * srow[ow];
            } else {
#pragma omp simd
              for (int ow = lo; ow < hi; ++ow) drow[ow] += wv * srow[ow * s.sw];
            }
          }
        }
      }
      if (relu) {
#pragma omp simd
        for (int ow = 0; ow < s.w_out; ++ow) drow[ow] = detail::relu(drow[ow]);
      }
    }
  });
}

void conv2d_bwd_data_generic(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
                             bool accumulate) {
  check_conv_shape(s);
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, kk = s.kh * s.kw;
  parallel_for(int64_t(s.n) * s.c_in, s.flops() >= detail::kParallelMinWork, [&](int64_t t) {
    const int img = int(t / s.c_in), ci = int(t % s.c_in), g = ci / cin_g;
    float* plane = dsrc + t * s.h_in * s.w_in;
    if (!accumulate) std::fill(plane, plane + s.h_in * s.w_in, 0.f);
    for (int co = g * cout_g; co < (g + 1) * cout_g; ++co) {
      const float* d = ddst + (int64_t(img) * s.c_out + co) * s.h_out * s.w_out;
      const float* w = wei + (int64_t(co) * cin_g + ci - g * cin_g) * kk;
      for (int i = 0; i < s.kh; ++i) {
        for (int j = 0; j < s.kw; ++j) {
          int lo, hi;
          valid_range(s.w_out, s.w_in, s.sw, s.pw, j, &lo, &hi);
          const float wv = w[i * s.kw + j];
          for (int oh = 0; oh < s.h_out; ++oh) {
            const int ih = oh * s.sh - s.ph + i;
            if (ih < 0 || ih >= s.h_in) continue;
            float* drow = plane + int64_t(ih) * s.w_in - s.pw + j;
            const float* grow = d + oh * s.w_out;
            if (s.sw == 1) {
#pragma omp simd
              for (int ow = lo; ow < hi; ++ow) drow[ow] += wv * grow[ow];
            } else {
              for (int ow = lo; ow < hi; ++ow) drow[ow * s.sw] += wv * grow[ow];
            }
          }
        }
      }
    }
  });
}

// Each output channel's weights are reduced over the whole batch by one thread, in batch order:
// no partial buffers are needed.
void conv2d_bwd_weights_generic(const ConvShape& s, const float* src, const float* ddst,
                                float* dwei, float* dbias) {
  check_conv_shape(s);
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, kk = s.kh * s.kw;
  const int64_t plane_out = int64_t(s.h_out) * s.w_out;
  parallel_for(s.c_out, s.flops() >= detail::kParallelMinWork, [&](int64_t co) {
    const int g = int(co) / cout_g;
    std::vector<double> acc(size_t(cin_g) * kk, 0.0);
    double bsum = 0;
    for (int img = 0; img < s.n; ++img) {
      const float* d = ddst + (int64_t(img) * s.c_out + co) * plane_out;
      if (dbias) {
        for (int64_t p = 0; p < plane_out; ++p) bsum += d[p];
      }
      for (int ci = 0; ci < cin_g; ++ci) {
        const float* plane = src + (int64_t(img) * s.c_in + g * cin_g + ci) * s.h_in * s.w_in;
        for (int i = 0; i < s.kh; ++i) {
          for (int j = 0; j < s.kw; ++j) {
            int lo, hi;
            valid_range(s.w_out, s.w_in, s.sw, s.pw, j, &lo, &hi);
            float sum = 0.f;  // this image's contribution, then added in double
            for (int oh = 0; oh < s.h_out; ++oh) {
              const int ih = oh * s.sh - s.ph + i;
              if (ih < 0 || ih >= s.h_in) continue;
              const float* srow = plane + int64_t(ih) * s.w_in - s.pw + j;
              const float* grow = d + oh * s.w_out;
              if (s.sw == 1) {
#pragma omp simd reduction(+ : sum)
                for (int ow = lo; ow < hi; ++ow) sum += grow[ow] * srow[ow];
              } else {
#pragma omp simd reduction(+ : sum)
                for (int ow = lo; ow < hi; ++ow) sum += grow[ow] * srow[ow * s.sw];
              }
            }
            acc[(ci * s.kh + i) * s.kw + j] += sum;
          }
        }
      }
    }
    float* dw = dwei + co * cin_g * kk;
    for (int e = 0; e < cin_g * kk; ++e) dw[e] = float(acc[e]);
    if (dbias) dbias[co] = float(bsum);
  });
}

// ---------------------------------------------------------------------------------------------
// Variant lists.

bool any_shape(const ConvShape&) {
  return true;
}
// Depthwise and thin groups: per-group GEMMs would have a handful of rows or a short depth.
bool thin_groups(const ConvShape& s) {
  return s.groups > 1 && (s.c_out / s.groups < 8 || s.c_in / s.groups * s.kh * s.kw < 16);
}
// Choices measured on Zen 4 (AVX-512) with one thread, batches 1 and 32: the direct forward
// beats im2col + GEMM on every shape it supports (1-5x); its backward data too, unless the
// flipped convolution has fewer than 4 output channels per group (a first layer's 1 input
// channel: 4x slower than GEMM); its weight gradient wins only for depthwise and thin groups
// (8x there; for dense convolutions GEMM is 1.5-2.5x faster).
bool direct_picks(const ConvShape& s) {
  return conv2d_direct_supports(s);
}
bool direct_bwd_data_picks(const ConvShape& s) {
  return detail::conv2d_bwd_data_direct_supports(s) && (s.c_in / s.groups >= 4 || thin_groups(s));
}
bool direct_bwd_weights_picks(const ConvShape& s) {
  return conv2d_direct_supports(s) && thin_groups(s);
}

constexpr ConvFwdVariant kFwd[] = {
    {"direct", conv2d_direct_supports, direct_picks, conv2d_fwd_direct},
    {"generic", any_shape, thin_groups, conv2d_fwd_generic},
    {"gemm", any_shape, any_shape, conv2d_fwd_gemm},
};
constexpr ConvBwdDataVariant kBwdData[] = {
    {"direct", detail::conv2d_bwd_data_direct_supports, direct_bwd_data_picks,
     detail::conv2d_bwd_data_direct},
    {"generic", any_shape, thin_groups, conv2d_bwd_data_generic},
    {"gemm", any_shape, any_shape, conv2d_bwd_data_gemm},
};
constexpr ConvBwdWeightsVariant kBwdWeights[] = {
    {"direct", conv2d_direct_supports, direct_bwd_weights_picks, detail::conv2d_bwd_weights_direct},
    {"generic", any_shape, thin_groups, conv2d_bwd_weights_generic},
    {"gemm", any_shape, any_shape, conv2d_bwd_weights_gemm},
};

template <typename V>
const V& pick(std::span<const V> list, const ConvShape& s) {
  for (const V& v : list) {
    if (v.picks(s)) return v;
  }
  return list.back();
}

}  // namespace

std::span<const ConvFwdVariant> conv2d_fwd_variants() {
  return kFwd;
}
std::span<const ConvBwdDataVariant> conv2d_bwd_data_variants() {
  return kBwdData;
}
std::span<const ConvBwdWeightsVariant> conv2d_bwd_weights_variants() {
  return kBwdWeights;
}

const char* conv2d_fwd_variant_name(const ConvShape& s) {
  return pick(conv2d_fwd_variants(), s).name;
}
const char* conv2d_bwd_data_variant_name(const ConvShape& s) {
  return pick(conv2d_bwd_data_variants(), s).name;
}
const char* conv2d_bwd_weights_variant_name(const ConvShape& s) {
  return pick(conv2d_bwd_weights_variants(), s).name;
}

void conv2d_fwd(const ConvShape& s, const float* src, const float* wei, const float* bias,
                float* dst, bool relu) {
  pick(conv2d_fwd_variants(), s).run(s, src, wei, bias, dst, relu);
}

void conv2d_bwd_data(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
                     bool accumulate) {
  pick(conv2d_bwd_data_variants(), s).run(s, ddst, wei, dsrc, accumulate);
}

void conv2d_bwd_weights(const ConvShape& s, const float* src, const float* ddst, float* dwei,
                        float* dbias) {
  pick(conv2d_bwd_weights_variants(), s).run(s, src, ddst, dwei, dbias);
}

}  // namespace iotnas::kernels::portable
