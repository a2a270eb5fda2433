// round_to_format() (the specification) against the exact oracle in tests/reference/round_exact
// for all 184 formats, and round_bits() (the CUDA/portable per-element body) against
// round_to_format(). The inputs are the cases that break rounding code: ties and one ulp either
// side, the subnormal/normal boundary, the overflow threshold and its halfway point, +-0, +-Inf,
// NaN payloads, plus random bit patterns and random values in each format's range.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "kernels/base/error.hpp"
#include "kernels/cuda/round_body.cuh"
#include "kernels/round/round.hpp"
#include "reference/round_exact.hpp"
#include "test_util.hpp"

namespace iotnas::kernels {
namespace {

using test::ExactFormat;

uint32_t bits_of(float x) {
  return std::bit_cast<uint32_t>(x);
}
float from_bits(uint32_t b) {
  return std::bit_cast<float>(b);
}

std::vector<FloatFormat> all_formats() {
  std::vector<FloatFormat> v;
  for (int w = 1; w <= 8; ++w)
    for (int t = 1; t <= 23; ++t) v.push_back({w, t});
  return v;
}

std::string hex(uint32_t b) {
  std::ostringstream os;
  os << "0x" << std::hex << b;
  return os.str();
}

// Adds x to v when the long double value is exactly a float32, with its neighbours one float32
// ulp either side and the negatives of all three.
void add_with_neighbours(std::vector<float>& v, long double x) {
  const float f = float(x);
  if ((long double)f != x || std::isinf(f)) return;
  for (float g : {std::nextafter(f, -INFINITY), f, std::nextafter(f, INFINITY)}) {
    v.push_back(g);
    v.push_back(-g);
  }
}

// The hard cases of one format: representable values next to the boundaries, the midpoints
// between them (ties), one float32 ulp either side of each.
std::vector<float> edge_cases(FloatFormat f) {
  const ExactFormat ex{f.w, f.t};
  const uint64_t top = ex.max_code(), one_binade = uint64_t(1) << f.t;
  std::vector<uint64_t> codes = {0, 1, 2, 3, 4, 5};
  for (uint64_t c : {one_binade - 2, one_binade - 1, one_binade, one_binade + 1, one_binade + 2,
                     2 * one_binade - 1, 2 * one_binade, 2 * one_binade + 1, top - 2, top - 1})
    if (c <= top) codes.push_back(c);
  codes.push_back(top);
  std::vector<float> v;
  for (uint64_t c : codes) {
    const long double lo = ex.decode(c);
    const long double hi = c < top ? ex.decode(c + 1) : std::ldexp(1.0L, ex.bias() + 1);
    add_with_neighbours(v, lo);
    add_with_neighbours(v, (lo + hi) / 2);  // the tie (the halfway point to Inf for c = top)
    add_with_neighbours(v, hi);
  }
  // Just below the smallest subnormal's half, and far outside the range.
  add_with_neighbours(v, ex.decode(1) / 4);
  add_with_neighbours(v, std::ldexp(1.0L, -149));
  add_with_neighbours(v, std::ldexp(1.0L, -126));
  add_with_neighbours(v, std::ldexp(1.0L, ex.bias() + 2));
  add_with_neighbours(v, (long double)std::numeric_limits<float>::max());
  add_with_neighbours(v, 1.0L);
  for (uint32_t b : {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x00000001u, 0x007fffffu,
                     0x00800000u, 0x7f7fffffu, 0xff7fffffu})
    v.push_back(from_bits(b));
  return v;
}

std::vector<float> nan_cases() {
  std::vector<float> v;
  for (uint32_t payload : {0x400000u, 0x000001u, 0x200000u, 0x7fffffu, 0x3fffffu, 0x001000u,
                           0x00ffffu, 0x400001u, 0x123456u, 0x654321u})
    for (uint32_t sign : {0u, 0x80000000u}) v.push_back(from_bits(sign | 0x7f800000u | payload));
  return v;
}

// Random float32 bit patterns, and random values whose exponent lies in or near the format's.
std::vector<float> random_cases(FloatFormat f, uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  std::vector<float> v;
  for (int i = 0; i < count; ++i) v.push_back(from_bits(uint32_t(rng())));
  std::uniform_int_distribution<int> exponent(std::max(-149, f.emin() - f.t - 3),
                                              std::min(127, f.bias() + 2));
  for (int i = 0; i < count; ++i) {
    const uint32_t sign = uint32_t(rng() & 1) << 31;
    const float mag = std::ldexp(1.0f + float(rng() & 0x7fffff) / float(1 << 23), exponent(rng));
    v.push_back(from_bits(sign | bits_of(mag)));
  }
  return v;
}

// NaN rule: NaN, quiet, same sign, payload cut to the top t fraction bits.
bool nan_ok(float x, float got, FloatFormat f) {
  const uint32_t want = (bits_of(x) | 0x00400000u) & ~((1u << (23 - f.t)) - 1u);
  return std::isnan(got) && bits_of(got) == want;
}

// Checks round_to_format against the oracle (and NaN rule) on xs; reports the first mismatches.
::testing::AssertionResult reference_matches_exact(FloatFormat f, const std::vector<float>& xs) {
  const ExactFormat ex{f.w, f.t};
  int bad = 0;
  std::ostringstream os;
  for (float x : xs) {
    const float got = round_to_format(x, f);
    const bool ok = std::isnan(x) ? nan_ok(x, got, f) : bits_of(got) == bits_of(ex.round(x));
    if (!ok && bad++ < 5)
      os << " T(" << f.w << "," << f.t << ") x=" << hex(bits_of(x)) << " (" << x
         << ") got=" << hex(bits_of(got))
         << " want=" << (std::isnan(x) ? "quiet NaN" : hex(bits_of(ex.round(x))));
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << xs.size() << " differ:" << os.str();
}

::testing::AssertionResult body_matches_reference(FloatFormat f, const std::vector<float>& xs) {
  const RoundParams p = make_round_params(f);
  int bad = 0;
  std::ostringstream os;
  for (float x : xs) {
    const uint32_t got = round_bits(bits_of(x), p), want = bits_of(round_to_format(x, f));
    if (got != want && bad++ < 5)
      os << " T(" << f.w << "," << f.t << ") x=" << hex(bits_of(x)) << " got=" << hex(got)
         << " want=" << hex(want);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << xs.size() << " differ:" << os.str();
}

TEST(RoundFormat, DerivedConstantsMatchTheEncoding) {
  EXPECT_EQ(all_formats().size(), size_t(format_count));
  for (FloatFormat f : all_formats()) {
    SCOPED_TRACE("T(" + std::to_string(f.w) + "," + std::to_string(f.t) + ")");
    const ExactFormat ex{f.w, f.t};
    ASSERT_TRUE(f.valid());
    EXPECT_EQ(f.bits(), 1 + f.w + f.t);
    EXPECT_EQ(f.bias(), (1 << (f.w - 1)) - 1);
    EXPECT_EQ(f.emin(), 1 - f.bias());
    EXPECT_EQ((long double)f.largest_finite(), ex.decode(ex.max_code()));
    EXPECT_EQ((long double)f.min_subnormal(), ex.decode(1));
    if (f.w >= 2) {
      EXPECT_EQ((long double)f.min_normal(), ex.decode(uint64_t(1) << f.t));
    }
    EXPECT_EQ(f.overflow_threshold(), std::ldexp(1.0, f.bias() + 1));
  }
  EXPECT_EQ(format_half.largest_finite(), 65504.0);
  EXPECT_EQ(format_half.min_subnormal(), std::ldexp(1.0, -24));
  EXPECT_EQ(format_bfloat16.min_normal(), std::ldexp(1.0, -126));
  EXPECT_EQ((FloatFormat{1, 3}.largest_finite()), 1.75);  // 7 * 2^-2
  EXPECT_FALSE((FloatFormat{0, 3}.valid()));
  EXPECT_FALSE((FloatFormat{9, 3}.valid()));
  EXPECT_FALSE((FloatFormat{4, 0}.valid()));
  EXPECT_FALSE((FloatFormat{4, 24}.valid()));
  EXPECT_THROW(make_round_params({9, 3}), Error);
  EXPECT_THROW(make_round_params({3, 24}), Error);
}

TEST(RoundReference, EdgeCasesMatchExactRounding) {
  for (FloatFormat f : all_formats()) {
    EXPECT_TRUE(reference_matches_exact(f, edge_cases(f)));
    EXPECT_TRUE(reference_matches_exact(f, nan_cases()));
  }
}

TEST(RoundReference, RandomInputsMatchExactRounding) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  for (FloatFormat f : all_formats())
    EXPECT_TRUE(reference_matches_exact(f, random_cases(f, seed + f.w * 100 + f.t, 3000)));
}

TEST(RoundReference, HandPickedValues) {
  auto r = [](float x, int w, int t) { return round_to_format(x, {w, t}); };
  // half: ties to even, the overflow halfway point 65520 goes to Inf, subnormals kept.
  EXPECT_EQ(r(1.0f + 0x1p-11f, 5, 10), 1.0f);
  EXPECT_EQ(r(1.0f + 3 * 0x1p-11f, 5, 10), 1.0f + 0x1p-9f);
  EXPECT_EQ(r(65504.0f, 5, 10), 65504.0f);
  EXPECT_EQ(r(65519.99f, 5, 10), 65504.0f);
  EXPECT_EQ(r(65520.0f, 5, 10), INFINITY);
  EXPECT_EQ(r(-65520.0f, 5, 10), -INFINITY);
  EXPECT_EQ(r(0x1p-24f, 5, 10), 0x1p-24f);
  EXPECT_EQ(r(0x1p-25f, 5, 10), 0.0f);             // tie with 0: even
  EXPECT_EQ(r(0x1.8p-24f, 5, 10), 0x1p-23f);       // tie between 1 and 2 ulps: even (2)
  EXPECT_EQ(r(0x1.000002p-25f, 5, 10), 0x1p-24f);  // just above the tie
  EXPECT_TRUE(std::signbit(r(-0x1p-30f, 5, 10)));  // -tiny -> -0
  // w = 1: values k * 2^(1-t), k < 2^t; 2 and above is Inf.
  EXPECT_EQ(r(1.75f, 1, 3), 1.75f);
  EXPECT_EQ(r(1.8f, 1, 3), 1.75f);
  EXPECT_EQ(r(1.875f, 1, 3), INFINITY);  // halfway to 2
  EXPECT_EQ(r(0.125f, 1, 3), 0.0f);      // tie between 0 and 0.25
  EXPECT_EQ(r(0.375f, 1, 3), 0.5f);      // tie between 0.25 and 0.5
  // T(8,23) is the identity on finite floats, subnormals included.
  for (uint32_t b : {0x00000001u, 0x007fffffu, 0x3f800001u, 0x7f7fffffu, 0x80000003u})
    EXPECT_EQ(bits_of(r(from_bits(b), 8, 23)), b);
  // bfloat16 keeps float32 subnormals (rounded to 7 bits) instead of flushing them.
  EXPECT_EQ(r(from_bits(0x00012345u), 8, 7), from_bits(0x00010000u));
}

TEST(RoundBody, MatchesReferenceForAllFormats) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  for (FloatFormat f : all_formats()) {
    EXPECT_TRUE(body_matches_reference(f, edge_cases(f)));
    EXPECT_TRUE(body_matches_reference(f, nan_cases()));
    EXPECT_TRUE(body_matches_reference(f, random_cases(f, seed + f.w * 100 + f.t, 20000)));
  }
}

}  // namespace
}  // namespace iotnas::kernels
