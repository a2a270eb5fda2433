#include "round_exact.hpp"

#include <cmath>
#include <limits>

namespace iotnas::test {

long double ExactFormat::decode(uint64_t code) const {
  const uint64_t exponent_field = code >> t;
  const uint64_t fraction = code & ((uint64_t(1) << t) - 1);
  const int emin = 1 - bias();
  if (exponent_field == 0) return std::ldexp((long double)fraction, emin - t);  // subnormal
  return std::ldexp((long double)((uint64_t(1) << t) + fraction), int(exponent_field) - bias() - t);
}

float ExactFormat::round(float x) const {
  if (std::isinf(x)) return x;
  const long double m = std::fabs((long double)x);
  long double lo, hi;
  uint64_t lo_code;
  bool hi_is_inf = false;
  if (m >= decode(max_code())) {
    lo_code = max_code();
    lo = decode(lo_code);
    hi = std::ldexp(1.0L, bias() + 1);
    hi_is_inf = true;
  } else {
    // Largest code with decode(code) <= m.
    uint64_t a = 0, b = max_code();  // decode(a) <= m < decode(b)
    while (b - a > 1) {
      const uint64_t mid = a + (b - a) / 2;
      (decode(mid) <= m ? a : b) = mid;
    }
    lo_code = a;
    lo = decode(a);
    hi = decode(a + 1);
  }
  long double r;
  if (m - lo < hi - m)
    r = lo;
  else if (m - lo > hi - m)
    r = hi;
  else
    r = (lo_code % 2 == 0) ? lo : hi;  // a tie: the even encoding
  if (hi_is_inf && r == hi) r = std::numeric_limits<long double>::infinity();
  return float(std::signbit(x) ? -r : r);
}

}  // namespace iotnas::test
