// The CUDA rounding kernel against the scalar specification, bit for bit, for all 184 formats,
// out of place and in place. Compiled into IOTNAS_CUDA builds; skips (with the CUDA runtime's
// reason) where no GPU or driver is present. The per-element body it runs is checked on the host
// in round_reference_test.cpp, so that part is covered without a GPU.
#include <gtest/gtest.h>

#include "iotnas/config.hpp"

#if IOTNAS_CUDA

#include <cuda_runtime_api.h>

#include <bit>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/round.hpp"
#include "kernels/round/round.hpp"
#include "test_util.hpp"

namespace iotnas::kernels {
namespace {

constexpr uint32_t sentinel = 0x7f80dead;  // a signalling NaN: rounding never outputs one

// A device buffer of n floats, freed on scope exit.
struct DeviceFloats {
  float* ptr = nullptr;
  explicit DeviceFloats(size_t n) {
    IOTNAS_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr), n * sizeof(float)));
  }
  ~DeviceFloats() { cudaFree(ptr); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
};

TEST(RoundCuda, MatchesReferenceForAllFormats) {
  std::string why;
  const int devices = cuda_device_count(&why);
  if (devices <= 0) GTEST_SKIP() << "no usable CUDA device: " << why;

  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  std::mt19937_64 rng(seed);
  const size_t n = (size_t(1) << 18) + 37;
  std::vector<uint32_t> src_bits(n);
  for (auto& b : src_bits) {
    b = uint32_t(rng());
    if (rng() % 2 == 0) b = (b & 0x807fffffu) | ((100u + (b >> 26)) << 23);  // near 1
  }
  const std::vector<uint32_t> sentinels(n, sentinel);
  DeviceFloats src(n), dst(n);
  std::vector<uint32_t> got(n);
  for (int w = 1; w <= 8; ++w) {
    for (int t = 1; t <= 23; ++t) {
      const FloatFormat f{w, t};
      const RoundParams p = make_round_params(f);
      IOTNAS_CUDA_CHECK(cudaMemcpy(src.ptr, src_bits.data(), n * 4, cudaMemcpyHostToDevice));
      IOTNAS_CUDA_CHECK(cudaMemcpy(dst.ptr, sentinels.data(), n * 4, cudaMemcpyHostToDevice));
      for (int in_place = 0; in_place < 2; ++in_place) {
        float* out = in_place ? src.ptr : dst.ptr;
        cuda::round_array(src.ptr, out, int64_t(n), p);
        IOTNAS_CUDA_CHECK(cudaDeviceSynchronize());
        IOTNAS_CUDA_CHECK(cudaMemcpy(got.data(), out, n * 4, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n; ++i) {
          const uint32_t want =
              std::bit_cast<uint32_t>(round_to_format(std::bit_cast<float>(src_bits[i]), f));
          ASSERT_EQ(got[i], want) << "T(" << w << "," << t << ") element " << i << " src=0x"
                                  << std::hex << src_bits[i] << (in_place ? " in place" : "");
        }
      }
    }
  }
}

}  // namespace
}  // namespace iotnas::kernels

#else

TEST(RoundCuda, MatchesReferenceForAllFormats) {
  GTEST_SKIP() << "built without CUDA (configure with -DIOTNAS_CUDA=ON or --preset cuda)";
}

#endif
