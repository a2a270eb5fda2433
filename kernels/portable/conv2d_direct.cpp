// Direct convolution for stride 1 and kernel sides in {1, 3, 5, 7}: the batch-1 latency path.
//
// The input plane is copied into a zero-padded scratch of row width wp = w_in + 2*pw. Output
// position q = oh*wp + ow of a "wide" output (wp columns per row, the last 2*pw of each row
// garbage) then reads input q + i*wp + j for tap (i, j): one contiguous run for every tap, so the
// innermost loop is a plain vector FMA over kVl consecutive positions, with no edge cases. A block
// of COB output channels shares each input load; COB x kVl accumulators stay in registers.
// The wide rows are cut to w_out (with bias, ReLU or accumulation) when stored.
#include <algorithm>
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

// out[c, q] (c < COB, q < lr, lr a multiple of kVl) = sum_{ci, i, j} w[c, ci, i, j] *
// x[ci, q + i*wp + j]; w rows are wstride apart; x planes are `plane` apart.
template <int KH, int KW, int COB>
void direct_block(const float* x, int cin, int plane, int wp, const float* w, int wstride, int lr,
                  float* out) {
  for (int q0 = 0; q0 < lr; q0 += kVl) {
    float acc[COB][kVl] = {};
    for (int ci = 0; ci < cin; ++ci) {
      const float* xc = x + int64_t(ci) * plane + q0;
      const float* wc = w + ci * KH * KW;
      for (int i = 0; i < KH; ++i) {
        for (int j = 0; j < KW; ++j) {
          const float* xv = xc + i * wp + j;
          for (int c = 0; c < COB; ++c) {
            const float wv = wc[c * wstride + i * KW + j];
#pragma omp simd
            for (int v = 0; v < kVl; ++v) acc[c][v] += wv * xv[v];
          }
        }
      }
    }
    for (int c = 0; c < COB; ++c) std::memcpy(out + c * lr + q0, acc[c], sizeof(acc[c]));
  }
}

using BlockFn = void (*)(const float*, int, int, int, const float*, int, int, float*);

constexpr int kernel_index(int k) {
  return k == 1 ? 0 : k == 3 ? 1 : k == 5 ? 2 : k == 7 ? 3 : -1;
}
constexpr int kSides[4] = {1, 3, 5, 7};
constexpr int kCobs[3] = {8, 4, 1};

template <int KI, int KJ, int CI>
constexpr BlockFn block_fn() {
  return &direct_block<kSides[KI], kSides[KJ], kCobs[CI]>;
}

// [kh index][kw index][cob index]
template <int KI, int KJ>
constexpr std::array<BlockFn, 3> cob_row() {
  return {block_fn<KI, KJ, 0>(), block_fn<KI, KJ, 1>(), block_fn<KI, KJ, 2>()};
}
template <int KI>
constexpr std::array<std::array<BlockFn, 3>, 4> kw_row() {
  return {cob_row<KI, 0>(), cob_row<KI, 1>(), cob_row<KI, 2>(), cob_row<KI, 3>()};
}
constexpr std::array<std::array<std::array<BlockFn, 3>, 4>, 4> kBlockFns = {
    kw_row<0>(), kw_row<1>(), kw_row<2>(), kw_row<3>()};

struct Epilogue {
  const float* bias = nullptr;  // [c_out], nullable
  bool relu = false;
  bool accumulate = false;  // dst += result (no bias, no relu)
};

