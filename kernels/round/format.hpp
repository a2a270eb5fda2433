// T(w,t): a binary floating-point format with 1 sign bit, w exponent bits (1..8) and t trailing
// significand bits (1..23), IEEE 754 style (DESIGN.md section 4). Values are carried in float32;
// kernels/round/round.hpp rounds float32 values to a format.
//
// Encoding: exponent field E in [0, 2^w - 1], fraction F in [0, 2^t).
//   E = 0:             F * 2^(emin - t)           (zero and subnormals)
//   0 < E < 2^w - 1:   (2^t + F) * 2^(E - bias - t)
//   E = 2^w - 1:       Inf (F = 0) or NaN
// w = 1 has bias 0 and no normal numbers: its finite values are k * 2^(1 - t), k < 2^t.
//
// Plain constexpr C++ with no dependencies beyond the standard library, so CUDA code can include
// it.
#pragma once

#include <cstdint>
#include <string>

namespace iotnas::kernels {

// 2^e exactly, for |e| < 1023 (constexpr: no std::ldexp).
constexpr double exact_pow2(int e) {
  double v = 1.0;
  for (; e > 0; --e) v *= 2.0;
  for (; e < 0; ++e) v *= 0.5;
  return v;
}

struct FloatFormat {
  int w = 8;   // exponent bits, 1..8
  int t = 23;  // trailing significand bits, 1..23

  static constexpr int min_w = 1, max_w = 8, min_t = 1, max_t = 23;

  constexpr bool valid() const { return w >= min_w && w <= max_w && t >= min_t && t <= max_t; }
  constexpr int bits() const { return 1 + w + t; }  // storage bits per value
  constexpr int bias() const { return (1 << (w - 1)) - 1; }
  constexpr int emin() const { return 1 - bias(); }  // exponent of the smallest normal
  // Exponent of the largest finite value's binade. w = 1 (no normal numbers): emin.
  constexpr int emax() const { return w == 1 ? emin() : bias(); }

  // The derived values below are exact (each is representable in float32, except
  // overflow_threshold() = 2^128 for w = 8, hence double).
  // Largest finite value: (2 - 2^-t) * 2^bias; w = 1: (1 - 2^-t) * 2 = 2 - 2^(1-t).
  constexpr double largest_finite() const {
    return w == 1 ? 2.0 - exact_pow2(1 - t) : (2.0 - exact_pow2(-t)) * exact_pow2(bias());
  }
  // Smallest positive normal value 2^emin. For w = 1 (no normal numbers) this is 2, the value
  // at which rounding overflows to Inf.
  constexpr double min_normal() const { return exact_pow2(emin()); }
  // Smallest positive (subnormal) value 2^(emin - t).
  constexpr double min_subnormal() const { return exact_pow2(emin() - t); }
  // A value whose correctly rounded result (unbounded exponent) is >= this becomes Inf:
  // 2^(bias + 1). Values from largest_finite() + ulp/2 (the halfway point) upwards round to it.
  constexpr double overflow_threshold() const { return exact_pow2(bias() + 1); }

  friend constexpr bool operator==(FloatFormat a, FloatFormat b) = default;
};

inline constexpr FloatFormat format_half{5, 10};
inline constexpr FloatFormat format_bfloat16{8, 7};
inline constexpr FloatFormat format_float{8, 23};
inline constexpr int format_count = 184;  // w in 1..8 times t in 1..23

// Per-format constants for the rounding kernels, precomputed once (make_round_params in
// round.hpp) so that a call on a small chunk costs nothing extra. All fields are float32
// bit-pattern quantities; the algorithm is in kernels/cuda/round_body.cuh.
struct RoundParams {
  uint32_t drop_bits;      // 23 - t: low fraction bits cleared in the normal range
  uint32_t drop_mask;      // (1 << drop_bits) - 1; also truncates NaN payloads to t bits
  int32_t sub_shift_base;  // drop_bits + (float32 biased exponent of 2^emin) - 1
  uint32_t inf_threshold;  // float32 bits of 2^(bias + 1): results at or above become Inf
};

constexpr RoundParams round_params_unchecked(FloatFormat f) {
  const int drop = 23 - f.t;
  const int emin_biased = f.emin() + 127;  // 1 for w = 8, up to 128 for w = 1
  return RoundParams{uint32_t(drop), (uint32_t(1) << drop) - 1, drop + emin_biased - 1,
                     uint32_t(f.bias() + 128) << 23};
}

// "T(w,t)", for tables, plots and messages (host code).
inline std::string format_label(int w, int t) {
  return "T(" + std::to_string(w) + "," + std::to_string(t) + ")";
}

}  // namespace iotnas::kernels
