// f32_round__avx2: round_bits() (kernels/cuda/round_body.cuh) on 8 lanes (round8), with the
// normal-range shortcut of round_avx512.cpp for pairs of vectors that allow it, and F16C for
// T(5,10). The last n % 8 elements go through an 8-float stack buffer, so they run vector code.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/round/round.hpp"

namespace iotnas::kernels {

namespace {

struct Consts256 {
  __m256i drop, drop_mask, sub_base, inf_threshold_m1;
  __m256i half_m1, lsb_one, full_below_biased;  // the normal-range path (round8_normal)
  __m128i drop_count;
  explicit Consts256(const RoundParams& p)
      : drop(_mm256_set1_epi32(int(p.drop_bits))),
        drop_mask(_mm256_set1_epi32(int(p.drop_mask))),
        sub_base(_mm256_set1_epi32(p.sub_shift_base)),
        inf_threshold_m1(_mm256_set1_epi32(int(p.inf_threshold - 1))),
        half_m1(_mm256_set1_epi32(int(p.drop_mask >> 1))),
        lsb_one(_mm256_set1_epi32(p.drop_bits != 0 ? 1 : 0)),
        full_below_biased(_mm256_set1_epi32(int(normal_path_limit(p) ^ 0x80000000u))),
        drop_count(_mm_cvtsi32_si128(int(p.drop_bits))) {}
  // As in round_avx512.cpp: magnitudes 1..limit (minus one) need the full path; none for w = 8.
  static uint32_t normal_path_limit(const RoundParams& p) {
    const int emin_biased = p.sub_shift_base - int(p.drop_bits) + 1;
    return emin_biased == 1 ? 0u : (uint32_t(emin_biased) << 23) - 1u;
  }
};

inline __m256i round8(__m256i x, const Consts256& c) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i min_normal = _mm256_set1_epi32(0x00800000);
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  const __m256i a = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
  const __m256i em = _mm256_and_si256(a, inf);
  const __m256i base = _mm256_sub_epi32(_mm256_max_epu32(em, min_normal), min_normal);
  const __m256i sig = _mm256_sub_epi32(a, base);
  // Shift counts >= 32 give 0 (see round_avx512.cpp): no clamp needed.
  const __m256i s =
      _mm256_max_epi32(_mm256_sub_epi32(c.sub_base, _mm256_srli_epi32(base, 23)), c.drop);
  const __m256i low = _mm256_sub_epi32(_mm256_sllv_epi32(one, s), one);
  const __m256i lsb = _mm256_and_si256(_mm256_and_si256(_mm256_srlv_epi32(sig, s), low), one);
  const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(sig, _mm256_srli_epi32(low, 1)), lsb);
  const __m256i rs = _mm256_andnot_si256(low, sum);
  const __m256i zero = _mm256_cmpeq_epi32(rs, _mm256_setzero_si256());
  __m256i r = _mm256_andnot_si256(zero, _mm256_add_epi32(base, rs));
  // Signed compares are safe: finite results are <= 0x7f800000; NaN lanes are replaced below.
  r = _mm256_blendv_epi8(r, inf, _mm256_cmpgt_epi32(r, c.inf_threshold_m1));
  const __m256i nan =
      _mm256_andnot_si256(c.drop_mask, _mm256_or_si256(a, _mm256_set1_epi32(0x00400000)));
  r = _mm256_blendv_epi8(r, nan, _mm256_cmpgt_epi32(a, inf));
  return _mm256_or_si256(r, _mm256_and_si256(x, _mm256_set1_epi32(int(0x80000000u))));
}

// All-ones lanes of a (magnitudes) that need round8: NaNs, and non-zero values below 2^emin.
// (Unsigned a - 1 < limit as a signed compare of both sides with the top bit flipped.)
inline __m256i full_lanes(__m256i a, const Consts256& c) {
  const __m256i nonzero_minus_one_biased = _mm256_xor_si256(
      _mm256_sub_epi32(a, _mm256_set1_epi32(1)), _mm256_set1_epi32(int(0x80000000u)));
  return _mm256_or_si256(_mm256_cmpgt_epi32(c.full_below_biased, nonzero_minus_one_biased),
                         _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000)));
}

