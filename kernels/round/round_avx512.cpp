// f32_round__avx512: round_bits() (kernels/cuda/round_body.cuh) on 16 lanes (round16), with a
// shortcut for pairs of vectors that hold only zeros, normal-range values and Infs - the common
// case - that needs about half the instructions (round16_normal), and F16C for T(5,10). Heads
// and tails use masked loads and stores, so every length and alignment runs vector code.
#include <immintrin.h>

// GCC 12 warns inside its own headers (_mm512_undefined_epi32's self-initialisation) wherever
// these intrinsics inline; the warning is a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstdint>

#include "kernels/round/round.hpp"

namespace iotnas::kernels {

namespace {

struct Consts512 {
  __m512i drop, drop_mask, sub_base, inf_threshold;
  __m512i half_m1, lsb_one, full_below;  // the normal-range path (round16_normal)
  __m128i drop_count;
  explicit Consts512(const RoundParams& p)
      : drop(_mm512_set1_epi32(int(p.drop_bits))),
        drop_mask(_mm512_set1_epi32(int(p.drop_mask))),
        sub_base(_mm512_set1_epi32(p.sub_shift_base)),
        inf_threshold(_mm512_set1_epi32(int(p.inf_threshold))),
        half_m1(_mm512_set1_epi32(int(p.drop_mask >> 1))),
        lsb_one(_mm512_set1_epi32(p.drop_bits != 0 ? 1 : 0)),
        full_below(_mm512_set1_epi32(int(normal_path_limit(p)))),
        drop_count(_mm_cvtsi32_si128(int(p.drop_bits))) {}
  // Magnitudes 1..limit (minus one) need the full path: the format's subnormal range. For w = 8
  // the normal path also rounds float32 subnormals right (their encoding is linear), so none.
  static uint32_t normal_path_limit(const RoundParams& p) {
    const int emin_biased = p.sub_shift_base - int(p.drop_bits) + 1;
    return emin_biased == 1 ? 0u : (uint32_t(emin_biased) << 23) - 1u;
  }
};

// vpternlogd truth tables over (A, B, C) = (0xf0, 0xcc, 0xaa).
constexpr int tl_a_and_b_and_c = 0x80;
constexpr int tl_a_or_b_andnot_c = 0x54;  // (A | B) & ~C
constexpr int tl_a_or_b_and_c = 0xf8;     // A | (B & C)

inline __m512i round16(__m512i x, const Consts512& c) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i min_normal = _mm512_set1_epi32(0x00800000);
  const __m512i inf = _mm512_set1_epi32(0x7f800000);
  const __m512i a = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
  const __m512i em = _mm512_and_si512(a, inf);
  const __m512i base = _mm512_sub_epi32(_mm512_max_epu32(em, min_normal), min_normal);
  const __m512i sig = _mm512_sub_epi32(a, base);
  // No clamp at 25 as in the scalar body: vpsllvd/vpsrlvd give 0 for counts >= 32, which makes
  // low all ones and the rounded significand 0 - the same result.
  const __m512i s =
      _mm512_max_epi32(_mm512_sub_epi32(c.sub_base, _mm512_srli_epi32(base, 23)), c.drop);
  const __m512i low = _mm512_sub_epi32(_mm512_sllv_epi32(one, s), one);
  const __m512i lsb =
      _mm512_ternarylogic_epi32(_mm512_srlv_epi32(sig, s), low, one, tl_a_and_b_and_c);
  const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(sig, _mm512_srli_epi32(low, 1)), lsb);
  const __m512i rs = _mm512_andnot_si512(low, sum);
  __m512i r = _mm512_maskz_add_epi32(_mm512_test_epi32_mask(rs, rs), base, rs);
  r = _mm512_mask_mov_epi32(r, _mm512_cmpge_epu32_mask(r, c.inf_threshold), inf);
  const __m512i nan =
      _mm512_ternarylogic_epi32(a, _mm512_set1_epi32(0x00400000), c.drop_mask, tl_a_or_b_andnot_c);
  r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(a, inf), nan);
  return _mm512_ternarylogic_epi32(r, x, _mm512_set1_epi32(int(0x80000000u)), tl_a_or_b_and_c);
}

// Lanes of a (magnitudes) that need round16: NaNs, and non-zero values below 2^emin.
inline __mmask16 full_lanes(__m512i a, const Consts512& c) {
  const __m512i nonzero_minus_one = _mm512_sub_epi32(a, _mm512_set1_epi32(1));
  return _mm512_cmplt_epu32_mask(nonzero_minus_one, c.full_below) |
         _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7f800000));
}

