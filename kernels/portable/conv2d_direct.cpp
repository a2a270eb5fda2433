// Direct convolution for kernel sides in {1, 3, 5, 7} (padding below the kernel size, any
// stride): the batch-1 latency path, and the fast path for depthwise convolutions.
//
// Each input channel is copied into zero-padded "phase planes": for stride (sh, sw) there are
// sh*sw of them, phase (a, b) holding padded pixels (y*sh + a, x*sw + b) in rows of width
// wq = ceil(wp / sw) (wp = w_in + 2*pw); for stride 1 that is just the padded plane. Output
// position q = oh*wq + ow of a "wide" output (wq columns per row, the columns past w_out
// garbage) then reads, for tap (i, j), element q + (i/sh)*wq + j/sw of phase (i%sh, j%sw): one
// contiguous run per tap. The innermost loop is a plain vector FMA over kVl consecutive
// positions with no edge cases; a block of COB output channels shares each input load, and
// COB x kVl accumulators stay in registers. The wide rows are cut to w_out when stored, with
// bias, ReLU or accumulation fused.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {
namespace {

// Vector registers of the target decide the register block: lanes per vector, and how many
// vectors of positions (kNv) x output channels (8) the accumulators hold.
#if defined(__AVX512F__)
constexpr int kLanes = 16, kNv = 2;  // 32 zmm: 16 accumulators
#elif defined(__AVX__)
constexpr int kLanes = 8, kNv = 1;  // 16 ymm: 8 accumulators
#elif defined(__aarch64__)
constexpr int kLanes = 4, kNv = 2;  // 32 q registers: 16 accumulators
#else
constexpr int kLanes = 4, kNv = 1;  // SSE2 and others: 16 registers
#endif
constexpr int kVl = kLanes * kNv;  // wide-output positions per block
constexpr int kMaxTaps = 49;

constexpr int kernel_index(int k) {
  return k == 1 ? 0 : k == 3 ? 1 : k == 5 ? 2 : k == 7 ? 3 : -1;
}
constexpr int kSides[4] = {1, 3, 5, 7};

// Where the phase planes of one input channel put each tap's run.
struct Layout {
  int wq = 0, hq = 0;  // phase plane width and height
  int plane = 0;       // floats per phase plane (with slack for the last block's reads)
  int channel = 0;     // floats per input channel (sh*sw planes)
  int lr = 0;          // wide output positions computed, a multiple of kVl
  int off[kMaxTaps] = {};

