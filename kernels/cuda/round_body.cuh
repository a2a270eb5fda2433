// The per-element rounding body shared by the CUDA kernel (round.cu) and the portable CPU loop
// (f32_round__scalar): float32 bits in, the bits of the value rounded to T(w,t) out. Branch-free;
// equal bit for bit to the specification, round_to_format() in kernels/round/round.hpp (tests
// check every format). The AVX2, AVX-512 and NEON kernels are lane-wise copies of this function.
//
// Compiles as plain C++ when not under nvcc (the qualifiers are defined away).
#pragma once

#include <bit>
#include <cstdint>

#include "kernels/round/format.hpp"

#if defined(__CUDACC__)
#define IOTNAS_HOST_DEVICE __host__ __device__
#else
#define IOTNAS_HOST_DEVICE
#endif

namespace iotnas::kernels {

// Every finite float32 magnitude a = E:F (biased exponent E, fraction F) is
//   a = base + sig,  base = (max(E,1) - 1) << 23,  sig = F | (E > 0) << 23,
// and |x| = sig * 2^(max(E,1) - 150). T(w,t)'s spacing at |x| is 2^s of those units with
//   s = max(23 - t, 23 - t + E_min - max(E,1))   (E_min: float32 biased exponent of 2^emin),
// so rounding sig to a multiple of 2^s (ties to even) and adding base back gives the result's bit
// pattern, also when the rounding carries into the next binade (sig becomes 2^24) or up to Inf.
// For s >= 25 every sig rounds to 0.
IOTNAS_HOST_DEVICE inline uint32_t round_bits(uint32_t x, const RoundParams& p) {
  const uint32_t a = x & 0x7fffffffu;
  const uint32_t em = a & 0x7f800000u;
  const uint32_t base = (em > 0x00800000u ? em : 0x00800000u) - 0x00800000u;
  const uint32_t sig = a - base;
  int32_t s = p.sub_shift_base - int32_t(base >> 23);
  s = s > int32_t(p.drop_bits) ? s : int32_t(p.drop_bits);
  s = s < 25 ? s : 25;  // keeps the shifts defined; 25 already rounds everything to 0
  const uint32_t low = (1u << s) - 1u;
  const uint32_t lsb = (sig >> s) & low & 1u;  // the kept part's last bit (none when s = 0)
  const uint32_t rs = (sig + (low >> 1) + lsb) & ~low;
  uint32_t r = rs != 0 ? base + rs : 0u;
  r = r >= p.inf_threshold ? 0x7f800000u : r;
  // NaN: quiet, payload cut to t bits. Inf already came out as Inf above.
  r = a > 0x7f800000u ? (a | 0x00400000u) & ~p.drop_mask : r;
  return (x & 0x80000000u) | r;
}

IOTNAS_HOST_DEVICE inline float round_element(float x, const RoundParams& p) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(round_bits(__float_as_uint(x), p));
#else
  return std::bit_cast<float>(round_bits(std::bit_cast<uint32_t>(x), p));
#endif
}

}  // namespace iotnas::kernels