// round16 for vectors without full_lanes(): in the normal range the spacing is a fixed
// 2^(23-t) of the bit pattern, so rounding is one add and a mask on the pattern (carries into
// the exponent, and up to Inf, come out right). About half the instructions of round16.
inline __m512i round16_normal(__m512i x, const Consts512& c) {
  const __m512i a = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
  const __m512i lsb = _mm512_and_si512(_mm512_srl_epi32(a, c.drop_count), c.lsb_one);
  const __m512i r0 =
      _mm512_andnot_si512(c.drop_mask, _mm512_add_epi32(_mm512_add_epi32(a, c.half_m1), lsb));
  const __m512i r = _mm512_mask_mov_epi32(r0, _mm512_cmpge_epu32_mask(r0, c.inf_threshold),
                                          _mm512_set1_epi32(0x7f800000));
  return _mm512_ternarylogic_epi32(r, x, _mm512_set1_epi32(int(0x80000000u)), tl_a_or_b_and_c);
}

// Two vectors: the normal-range path when both allow it (one predictable branch per 32 values).
inline void round32(const float* src, __m512i& y0, __m512i& y1, const Consts512& c) {
  const __m512i x0 = _mm512_loadu_si512(src), x1 = _mm512_loadu_si512(src + 16);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  if ((full_lanes(_mm512_and_si512(x0, abs_mask), c) |
       full_lanes(_mm512_and_si512(x1, abs_mask), c)) != 0) {
    y0 = round16(x0, c);
    y1 = round16(x1, c);
  } else {
    y0 = round16_normal(x0, c);
    y1 = round16_normal(x1, c);
  }
}

// T(5,10) is what F16C computes (vcvtps2ph with round-to-nearest-even, then vcvtph2ps): equal to
// round_bits() on all 2^32 inputs, NaN payloads included (tests/kernels/round_hardware_test.cpp).
// MXCSR's DAZ/FTZ cannot change it: float32 subnormal inputs round to +-0 in half either way, and
// every half value is a normal float32 (tested too). Two instructions per 16 values.
inline bool is_half(const RoundParams& p) {
  constexpr RoundParams h = round_params_unchecked(format_half);
  return p.drop_bits == h.drop_bits && p.sub_shift_base == h.sub_shift_base;
}

inline __m512i half16(__m512i x) {
  const __m256i h =
      _mm512_cvtps_ph(_mm512_castsi512_ps(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_castps_si512(_mm512_cvtph_ps(h));
}

template <bool stream>
inline void store16(float* dst, __m512i y) {
  if constexpr (stream)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), y);
  else
    _mm512_storeu_si512(dst, y);
}

// The loop shared by every kernel here: pair(src, y0, y1) on 32 values at a time, one(x) on a
// masked vector for the rest (and, when streaming, on the head up to a 64-byte aligned dst).
template <bool stream, typename Pair, typename One>
inline void drive(const float* src, float* dst, int64_t n, Pair pair, One one) {
  auto masked = [&](int64_t at, int64_t count) {  // 0 < count <= 16
    const __mmask16 m = __mmask16((1u << count) - 1u);
    _mm512_mask_storeu_epi32(dst + at, m, one(_mm512_maskz_loadu_epi32(m, src + at)));
  };
  int64_t i = 0;
  if constexpr (stream) {
    i = std::min<int64_t>(n, ((64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63) / 4);
    if (i > 0) masked(0, i);
  }
  for (; i + 32 <= n; i += 32) {
    __m512i y0, y1;
    pair(src + i, y0, y1);
    store16<stream>(dst + i, y0);
    store16<stream>(dst + i + 16, y1);
  }
  for (; i < n; i += 16) masked(i, std::min<int64_t>(16, n - i));
  if constexpr (stream) _mm_sfence();
}

template <bool stream>
void run(const float* src, float* dst, int64_t n, const RoundParams& p) {
  if (is_half(p)) {
    drive<stream>(
        src, dst, n,
        [](const float* s, __m512i& y0, __m512i& y1) {
          y0 = half16(_mm512_loadu_si512(s));
          y1 = half16(_mm512_loadu_si512(s + 16));
        },
        half16);
    return;
  }
  const Consts512 c(p);
  drive<stream>(
      src, dst, n, [&c](const float* s, __m512i& y0, __m512i& y1) { round32(s, y0, y1, c); },
      [&c](__m512i x) { return round16(x, c); });
}

}  // namespace

void f32_round__avx512(const float* src, float* dst, int64_t n, const RoundParams& p) {
  run<false>(src, dst, n, p);
}

void f32_round_stream__avx512(const float* src, float* dst, int64_t n, const RoundParams& p) {
  if ((reinterpret_cast<uintptr_t>(dst) & 3) != 0) {  // not even float-aligned: no streaming
    run<false>(src, dst, n, p);
    return;
  }
  run<true>(src, dst, n, p);
}

}  // namespace iotnas::kernels
