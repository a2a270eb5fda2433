// f32_round__avx512: round_bits() (kernels/cuda/round_body.cuh) on 16 lanes. Heads and tails use
// masked loads and stores, so every length and alignment runs the same vector code.
#include <immintrin.h>

// GCC 12 warns inside its own headers (_mm512_undefined_epi32's self-initialisation) wherever
// these intrinsics inline; the warning is a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdint>

#include "kernels/round/round.hpp"

namespace iotnas::kernels {

namespace {

struct Consts512 {
  __m512i drop, drop_mask, sub_base, inf_threshold;
  explicit Consts512(const RoundParams& p)
      : drop(_mm512_set1_epi32(int(p.drop_bits))),
        drop_mask(_mm512_set1_epi32(int(p.drop_mask))),
        sub_base(_mm512_set1_epi32(p.sub_shift_base)),
        inf_threshold(_mm512_set1_epi32(int(p.inf_threshold))) {}
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

inline void round_masked(const float* src, float* dst, int64_t n, const Consts512& c) {
  const __mmask16 m = __mmask16((1u << n) - 1u);  // 0 < n <= 16
  const __m512i x = _mm512_maskz_loadu_epi32(m, src);
  _mm512_mask_storeu_epi32(dst, m, round16(x, c));
}

}  // namespace

void f32_round__avx512(const float* src, float* dst, int64_t n, const RoundParams& p) {
  const Consts512 c(p);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i x0 = _mm512_loadu_si512(src + i);
    const __m512i x1 = _mm512_loadu_si512(src + i + 16);
    _mm512_storeu_si512(dst + i, round16(x0, c));
    _mm512_storeu_si512(dst + i + 16, round16(x1, c));
  }
  for (; i < n; i += 16) round_masked(src + i, dst + i, std::min<int64_t>(16, n - i), c);
}

void f32_round_stream__avx512(const float* src, float* dst, int64_t n, const RoundParams& p) {
  if ((reinterpret_cast<uintptr_t>(dst) & 3) != 0) {  // not even float-aligned: no streaming
    f32_round__avx512(src, dst, n, p);
    return;
  }
  const Consts512 c(p);
  // Masked head up to a 64-byte aligned dst (non-temporal stores need it), then whole vectors.
  const int64_t head =
      std::min<int64_t>(n, ((64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63) / 4);
  if (head > 0) round_masked(src, dst, head, c);
  int64_t i = head;
  for (; i + 32 <= n; i += 32) {
    const __m512i x0 = _mm512_loadu_si512(src + i);
    const __m512i x1 = _mm512_loadu_si512(src + i + 16);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), round16(x0, c));
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i + 16), round16(x1, c));
  }
  for (; i < n; i += 16) round_masked(src + i, dst + i, std::min<int64_t>(16, n - i), c);
  _mm_sfence();
}

}  // namespace iotnas::kernels
