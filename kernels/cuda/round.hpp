// Rounding to T(w,t) on a CUDA device: the same contract as kernels::round_array
// (kernels/round/round.hpp) with device pointers, and the same per-element body
// (kernels/cuda/round_body.cuh), so results equal the CPU's bit for bit. Host C++; IOTNAS_CUDA
// builds only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/round/format.hpp"

namespace iotnas::kernels::cuda {

// dst[i] = round(src[i]) for i < n; src and dst are device pointers; src == dst is allowed, any
// other overlap is not. Asynchronous on `stream`; a launch error throws iotnas::Error, an error
// while running surfaces at the caller's next synchronising CUDA call.
void round_array(const float* src, float* dst, int64_t n, const RoundParams& p,
                 cudaStream_t stream = nullptr);

}  // namespace iotnas::kernels::cuda
