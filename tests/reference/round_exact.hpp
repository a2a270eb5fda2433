// An independent rounding oracle for T(w,t), written from the IEEE 754 definition and sharing no
// code with kernels/round: the finite encodings k = E:F of a format are listed in increasing
// order of value, so rounding |x| is a binary search for the two neighbouring encodings and an
// exact comparison of distances (long double holds every value and distance exactly), ties to
// the even encoding. Above the largest finite value the next neighbour is 2^(bias+1) (the value an
// unbounded exponent would give), and a result there is Inf.
#pragma once

#include <cstdint>

namespace iotnas::test {

struct ExactFormat {
  int w = 8, t = 23;

  int bias() const { return (1 << (w - 1)) - 1; }
  // Finite encodings of non-negative values are 0..max_code() (E < 2^w - 1).
  uint64_t max_code() const { return ((uint64_t(1) << w) - 1) * (uint64_t(1) << t) - 1; }
  // The value of a non-negative finite encoding, exactly.
  long double decode(uint64_t code) const;
  // x rounded to the format (x not NaN), exactly, as float32.
  float round(float x) const;
};

}  // namespace iotnas::test