// round8 for vectors without full_lanes(): one add and a mask on the bit pattern (see
// round16_normal in round_avx512.cpp).
inline __m256i round8_normal(__m256i x, const Consts256& c) {
  const __m256i a = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
  const __m256i lsb = _mm256_and_si256(_mm256_srl_epi32(a, c.drop_count), c.lsb_one);
  __m256i r =
      _mm256_andnot_si256(c.drop_mask, _mm256_add_epi32(_mm256_add_epi32(a, c.half_m1), lsb));
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7f800000),
                         _mm256_cmpgt_epi32(r, c.inf_threshold_m1));
  return _mm256_or_si256(r, _mm256_and_si256(x, _mm256_set1_epi32(int(0x80000000u))));
}

inline __m256i load8(const float* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Two vectors: the normal-range path when both allow it (one predictable branch per 16 values).
inline void round16_pair(const float* src, __m256i& y0, __m256i& y1, const Consts256& c) {
  const __m256i x0 = load8(src), x1 = load8(src + 8);
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i full = _mm256_or_si256(full_lanes(_mm256_and_si256(x0, abs_mask), c),
                                       full_lanes(_mm256_and_si256(x1, abs_mask), c));
  if (!_mm256_testz_si256(full, full)) {
    y0 = round8(x0, c);
    y1 = round8(x1, c);
  } else {
    y0 = round8_normal(x0, c);
    y1 = round8_normal(x1, c);
  }
}

// T(5,10) through F16C, as in round_avx512.cpp (the reasons it is exact are given there).
inline bool is_half(const RoundParams& p) {
  constexpr RoundParams h = round_params_unchecked(format_half);
  return p.drop_bits == h.drop_bits && p.sub_shift_base == h.sub_shift_base;
}

inline __m256i half8(__m256i x) {
  const __m128i h =
      _mm256_cvtps_ph(_mm256_castsi256_ps(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_castps_si256(_mm256_cvtph_ps(h));
}

template <bool stream>
inline void store8(float* dst, __m256i y) {
  if constexpr (stream)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst), y);
  else
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), y);
}

// The loop shared by every kernel here: pair(src, y0, y1) on 16 values at a time, one(x) on
// single vectors after that, and on an 8-float stack buffer for the last n % 8 values (and, when
// streaming, for the head up to a 32-byte aligned dst).
template <bool stream, typename Pair, typename One>
inline void drive(const float* src, float* dst, int64_t n, Pair pair, One one) {
  auto partial = [&](int64_t at, int64_t count) {  // 0 < count < 8
    alignas(32) float buf[8] = {};
    std::memcpy(buf, src + at, size_t(count) * sizeof(float));
    _mm256_store_si256(reinterpret_cast<__m256i*>(buf), one(load8(buf)));
    std::memcpy(dst + at, buf, size_t(count) * sizeof(float));
  };
  int64_t i = 0;
  if constexpr (stream) {
    i = std::min<int64_t>(n, ((32 - (reinterpret_cast<uintptr_t>(dst) & 31)) & 31) / 4);
    if (i > 0) partial(0, i);
  }
  for (; i + 16 <= n; i += 16) {
    __m256i y0, y1;
    pair(src + i, y0, y1);
    store8<stream>(dst + i, y0);
    store8<stream>(dst + i + 8, y1);
  }
  for (; i + 8 <= n; i += 8) store8<stream>(dst + i, one(load8(src + i)));
  if (i < n) partial(i, n - i);
  if constexpr (stream) _mm_sfence();
}

template <bool stream>
void run(const float* src, float* dst, int64_t n, const RoundParams& p) {
  if (is_half(p)) {
    drive<stream>(
        src, dst, n,
        [](const float* s, __m256i& y0, __m256i& y1) {
          y0 = half8(load8(s));
          y1 = half8(load8(s + 8));
        },
        half8);
    return;
  }
  const Consts256 c(p);
  drive<stream>(
      src, dst, n, [&c](const float* s, __m256i& y0, __m256i& y1) { round16_pair(s, y0, y1, c); },
      [&c](__m256i x) { return round8(x, c); });
}

}  // namespace

void f32_round__avx2(const float* src, float* dst, int64_t n, const RoundParams& p) {
  run<false>(src, dst, n, p);
}

void f32_round_stream__avx2(const float* src, float* dst, int64_t n, const RoundParams& p) {
  if ((reinterpret_cast<uintptr_t>(dst) & 3) != 0) {  // not even float-aligned: no streaming
    run<false>(src, dst, n, p);
    return;
  }
  run<true>(src, dst, n, p);
}

}  // namespace iotnas::kernels