// One task: image `img`, group `g`, output channels [co_begin, co_end) of that group.
void direct_task(const ConvShape& s, const float* src, const float* wei, float* dst,
                 const Epilogue& ep, int img, int g, int co_begin, int co_end) {
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  const int wp = s.w_in + 2 * s.pw, hp = s.h_in + 2 * s.ph;
  const int lr = (s.h_out * wp + kVl - 1) / kVl * kVl;
  const int plane = std::max(lr + (s.kh - 1) * wp + s.kw - 1, hp * wp);
  const int kk = s.kh * s.kw;

  float* x = detail::scratch(0, size_t(cin_g) * plane);
  float* out = detail::scratch(1, size_t(8) * lr);
  for (int ci = 0; ci < cin_g; ++ci) {
    float* xp = x + int64_t(ci) * plane;
    const float* sp = src + (int64_t(img) * s.c_in + g * cin_g + ci) * s.h_in * s.w_in;
    if (s.ph == 0 && s.pw == 0) {
      std::memcpy(xp, sp, sizeof(float) * s.h_in * s.w_in);
      std::fill(xp + s.h_in * s.w_in, xp + plane, 0.f);
      continue;
    }
    std::fill(xp, xp + plane, 0.f);
    for (int h = 0; h < s.h_in; ++h) {
      std::memcpy(xp + (h + s.ph) * wp + s.pw, sp + h * s.w_in, sizeof(float) * s.w_in);
    }
  }

  const auto& fns = kBlockFns[kernel_index(s.kh)][kernel_index(s.kw)];
  for (int co = co_begin; co < co_end;) {
    const int left = co_end - co;
    const int ci_idx = left >= 8 ? 0 : left >= 4 ? 1 : 2;
    const int cob = kCobs[ci_idx];
    const int oc = g * cout_g + co;  // absolute output channel
    fns[ci_idx](x, cin_g, plane, wp, wei + int64_t(oc) * cin_g * kk, cin_g * kk, lr, out);
    for (int c = 0; c < cob; ++c) {
      float* d = dst + (int64_t(img) * s.c_out + oc + c) * s.h_out * s.w_out;
      const float* o = out + c * lr;
      const float b = ep.bias ? ep.bias[oc + c] : 0.f;
      for (int oh = 0; oh < s.h_out; ++oh, d += s.w_out, o += wp) {
        if (ep.accumulate) {
#pragma omp simd
          for (int ow = 0; ow < s.w_out; ++ow) d[ow] += o[ow];
        } else if (ep.relu) {
#pragma omp simd
          for (int ow = 0; ow < s.w_out; ++ow) d[ow] = std::max(o[ow] + b, 0.f);
        } else {
#pragma omp simd
          for (int ow = 0; ow < s.w_out; ++ow) d[ow] = o[ow] + b;
        }
      }
    }
    co += cob;
  }
}

void run_direct(const ConvShape& s, const float* src, const float* wei, float* dst,
                const Epilogue& ep) {
  const int cout_g = s.c_out / s.groups;
  const int64_t units = int64_t(s.n) * s.groups;
  const bool parallel = s.flops() >= 16 * detail::kParallelMinWork;
  // Whole (image, group) units when they keep every thread busy; otherwise blocks of 8 output
  // channels (each input is then padded once per block). Either way every output element is
  // computed by the same instructions, so the result does not depend on the split.
  const int threads = parallel ? omp_get_max_threads() : 1;
  if (units >= threads || cout_g <= 8) {
    detail::parallel_for(units, parallel, [&](int64_t u) {
      direct_task(s, src, wei, dst, ep, int(u / s.groups), int(u % s.groups), 0, cout_g);
    });
    return;
  }
  const int blocks = (cout_g + 7) / 8;
  detail::parallel_for(units * blocks, parallel, [&](int64_t t) {
    const int64_t u = t / blocks;
    const int b = int(t % blocks);
    direct_task(s, src, wei, dst, ep, int(u / s.groups), int(u % s.groups), b * 8,
                std::min(cout_g, b * 8 + 8));
  });
}

}  // namespace

bool conv2d_direct_supports(const ConvShape& s) {
  return s.sh == 1 && s.sw == 1 && kernel_index(s.kh) >= 0 && kernel_index(s.kw) >= 0 &&
         s.ph < s.kh && s.pw < s.kw;
}

void conv2d_fwd_direct(const ConvShape& s, const float* src, const float* wei, const float* bias,
                       float* dst, bool relu) {
  detail::check_conv_shape(s);
  IOTNAS_ASSERT(conv2d_direct_supports(s), "conv2d_fwd_direct: unsupported shape");
  run_direct(s, src, wei, dst, Epilogue{bias, relu, false});
}

namespace detail {

// Backward data of a stride-1 convolution is a stride-1 convolution of ddst with the kernel
// flipped in space and its in/out channels swapped (per group), padded by k - 1 - pad.
void conv2d_bwd_data_direct(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
                            bool accumulate) {
  check_conv_shape(s);
  IOTNAS_ASSERT(conv2d_direct_supports(s), "conv2d_bwd_data_direct: unsupported shape");
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, kk = s.kh * s.kw;
  std::vector<float> flipped(size_t(s.wei_size()));
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

}  // namespace detail
}  // namespace iotnas::kernels::portable
