// CUDA devices visible to this process (kernels/cuda/device.cu). Host C++; IOTNAS_CUDA builds only.
#pragma once

#include <string>

namespace iotnas::kernels {

// Number of usable CUDA devices; -1 when the runtime cannot tell (no driver, driver too old),
// with the runtime's message in *why (nullable); 0 with "no CUDA device" when there are none.
int cuda_device_count(std::string* why);

}  // namespace iotnas::kernels
