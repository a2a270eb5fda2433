#include "kernels/round/round.hpp"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>

#include "kernels/base/error.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/cuda/round_body.cuh"

namespace iotnas::kernels {

float round_to_format(float x, FloatFormat f) {
  IOTNAS_ASSERT(f.valid(), "T(" + std::to_string(f.w) + "," + std::to_string(f.t) + ")");
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t sign = bits & 0x80000000u;
  const uint32_t mag = bits & 0x7fffffffu;
  if (mag >= 0x7f800000u) {
    if (mag == 0x7f800000u) return x;  // +-Inf
    // NaN: set the quiet bit (the fraction's top bit, kept by every t >= 1), keep the top t
    // fraction bits of the payload, keep the sign.
    const uint32_t cut = (1u << (23 - f.t)) - 1u;
    return std::bit_cast<float>(sign | ((mag | 0x00400000u) & ~cut));
  }
  // |x| = sig * 2^(e - 23), with sig < 2^24 (the implicit bit included for normal inputs).
  const int biased = int(mag >> 23);
  const uint64_t sig = (mag & 0x007fffffu) | (biased != 0 ? 0x00800000u : 0u);
  const int e = std::max(biased, 1) - 127;
  // T(w,t)'s spacing at |x| is 2^(max(e, emin) - t): the subnormal range keeps the spacing of the
  // smallest binade. In units of 2^(e - 23) that is 2^shift, shift >= 0.
  const int spacing_exp = std::max(e, f.emin()) - f.t;
  const int shift = std::min(spacing_exp - (e - 23), 40);  // >= 25: sig < 2^24 rounds to 0
  uint64_t q = sig >> shift;
  const uint64_t rem = sig - (q << shift);
  const uint64_t half = (uint64_t(1) << shift) >> 1;
  if (rem > half || (rem == half && rem != 0 && (q & 1) != 0)) ++q;  // nearest, ties to even
  // The result is q * 2^spacing_exp (exact in double), Inf from 2^(bias+1) up.
  if (q == 0) return std::bit_cast<float>(sign);
  const double value = std::ldexp(double(q), spacing_exp);
  if (value >= f.overflow_threshold()) return std::bit_cast<float>(sign | 0x7f800000u);
  return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(float(value)));  // exact
}

void check_format(FloatFormat f) {
  if (f.w < FloatFormat::min_w || f.w > FloatFormat::max_w)
    fail("float format T(", f.w, ",", f.t, "): exponent bits w=", f.w, " is out of range; use ",
         FloatFormat::min_w, "..", FloatFormat::max_w);
  if (f.t < FloatFormat::min_t || f.t > FloatFormat::max_t)
    fail("float format T(", f.w, ",", f.t, "): trailing significand bits t=", f.t,
         " is out of range; use ", FloatFormat::min_t, "..", FloatFormat::max_t);
}

RoundParams make_round_params(FloatFormat f) {
  check_format(f);
  return round_params_unchecked(f);
}

void f32_round__scalar(const float* src, float* dst, int64_t n, const RoundParams& p) {
  const RoundParams q = p;  // a local copy: stores to dst cannot alias it
  for (int64_t i = 0; i < n; ++i) dst[i] = round_element(src[i], q);
}

namespace {

bool always() {
  return true;
}

const RoundVariant variants[] = {
#if defined(__x86_64__)
    {"f32_round__avx512", [] { return cpu_features().has_avx512() && cpu_features().f16c; },
     f32_round__avx512, f32_round_stream__avx512},
    {"f32_round__avx2", [] { return cpu_features().has_avx2(); }, f32_round__avx2,
     f32_round_stream__avx2},
#endif
#if defined(__aarch64__)
    {"f32_round__neon", always, f32_round__neon, f32_round__neon},
#endif
    {"f32_round__scalar", always, f32_round__scalar, f32_round__scalar},
};

const RoundVariant& choose() {
  for (const auto& v : variants)
    if (v.supported()) return v;
  IOTNAS_ASSERT(false, "the scalar rounding variant is always supported");
  return variants[0];
}

// Array sizes (elements) from which round_array_parallel uses threads and non-temporal stores.
constexpr int64_t parallel_min = int64_t(1) << 16;
constexpr int64_t stream_min = int64_t(1) << 23;  // 32 MiB per array: past the last-level cache

}  // namespace

std::span<const RoundVariant> round_variants() {
  return variants;
}

const RoundVariant& round_variant() {
  static const RoundVariant& v = choose();
  return v;
}

void round_array(const float* src, float* dst, int64_t n, const RoundParams& p) {
  static const RoundKernel fn = round_variant().fn;
  fn(src, dst, n, p);
}

void round_array(const float* src, float* dst, int64_t n, FloatFormat f) {
  round_array(src, dst, n, make_round_params(f));
}

void round_array_parallel(const float* src, float* dst, int64_t n, const RoundParams& p) {
  if (n < parallel_min) {
    round_array(src, dst, n, p);
    return;
  }
  const RoundKernel fn = n >= stream_min ? round_variant().stream_fn : round_variant().fn;
  // fn is a plain array kernel that allocates nothing and throws nothing: no exception can leave
  // the region.
#pragma omp parallel
  {
    // Contiguous slices whose boundaries fall on 64-byte multiples of the array.
    const int64_t parts = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t slice = (n / parts + 15) / 16 * 16;
    const int64_t begin = std::min(n, me * slice), end = std::min(n, begin + slice);
    fn(src + begin, dst + begin, end - begin, p);
  }
}

}  // namespace iotnas::kernels
