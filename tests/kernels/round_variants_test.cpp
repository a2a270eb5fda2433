// Every row of round_variants() (both its ordinary and its streaming kernel), round_array and
// round_array_parallel against the scalar specification, bit for bit: random bit patterns for
// all 184 formats, lengths around the vector widths, unaligned pointers, in place and out of
// place, outputs pre-filled with a sentinel so that unwritten elements fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"
#include "kernels/round/round.hpp"
#include "test_util.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace iotnas::kernels {
namespace {

constexpr uint32_t sentinel = 0x7f80dead;  // a signalling NaN: rounding never outputs one

std::vector<FloatFormat> all_formats() {
  std::vector<FloatFormat> v;
  for (int w = 1; w <= 8; ++w)
    for (int t = 1; t <= 23; ++t) v.push_back({w, t});
  return v;
}

// Random bit patterns in runs of 1..48 values of one kind (so that some vectors hold one kind
// only and others mix them; the AVX kernels take a shortcut on vectors of normal-range values):
// anything, magnitudes in [2^-15, 2^17), in [2^-7, 2^8), tiny ones (float32 subnormals
// included), and zeros, Infs and NaNs.
std::vector<uint32_t> random_bits(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n;) {
    const uint64_t kind = rng() % 5;
    for (size_t end = std::min(n, i + 1 + size_t(rng() % 48)); i < end; ++i) {
      const uint32_t r = uint32_t(rng());
      switch (kind) {
        case 0:
          v[i] = r;
          break;
        case 1:
          v[i] = (r & 0x807fffffu) | ((112u + (r >> 27)) << 23);
          break;
        case 2:
          v[i] = (r & 0x807fffffu) | ((120u + (r >> 23) % 15u) << 23);
          break;
        case 3:
          v[i] = (r & 0x807fffffu) | (((r >> 25) & 63u) << 23);
          break;
        default:
          v[i] = (r & 0x80000000u) | (rng() % 4 == 0 ? 0x7f800000u | (r & 0x7fffffu) : 0u);
      }
    }
  }
  return v;
}

std::vector<float> expected(const uint32_t* src, int64_t n, FloatFormat f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = round_to_format(std::bit_cast<float>(src[i]), f);
  return v;
}

::testing::AssertionResult same_bits(const float* got, const std::vector<float>& want,
                                     const uint32_t* src, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i) {
    uint32_t g;
    std::memcpy(&g, got + i, 4);
    if (g != std::bit_cast<uint32_t>(want[i])) {
      std::ostringstream os;
      os << what << ": element " << i << " of " << want.size() << ": src=0x" << std::hex << src[i]
         << " got=0x" << g << " want=0x" << std::bit_cast<uint32_t>(want[i]);
      return ::testing::AssertionFailure() << os.str();
    }
  }
  return ::testing::AssertionSuccess();
}

const int64_t lengths[] = {0,  1,  2,  3,  4,  5,  7,  8,   9,   15,   16,  17,
                           31, 32, 33, 47, 63, 64, 65, 100, 255, 1000, 4099};

// Runs `fn` on every length and offset, out of place and in place, and compares with the spec.
void check_kernel(RoundKernel fn, const std::string& name, uint64_t seed) {
  const int64_t max_len = 4099 + 64;
  const std::vector<uint32_t> src_bits = random_bits(static_cast<size_t>(max_len), seed);
  for (FloatFormat f : all_formats()) {
    const RoundParams p = make_round_params(f);
    const std::string tag = name + " T(" + std::to_string(f.w) + "," + std::to_string(f.t) + ")";
    for (int64_t n : lengths) {
      // Offsets of 0..3 floats from a 64-byte boundary for src and dst (unaligned vectors).
      for (int src_off : {0, 1, 3}) {
        for (int dst_off : {0, 2, 3}) {
          alignas(64) static thread_local uint32_t src[4099 + 80], dst[4099 + 80];
          std::memcpy(src + src_off, src_bits.data(), size_t(n) * 4);
          std::fill(std::begin(dst), std::end(dst), sentinel);
          const std::vector<float> want = expected(src + src_off, n, f);
          fn(reinterpret_cast<const float*>(src + src_off), reinterpret_cast<float*>(dst + dst_off),
             n, p);
          const std::string where = tag + " n=" + std::to_string(n) + " src+" +
                                    std::to_string(src_off) + " dst+" + std::to_string(dst_off);
          ASSERT_TRUE(same_bits(reinterpret_cast<float*>(dst + dst_off), want, src + src_off,
                                where + " out of place"));
          // Nothing written outside [dst, dst + n).
          for (int i = 0; i < dst_off; ++i) ASSERT_EQ(dst[i], sentinel) << where;
          for (int64_t i = dst_off + n; i < dst_off + n + 40; ++i)
            ASSERT_EQ(dst[i], sentinel) << where;
          if (dst_off == 0) {  // in place, on the source's alignment
            fn(reinterpret_cast<float*>(src + src_off), reinterpret_cast<float*>(src + src_off), n,
               p);
            ASSERT_TRUE(same_bits(reinterpret_cast<float*>(src + src_off), want, src_bits.data(),
                                  where + " in place"));
          }
        }
      }
    }
  }
}

class RoundVariants : public ::testing::TestWithParam<int> {};

TEST_P(RoundVariants, OrdinaryStoresMatchReference) {
  const RoundVariant& v = round_variants()[size_t(GetParam())];
  if (!v.supported()) GTEST_SKIP() << v.name << ": this CPU lacks the instructions it needs";
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  check_kernel(v.fn, v.name, seed);
}

