#include <cuda_runtime_api.h>

#include "kernels/cuda/device.hpp"

namespace iotnas::kernels {

int cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess) {
    if (why != nullptr)
      *why = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    (void)cudaGetLastError();  // clear the sticky error so later calls report their own
    return -1;
  }
  if (n == 0 && why != nullptr) *why = "no CUDA device";
  return n;
}

}  // namespace iotnas::kernels