  explicit Layout(const ConvShape& s) {
    const int wp = s.w_in + 2 * s.pw, hp = s.h_in + 2 * s.ph;
    wq = (wp + s.sw - 1) / s.sw;
    hq = (hp + s.sh - 1) / s.sh;
    lr = (s.h_out * wq + kVl - 1) / kVl * kVl;
    plane = std::max(lr + (s.kh - 1) / s.sh * wq + (s.kw - 1) / s.sw, hq * wq);
    channel = s.sh * s.sw * plane;
    for (int i = 0; i < s.kh; ++i) {
      for (int j = 0; j < s.kw; ++j) {
        const int phase = (i % s.sh) * s.sw + j % s.sw;
        off[i * s.kw + j] = phase * plane + i / s.sh * wq + j / s.sw;
      }
    }
  }
};

// Writes the phase planes of `count` input channels (planes of h_in x w_in, `src` the first).
void build_phases(const ConvShape& s, const Layout& L, const float* src, int count, float* x) {
  for (int c = 0; c < count; ++c) {
    const float* sp = src + int64_t(c) * s.h_in * s.w_in;
    float* xc = x + int64_t(c) * L.channel;
    if (s.sh == 1 && s.sw == 1) {
      if (s.ph == 0 && s.pw == 0) {
        std::memcpy(xc, sp, sizeof(float) * s.h_in * s.w_in);
        std::fill(xc + s.h_in * s.w_in, xc + L.plane, 0.f);
        continue;
      }
      std::fill(xc, xc + L.plane, 0.f);
      for (int h = 0; h < s.h_in; ++h) {
        std::memcpy(xc + (h + s.ph) * L.wq + s.pw, sp + h * s.w_in, sizeof(float) * s.w_in);
      }
      continue;
    }
    // Padded row h + ph goes to phase row (h + ph) / sh of phases ((h + ph) % sh, b); its
    // columns w with (w + pw) % sw == b go to column (w + pw) / sw of phase b.
    std::fill(xc, xc + L.channel, 0.f);
    for (int b = 0; b < s.sw; ++b) {
      const int w0 = ((b - s.pw) % s.sw + s.sw) % s.sw;  // first column in phase b
      if (w0 >= s.w_in) continue;
      const int count = (s.w_in - 1 - w0) / s.sw + 1;
      float* xb = xc + b * L.plane + (w0 + s.pw) / s.sw;
      int a = s.ph % s.sh, y = s.ph / s.sh;  // phase row of input row h, kept incrementally
      for (int h = 0; h < s.h_in; ++h) {
        float* xr = xb + a * s.sw * L.plane + y * L.wq;
        const float* r = sp + h * s.w_in + w0;
        if (s.sw == 2) {  // the common case, with a compile-time stride it vectorises
          for (int k = 0; k < count; ++k) xr[k] = r[2 * k];
        } else {
          for (int k = 0; k < count; ++k) xr[k] = r[k * s.sw];
        }
        if (++a == s.sh) a = 0, ++y;
      }
    }
  }
}

// g++ 12 "unroll-and-jams" the tap loop into the vector loop when COB is 1 and then vectorises
// across taps with gathers (3x slower); keep it from doing so.
#if defined(__GNUC__) && !defined(__clang__)
#define IOTNAS_NO_UNROLL_AND_JAM __attribute__((optimize("no-loop-unroll-and-jam")))
#else
#define IOTNAS_NO_UNROLL_AND_JAM
#endif

// out[c, q] (c < COB, q < lr) = sum_{ci, t} w[c, ci, t] * x[ci, q + off[t]]; w rows are
// wstride apart, x channels `channel` apart.
template <int KH, int KW, int COB>
IOTNAS_NO_UNROLL_AND_JAM void direct_block(const float* x, int cin, int channel, const int* off,
                                           const float* w, int wstride, int lr, float* out) {
  constexpr int T = KH * KW;
  for (int q0 = 0; q0 < lr; q0 += kVl) {
    float acc[COB][kVl] = {};
    for (int ci = 0; ci < cin; ++ci) {
      const float* xc = x + int64_t(ci) * channel + q0;
      const float* wc = w + ci * T;
      for (int t = 0; t < T; ++t) {
        const float* xv = xc + off[t];
        for (int c = 0; c < COB; ++c) {
          const float wv = wc[c * wstride + t];
#pragma omp simd
          for (int v = 0; v < kVl; ++v) acc[c][v] += wv * xv[v];
        }
      }
    }
    for (int c = 0; c < COB; ++c) std::memcpy(out + c * lr + q0, acc[c], sizeof(acc[c]));
  }
}

using BlockFn = void (*)(const float*, int, int, const int*, const float*, int, int, float*);
constexpr int kCobs[3] = {8, 4, 1};

template <int KI, int KJ>
constexpr std::array<BlockFn, 3> cob_row() {
  return {&direct_block<kSides[KI], kSides[KJ], 8>, &direct_block<kSides[KI], kSides[KJ], 4>,
          &direct_block<kSides[KI], kSides[KJ], 1>};
}
template <int KI>
constexpr std::array<std::array<BlockFn, 3>, 4> kw_row() {
  return {cob_row<KI, 0>(), cob_row<KI, 1>(), cob_row<KI, 2>(), cob_row<KI, 3>()};
}
// [kh index][kw index][cob index]
constexpr std::array<std::array<std::array<BlockFn, 3>, 4>, 4> kBlockFns = {
    kw_row<0>(), kw_row<1>(), kw_row<2>(), kw_row<3>()};

struct Epilogue {
  const float* bias = nullptr;  // [c_out], nullable
  bool relu = false;
  bool accumulate = false;  // dst += result (no bias, no relu)
};

// One task: image `img`, group `g`, output channels [co_begin, co_end) of that group.
void direct_task(const ConvShape& s, const Layout& L, const float* src, const float* wei,
                 float* dst, const Epilogue& ep, int img, int g, int co_begin, int co_end) {
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, kk = s.kh * s.kw;
  float* x = detail::scratch(0, size_t(cin_g) * L.channel);
  float* out = detail::scratch(1, size_t(8) * L.lr);
  build_phases(s, L, src + (int64_t(img) * s.c_in + g * cin_g) * s.h_in * s.w_in, cin_g, x);

  const auto& fns = kBlockFns[kernel_index(s.kh)][kernel_index(s.kw)];
  for (int co = co_begin; co < co_end;) {
    const int left = co_end - co;
    const int ci_idx = left >= 8 ? 0 : left >= 4 ? 1 : 2;
    const int cob = kCobs[ci_idx];
    const int oc = g * cout_g + co;  // absolute output channel
    fns[ci_idx](x, cin_g, L.channel, L.off, wei + int64_t(oc) * cin_g * kk, cin_g * kk, L.lr, out);
    for (int c = 0; c < cob; ++c) {
      float* d = dst + (int64_t(img) * s.c_out + oc + c) * s.h_out * s.w_out;
      const float* o = out + c * L.lr;
      const float b = ep.bias ? ep.bias[oc + c] : 0.f;
      const int w_out = s.w_out;
      for (int oh = 0; oh < s.h_out; ++oh, d += w_out, o += L.wq) {
        if (ep.accumulate) {
#pragma omp simd
          for (int ow = 0; ow < w_out; ++ow) d[ow] += o[ow];
        } else if (ep.relu) {
#pragma omp simd
          for (int ow = 0; ow < w_out; ++ow) d[ow] = detail::relu(o[ow] + b);
        } else {
#pragma omp simd
          for (int ow = 0; ow < w_out; ++ow) d[ow] = o[ow] + b;
        }
      }
    }
    co += cob;
  }
}

void run_direct(const ConvShape& s, const float* src, const float* wei, float* dst,
                const Epilogue& ep) {
  const Layout L(s);
  const int cout_g = s.c_out / s.groups;
  const int64_t units = int64_t(s.n) * s.groups;
  const bool parallel = s.flops() >= 16 * detail::kParallelMinWork;
  // Whole (image, group) units when they keep every thread busy; otherwise blocks of 8 output
  // channels (each input is then prepared once per block). Either way every output element is
  // computed by the same instructions, so the result does not depend on the split.
  const int threads = parallel ? omp_get_max_threads() : 1;
  if (units >= threads || cout_g <= 8) {
    detail::parallel_for(units, parallel, [&](int64_t u) {
      direct_task(s, L, src, wei, dst, ep, int(u / s.groups), int(u % s.groups), 0, cout_g);
    });
    return;
  }
  const int blocks = (cout_g + 7) / 8;
  detail::parallel_for(units * blocks, parallel, [&](int64_t t) {
    const int64_t u = t / blocks;
    const int b = int(t % blocks);
    direct_task(s, L, src, wei, dst, ep, int(u / s.groups), int(u % s.groups), b * 8,
                std::min(cout_g, b * 8 + 8));
  });
}

// acc[t] += sum_q g[q] * x[q + off[t]] over q < lr, for the T = KH*KW taps: one image's
// contribution to one (output, input) channel pair's kernel gradient. Lane sums are added in a
// fixed order, in double.
template <int KH, int KW>
IOTNAS_NO_UNROLL_AND_JAM void wgrad_block(const float* x, const int* off, const float* g, int lr,
                                          double* acc) {
  constexpr int T = KH * KW;
  int o[T];
  for (int t = 0; t < T; ++t) o[t] = off[t];
  float part[T][kLanes] = {};
  for (int q0 = 0; q0 < lr; q0 += kLanes) {
    const float* gv = g + q0;
    for (int t = 0; t < T; ++t) {
      const float* xv = x + o[t] + q0;
#pragma omp simd
      for (int v = 0; v < kLanes; ++v) part[t][v] += gv[v] * xv[v];
    }
  }
  for (int t = 0; t < T; ++t) {
    double sum = 0;
    for (int v = 0; v < kLanes; ++v) sum += part[t][v];
    acc[t] += sum;
  }
}

using WgradFn = void (*)(const float*, const int*, const float*, int, double*);
template <int KI>
constexpr std::array<WgradFn, 4> wgrad_row() {
  return {&wgrad_block<kSides[KI], 1>, &wgrad_block<kSides[KI], 3>, &wgrad_block<kSides[KI], 5>,
          &wgrad_block<kSides[KI], 7>};
}
constexpr std::array<std::array<WgradFn, 4>, 4> kWgradFns = {wgrad_row<0>(), wgrad_row<1>(),
                                                             wgrad_row<2>(), wgrad_row<3>()};

}  // namespace

