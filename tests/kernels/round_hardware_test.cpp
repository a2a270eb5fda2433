// Hardware anchors over all 2^32 float32 bit patterns: the portable kernel (f32_round__scalar, the
// per-element body shared with CUDA) and the dispatched kernel (which uses F16C itself for half)
// against
//  - F16C (vcvtps2ph with round-to-nearest-even, then vcvtph2ps) for T(5,10), and
//  - AVX-512 BF16 (vcvtneps2bf16) for T(8,7), except on float32 subnormal inputs, which that
//    instruction flushes to zero (FACTS.md).
// NaN outputs are compared as NaN (both NaN); how many NaN payloads also match bit for bit is
// printed. The scalar specification itself is compared with the hardware on every 61st pattern
// (the dispatched kernel equals it bit for bit: round_variants_test.cpp).
//
// The intrinsics are enabled per function (target attributes), so this file needs no ISA flags;
// the tests skip when the CPU lacks the instructions. IOTNAS_TEST_QUICK=1 in the environment
// (or a sanitizer build) checks every 4099th block of 2^16 patterns instead of all of them.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "iotnas/config.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/round/round.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
// GCC 12 warns inside its own headers (_mm512_undefined_epi32); a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace iotnas::kernels {
namespace {

#if defined(__x86_64__)

constexpr int64_t block = int64_t(1) << 16;  // patterns per work item

bool quick() {
  const char* q = std::getenv("IOTNAS_TEST_QUICK");
  return IOTNAS_SANITIZE || (q != nullptr && q[0] == '1');
}

struct Tally {
  int64_t checked = 0, bad = 0, nan_lanes = 0, nan_same_bits = 0, spec_bad = 0;
  uint32_t first_bad = 0, first_got = 0, first_want = 0;
};

enum class Anchor { f16c, bf16 };

__attribute__((target("avx512f,avx512bw,f16c"))) inline __m512i hw_half(__m512i x) {
  const __m256i h =
      _mm512_cvtps_ph(_mm512_castsi512_ps(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_castps_si512(_mm512_cvtph_ps(h));
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline __m512i hw_bfloat16(__m512i x) {
  const __m256bh h = _mm512_cvtneps_pbh(_mm512_castsi512_ps(x));
  return _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16);
}

// Checks patterns [start, start + block) into t.
__attribute__((target("avx512f,avx512bw,f16c,avx512bf16"))) void check_block(
    Anchor anchor, uint32_t start, const RoundParams& p, FloatFormat f, RoundKernel kernel,
    uint32_t* src, uint32_t* mine, Tally& t) {
  for (int64_t i = 0; i < block; ++i) src[i] = start + uint32_t(i);
  kernel(reinterpret_cast<const float*>(src), reinterpret_cast<float*>(mine), block, p);
  for (int64_t i = 0; i < block; i += 16) {
    const __m512i x = _mm512_loadu_si512(src + i);
    const __m512i got = _mm512_loadu_si512(mine + i);
    const __m512i want = anchor == Anchor::f16c ? hw_half(x) : hw_bfloat16(x);
    __mmask16 use = 0xffff;
    if (anchor == Anchor::bf16) {  // skip float32 subnormal inputs
      const __m512i a = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
      use = _mm512_cmp_epu32_mask(_mm512_sub_epi32(a, _mm512_set1_epi32(1)),
                                  _mm512_set1_epi32(0x007fffff), _MM_CMPINT_NLT);
    }
    const __mmask16 same = _mm512_cmpeq_epi32_mask(got, want);
    const __mmask16 got_nan =
        _mm512_cmp_ps_mask(_mm512_castsi512_ps(got), _mm512_castsi512_ps(got), _CMP_UNORD_Q);
    const __mmask16 want_nan =
        _mm512_cmp_ps_mask(_mm512_castsi512_ps(want), _mm512_castsi512_ps(want), _CMP_UNORD_Q);
    const __mmask16 bad = use & ~same & ~(got_nan & want_nan);
    t.checked += __builtin_popcount(use);
    t.nan_lanes += __builtin_popcount(use & got_nan & want_nan);
    t.nan_same_bits += __builtin_popcount(use & got_nan & want_nan & same);
    if (bad != 0) {
      if (t.bad == 0) {
        const int lane = __builtin_ctz(bad);
        alignas(64) uint32_t w[16];
        _mm512_store_si512(w, want);
        t.first_bad = src[i + lane];
        t.first_got = mine[i + lane];
        t.first_want = w[lane];
      }
      t.bad += __builtin_popcount(bad);
    }
  }
  // The specification itself on a sparse subset of the block.
  for (int64_t i = start % 61 == 0 ? 0 : 61 - start % 61; i < block; i += 61) {
    const uint32_t x = src[i];
    if (anchor == Anchor::bf16 && (x & 0x7f800000u) == 0 && (x & 0x007fffffu) != 0) continue;
    const uint32_t spec = std::bit_cast<uint32_t>(round_to_format(std::bit_cast<float>(x), f));
    const bool nan = (spec & 0x7fffffffu) > 0x7f800000u;
    const bool same = nan ? (mine[i] & 0x7fffffffu) > 0x7f800000u : spec == mine[i];
    t.spec_bad += !same;
  }
}

Tally run_all(Anchor anchor, FloatFormat f, RoundKernel kernel) {
  const RoundParams p = make_round_params(f);
  const int64_t blocks = (int64_t(1) << 32) / block;
  const int64_t stride = quick() ? 4099 : 1;
  Tally all;
#pragma omp parallel
  {
    std::vector<uint32_t> src(static_cast<size_t>(block)), mine(static_cast<size_t>(block));
    Tally local;
#pragma omp for schedule(dynamic, 16)
    for (int64_t b = 0; b < blocks; b += stride)
      check_block(anchor, uint32_t(b * block), p, f, kernel, src.data(), mine.data(), local);
#pragma omp critical
    {
      if (all.bad == 0 && local.bad != 0) {
        all.first_bad = local.first_bad;
        all.first_got = local.first_got;
        all.first_want = local.first_want;
      }
      all.checked += local.checked;
      all.bad += local.bad;
      all.nan_lanes += local.nan_lanes;
      all.nan_same_bits += local.nan_same_bits;
      all.spec_bad += local.spec_bad;
    }
  }
  return all;
}

void report(const Tally& t, const char* what) {
  std::cout << "[ " << what << " ] " << t.checked << " patterns"
            << (quick() ? " (quick: every 4099th block)" : "") << ", " << t.bad
            << " differ; NaN outputs: " << t.nan_lanes << ", of which " << t.nan_same_bits
            << " have the same bits\n";
  EXPECT_EQ(t.bad, 0) << std::hex << "first: x=0x" << t.first_bad << " got=0x" << t.first_got
                      << " hardware=0x" << t.first_want;
  EXPECT_EQ(t.spec_bad, 0) << "the scalar specification differs from the kernel";
}

TEST(RoundHardware, HalfEqualsF16cOnAllPatterns) {
  const auto& cpu = cpu_features();
  if (!(cpu.avx512f && cpu.avx512bw && cpu.f16c))
    GTEST_SKIP() << "needs AVX-512F/BW and F16C (vcvtps2ph); this CPU has: " << cpu.isa_list();
  for (const char* which : {"f32_round__scalar", "dispatched"}) {
    const RoundKernel kernel = which[0] == 'd' ? round_variant().fn : f32_round__scalar;
    const Tally t = run_all(Anchor::f16c, format_half, kernel);
    report(t, (std::string("F16C vs ") + which).c_str());
    EXPECT_EQ(t.checked, quick() ? t.checked : int64_t(1) << 32);
  }
}

TEST(RoundHardware, Bfloat16EqualsAvx512Bf16OnAllNonSubnormalPatterns) {
  const auto& cpu = cpu_features();
  if (!(cpu.avx512f && cpu.avx512bw && cpu.avx512bf16))
    GTEST_SKIP() << "needs AVX-512 BF16 (vcvtneps2bf16); this CPU has: " << cpu.isa_list();
  for (const char* which : {"f32_round__scalar", "dispatched"}) {
    const RoundKernel kernel = which[0] == 'd' ? round_variant().fn : f32_round__scalar;
    const Tally t = run_all(Anchor::bf16, format_bfloat16, kernel);
    report(t, (std::string("AVX512-BF16 vs ") + which).c_str());
    // 2^32 minus the 2 * (2^23 - 1) subnormal patterns.
    EXPECT_EQ(t.checked, quick() ? t.checked : (int64_t(1) << 32) - 2 * ((int64_t(1) << 23) - 1));
  }
}

#else

TEST(RoundHardware, HalfEqualsF16cOnAllPatterns) {
  GTEST_SKIP() << "x86-64 only (F16C)";
}
TEST(RoundHardware, Bfloat16EqualsAvx512Bf16OnAllNonSubnormalPatterns) {
  GTEST_SKIP() << "x86-64 only (AVX-512 BF16)";
}

#endif

}  // namespace
}  // namespace iotnas::kernels
