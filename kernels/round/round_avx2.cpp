// f32_round__avx2: round_bits() (kernels/cuda/round_body.cuh) on 8 lanes. The last n % 8
// elements go through an 8-float stack buffer, so they run the same vector code.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/round/round.hpp"

namespace iotnas::kernels {

namespace {

struct Consts256 {
  __m256i drop, drop_mask, sub_base, inf_threshold_m1;
  explicit Consts256(const RoundParams& p)
      : drop(_mm256_set1_epi32(int(p.drop_bits))),
        drop_mask(_mm256_set1_epi32(int(p.drop_mask))),
        sub_base(_mm256_set1_epi32(p.sub_shift_base)),
        inf_threshold_m1(_mm256_set1_epi32(int(p.inf_threshold - 1))) {}
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

inline void round_partial(const float* src, float* dst, int64_t n, const Consts256& c) {
  alignas(32) float buf[8] = {};  // 0 < n < 8
  std::memcpy(buf, src, size_t(n) * sizeof(float));
  _mm256_store_si256(reinterpret_cast<__m256i*>(buf),
                     round8(_mm256_load_si256(reinterpret_cast<const __m256i*>(buf)), c));
  std::memcpy(dst, buf, size_t(n) * sizeof(float));
}

inline __m256i load8(const float* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

}  // namespace

void f32_round__avx2(const float* src, float* dst, int64_t n, const RoundParams& p) {
  const Consts256 c(p);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i x0 = load8(src + i), x1 = load8(src + i + 8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), round8(x0, c));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 8), round8(x1, c));
  }
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), round8(load8(src + i), c));
  if (i < n) round_partial(src + i, dst + i, n - i, c);
}

void f32_round_stream__avx2(const float* src, float* dst, int64_t n, const RoundParams& p) {
  if ((reinterpret_cast<uintptr_t>(dst) & 3) != 0) {  // not even float-aligned: no streaming
    f32_round__avx2(src, dst, n, p);
    return;
  }
  const Consts256 c(p);
  // Head up to a 32-byte aligned dst (non-temporal stores need it), then whole vectors.
  const int64_t head =
      std::min<int64_t>(n, ((32 - (reinterpret_cast<uintptr_t>(dst) & 31)) & 31) / 4);
  if (head > 0) round_partial(src, dst, head, c);
  int64_t i = head;
  for (; i + 8 <= n; i += 8)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), round8(load8(src + i), c));
  if (i < n) round_partial(src + i, dst + i, n - i, c);
  _mm_sfence();
}

}  // namespace iotnas::kernels
