// Transitional: the backend registry lives in engine/backend.hpp. Removed once every caller
// names it there.
#pragma once

#include "engine/backend.hpp"

namespace iotnas::kernels {
using iotnas::backend_info;
using iotnas::backend_name;
using iotnas::BackendKind;
using iotnas::backends;
using iotnas::parse_backend;
}  // namespace iotnas::kernels
