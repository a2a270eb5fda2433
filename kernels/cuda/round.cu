// f32_round on CUDA: one grid-stride loop over round_element() (round_body.cuh).
#include <algorithm>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/round.hpp"
#include "kernels/cuda/round_body.cuh"

namespace iotnas::kernels::cuda {

namespace {

// No __restrict__: src may equal dst (each element is read before it is written, by one thread).
__global__ void f32_round_kernel(const float* src, float* dst, int64_t n, RoundParams p) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = round_element(src[i], p);
}

}  // namespace

void round_array(const float* src, float* dst, int64_t n, const RoundParams& p,
                 cudaStream_t stream) {
  if (n <= 0) return;
  constexpr int threads = 256;
  // Enough blocks to fill any current GPU several times over; the loop covers the rest.
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, int64_t(1) << 15);
  f32_round_kernel<<<unsigned(blocks), threads, 0, stream>>>(src, dst, n, p);
  IOTNAS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace iotnas::kernels::cuda
