// Rounding float32 values to a reduced-precision format T(w,t) (kernels/round/format.hpp).
//
// Semantics (DESIGN.md section 4): round to nearest, ties to even; subnormals kept; signed zero
// kept; +-Inf stay; NaN stays NaN and comes out quiet, its payload cut to t bits (the sign is
// kept); a value whose correctly rounded result (unbounded exponent) is >= 2^(bias+1) becomes
// +-Inf. T(8,23) returns every float32 unchanged (subnormals too), NaNs aside, which come out
// quiet.
//
// round_to_format() is the specification. Every array kernel below equals it bit for bit; the
// variants differ only in the instructions they use.
//
// Array-kernel contract (every RoundKernel): dst[i] = round(src[i]) for 0 <= i < n; n >= 0;
// no alignment needed; src == dst (in place) is allowed, any other overlap is not; single
// threaded; no allocation; the result does not depend on the floating-point environment
// (integer arithmetic only). Cheap enough per call to be run on a few-KB chunk in a producer's
// epilogue while the chunk is in cache.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/round/format.hpp"

namespace iotnas::kernels {

// The specification: x rounded to T(f.w, f.t), carried in float32. f must be valid.
float round_to_format(float x, FloatFormat f);

// Throws iotnas::Error naming w and t when f is not in the 184-type grid.
void check_format(FloatFormat f);
// Per-format constants for the array kernels; throws like check_format.
RoundParams make_round_params(FloatFormat f);

using RoundKernel = void (*)(const float* src, float* dst, int64_t n, const RoundParams& p);

// One row per implementation, fastest first, scalar last (always supported). Dispatch, tests and
// benchmarks all iterate this one table.
struct RoundVariant {
  const char* name;       // <dtype>_<op>__<isa>, e.g. "f32_round__avx512"
  bool (*supported)();    // whether this CPU can run it
  RoundKernel fn;         // ordinary stores: the result stays in cache for the next op
  RoundKernel stream_fn;  // non-temporal stores where the ISA has them (same results): for large
                          // arrays not read again soon; equal to fn otherwise
};
std::span<const RoundVariant> round_variants();
// The first supported row of round_variants(), chosen once.
const RoundVariant& round_variant();

// dst[i] = round(src[i]) with the dispatched kernel (contract above). src may equal dst.
void round_array(const float* src, float* dst, int64_t n, const RoundParams& p);
// The same, building the constants on each call (prefer the RoundParams overload in loops).
void round_array(const float* src, float* dst, int64_t n, FloatFormat f);
// For big arrays (weights, whole tensors): splits [0, n) over the OpenMP threads and writes with
// non-temporal stores when the array is larger than the caches; plain round_array below 64 Ki
// elements. Same results as round_array; call it from outside a parallel region.
void round_array_parallel(const float* src, float* dst, int64_t n, const RoundParams& p);

// The variants (use them through round_variants(); declared here for benchmarks and tests).
void f32_round__scalar(const float* src, float* dst, int64_t n, const RoundParams& p);
#if defined(__x86_64__)
void f32_round__avx2(const float* src, float* dst, int64_t n, const RoundParams& p);
void f32_round_stream__avx2(const float* src, float* dst, int64_t n, const RoundParams& p);
void f32_round__avx512(const float* src, float* dst, int64_t n, const RoundParams& p);
void f32_round_stream__avx512(const float* src, float* dst, int64_t n, const RoundParams& p);
#endif
#if defined(__aarch64__)
void f32_round__neon(const float* src, float* dst, int64_t n, const RoundParams& p);
#endif

}  // namespace iotnas::kernels