TEST_P(RoundVariants, StreamingStoresMatchReference) {
  const RoundVariant& v = round_variants()[size_t(GetParam())];
  if (!v.supported()) GTEST_SKIP() << v.name << ": this CPU lacks the instructions it needs";
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  check_kernel(v.stream_fn, std::string(v.name) + " (streaming)", seed);
}

INSTANTIATE_TEST_SUITE_P(All, RoundVariants, ::testing::Range(0, int(round_variants().size())),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(round_variants()[size_t(info.param)].name);
                         });

TEST(RoundDispatch, PicksTheFirstSupportedVariant) {
  const auto variants = round_variants();
  ASSERT_FALSE(variants.empty());
  EXPECT_STREQ(variants.back().name, "f32_round__scalar");
  for (const auto& v : variants) {
    if (v.supported()) {
      EXPECT_STREQ(round_variant().name, v.name);
      break;
    }
  }
  std::cout << "[ dispatch ] " << round_variant().name << "\n";
}

TEST(RoundDispatch, FrontEndsMatchReference) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  // Large enough for round_array_parallel to use threads and non-temporal stores.
  const int64_t n = (int64_t(1) << 23) + 37;
  const std::vector<uint32_t> bits = random_bits(size_t(n), seed);
  const float* src = reinterpret_cast<const float*>(bits.data());
  for (FloatFormat f :
       {FloatFormat{5, 10}, FloatFormat{8, 7}, FloatFormat{3, 2}, FloatFormat{1, 5}}) {
    const std::vector<float> want = expected(bits.data(), n, f);
    std::vector<float> got(size_t(n) + 1, std::bit_cast<float>(sentinel));
    round_array_parallel(src, got.data() + 1, n, make_round_params(f));
    ASSERT_TRUE(same_bits(got.data() + 1, want, bits.data(), "round_array_parallel"));
    std::vector<float> small(1001, std::bit_cast<float>(sentinel));
    round_array(src, small.data(), 1001, f);
    ASSERT_TRUE(same_bits(small.data(), std::vector<float>(want.begin(), want.begin() + 1001),
                          bits.data(), "round_array"));
    std::vector<float> in_place(src, src + n);
    round_array_parallel(in_place.data(), in_place.data(), n, make_round_params(f));
    ASSERT_TRUE(same_bits(in_place.data(), want, bits.data(), "round_array_parallel in place"));
  }
  EXPECT_THROW(round_array(src, nullptr, 0, FloatFormat{0, 5}), Error);
}

#if defined(__x86_64__)
// The kernels' results do not depend on MXCSR: with flush-to-zero and denormals-are-zero set
// (as -ffast-math programs and some libraries leave them) every variant still matches the
// specification, evaluated beforehand in the default mode.
TEST(RoundDispatch, ResultsIgnoreFlushToZeroModes) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  const int64_t n = 4099;
  std::vector<uint32_t> bits = random_bits(size_t(n), seed);
  for (uint32_t b = 1; b < 200; ++b) bits.push_back(b);  // float32 subnormals
  for (uint32_t b = 0x00800000u - 200; b < 0x00800000u; ++b) bits.push_back(b);
  const float* src = reinterpret_cast<const float*>(bits.data());
  const int64_t total = int64_t(bits.size());
  for (FloatFormat f : {FloatFormat{5, 10}, FloatFormat{8, 7}, FloatFormat{8, 23},
                        FloatFormat{2, 3}, FloatFormat{5, 9}, FloatFormat{8, 1}}) {
    const std::vector<float> want = expected(bits.data(), total, f);
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u);  // FTZ (bit 15) and DAZ (bit 6)
    std::vector<std::vector<float>> got;
    for (const auto& v : round_variants()) {
      got.emplace_back(size_t(total), std::bit_cast<float>(sentinel));
      if (v.supported()) v.fn(src, got.back().data(), total, make_round_params(f));
    }
    _mm_setcsr(saved);
    for (size_t k = 0; k < got.size(); ++k) {
      if (!round_variants()[k].supported()) continue;
      EXPECT_TRUE(same_bits(got[k].data(), want, bits.data(),
                            std::string(round_variants()[k].name) + " with FTZ+DAZ T(" +
                                std::to_string(f.w) + "," + std::to_string(f.t) + ")"));
    }
  }
}
#endif

// T(8,23) is the identity on every finite float32 (and quiets NaNs): all 2^32 patterns through
// the dispatched kernel (every 4099th block of 2^16 with IOTNAS_TEST_QUICK=1 or sanitizers).
TEST(RoundDispatch, FloatFormatIsIdentityOnAllPatterns) {
  const RoundParams p = make_round_params(format_float);
  const int64_t block = int64_t(1) << 16;
  const char* quick = std::getenv("IOTNAS_TEST_QUICK");
  const int64_t stride =
      block * (IOTNAS_SANITIZE || (quick != nullptr && quick[0] == '1') ? 4099 : 1);
  int64_t bad = 0;
#pragma omp parallel reduction(+ : bad)
  {
    std::vector<uint32_t> src(static_cast<size_t>(block)), dst(static_cast<size_t>(block));
#pragma omp for schedule(static)
    for (int64_t start = 0; start < (int64_t(1) << 32); start += stride) {
      for (int64_t i = 0; i < block; ++i) src[size_t(i)] = uint32_t(start + i);
      round_array(reinterpret_cast<const float*>(src.data()), reinterpret_cast<float*>(dst.data()),
                  block, p);
      for (int64_t i = 0; i < block; ++i) {
        const uint32_t x = src[size_t(i)];
        const bool nan = (x & 0x7fffffffu) > 0x7f800000u;
        bad += dst[size_t(i)] != (nan ? x | 0x00400000u : x);
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace iotnas::kernels