bool conv2d_direct_supports(const ConvShape& s) {
  return kernel_index(s.kh) >= 0 && kernel_index(s.kw) >= 0 && s.ph < s.kh && s.pw < s.kw;
}

void conv2d_fwd_direct(const ConvShape& s, const float* src, const float* wei, const float* bias,
                       float* dst, bool relu) {
  detail::check_conv_shape(s);
  IOTNAS_ASSERT(conv2d_direct_supports(s), "conv2d_fwd_direct: unsupported shape");
  run_direct(s, src, wei, dst, Epilogue{bias, relu, false});
}

namespace detail {

bool conv2d_bwd_data_direct_supports(const ConvShape& s) {
  return conv2d_direct_supports(s) && s.sh == 1 && s.sw == 1;
}

// Backward data of a stride-1 convolution is a stride-1 convolution of ddst with the kernel
// flipped in space and its in/out channels swapped (per group), padded by k - 1 - pad.
void conv2d_bwd_data_direct(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
                            bool accumulate) {
  check_conv_shape(s);
  IOTNAS_ASSERT(conv2d_bwd_data_direct_supports(s), "conv2d_bwd_data_direct: unsupported shape");
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, kk = s.kh * s.kw;
  std::vector<float> flipped(static_cast<size_t>(s.wei_size()));
  for (int g = 0; g < s.groups; ++g) {
    for (int co = 0; co < cout_g; ++co) {
      for (int ci = 0; ci < cin_g; ++ci) {
        const float* w = wei + (int64_t(g * cout_g + co) * cin_g + ci) * kk;
        float* f = flipped.data() + (int64_t(g * cin_g + ci) * cout_g + co) * kk;
        for (int t = 0; t < kk; ++t) f[kk - 1 - t] = w[t];
      }
    }
  }
  ConvShape t = s;
  t.c_in = s.c_out, t.h_in = s.h_out, t.w_in = s.w_out;
  t.c_out = s.c_in, t.h_out = s.h_in, t.w_out = s.w_in;
  t.ph = s.kh - 1 - s.ph, t.pw = s.kw - 1 - s.pw;
  run_direct(t, ddst, flipped.data(), dsrc, Epilogue{nullptr, false, accumulate});
}

// Kernel gradient from the phase planes of the input and the "wide" ddst (zero in the garbage
// columns): every tap is a dot product over contiguous runs. One task per group, looping over
// the batch in order, so the reduction does not depend on the thread count.
void conv2d_bwd_weights_direct(const ConvShape& s, const float* src, const float* ddst, float* dwei,
                               float* dbias) {
  check_conv_shape(s);
  IOTNAS_ASSERT(conv2d_direct_supports(s), "conv2d_bwd_weights_direct: unsupported shape");
  const Layout L(s);
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, kk = s.kh * s.kw;
  const WgradFn fn = kWgradFns[kernel_index(s.kh)][kernel_index(s.kw)];
  parallel_for(s.groups, s.flops() >= kParallelMinWork, [&](int64_t g) {
    std::vector<double> acc(size_t(cout_g) * cin_g * kk, 0.0), bsum(size_t(cout_g), 0.0);
    float* x = scratch(0, size_t(cin_g) * L.channel);
    float* gw = scratch(1, size_t(cout_g) * L.lr);
    for (int img = 0; img < s.n; ++img) {
      build_phases(s, L, src + (int64_t(img) * s.c_in + g * cin_g) * s.h_in * s.w_in, cin_g, x);
      for (int co = 0; co < cout_g; ++co) {
        const float* d = ddst + (int64_t(img) * s.c_out + g * cout_g + co) * s.h_out * s.w_out;
        float* row = gw + int64_t(co) * L.lr;
        std::fill(row, row + L.lr, 0.f);
        double b = 0;
        for (int oh = 0; oh < s.h_out; ++oh) {
          for (int ow = 0; ow < s.w_out; ++ow) {
            row[oh * L.wq + ow] = d[oh * s.w_out + ow];
            b += d[oh * s.w_out + ow];
          }
        }
        bsum[co] += b;
      }
      for (int co = 0; co < cout_g; ++co) {
        for (int ci = 0; ci < cin_g; ++ci) {
          fn(x + int64_t(ci) * L.channel, L.off, gw + int64_t(co) * L.lr, L.lr,
             acc.data() + (int64_t(co) * cin_g + ci) * kk);
        }
      }
    }
    float* dw = dwei + g * cout_g * cin_g * kk;
    for (size_t e = 0; e < acc.size(); ++e) dw[e] = float(acc[e]);
    if (dbias) {
      for (int co = 0; co < cout_g; ++co) dbias[g * cout_g + co] = float(bsum[co]);
    }
  });
}

}  // namespace detail
}  // namespace iotnas::kernels::portable
