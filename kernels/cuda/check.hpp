// IOTNAS_CUDA_CHECK(call): runs a CUDA runtime call and throws iotnas::Error naming the call, the
// file and line, and the runtime's message when it fails. Host code only (.cu or .cpp).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/base/error.hpp"

#define IOTNAS_CUDA_CHECK(call)                                                           \
  do {                                                                                    \
    const cudaError_t iotnas_cuda_status_ = (call);                                       \
    if (iotnas_cuda_status_ != cudaSuccess)                                               \
      ::iotnas::fail("CUDA call `", #call, "` failed at ", __FILE__, ":", __LINE__, ": ", \
                     cudaGetErrorName(iotnas_cuda_status_), " (",                         \
                     cudaGetErrorString(iotnas_cuda_status_), ")");                       \
  } while (0)
