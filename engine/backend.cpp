#include "engine/backend.hpp"

#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

#if IOTNAS_CUDA
#include "kernels/cuda/device.hpp"
#endif

namespace iotnas {

#if !IOTNAS_DNNL
Backend dnnl_backend() {
  return {BackendKind::dnnl, "dnnl", false, false, "", "built without oneDNN (IOTNAS_DNNL=OFF)", 1};
}
#endif

// CUDA builds compile the rounding kernels (kernels/cuda/); no model runs there yet, so the row
// is never usable, and says why: no device, or no model kernels.
Backend cuda_backend() {
  Backend b{BackendKind::cuda, "cuda", false, false, "", "built without CUDA (IOTNAS_CUDA=OFF)", 0};
#if IOTNAS_CUDA
  b.built = true;
  std::string why;
  const int n = kernels::cuda_device_count(&why);
  b.version = n > 0 ? std::to_string(n) + " device(s)" : "";
  b.why_not = n > 0 ? "the CUDA backend has rounding kernels only, no model kernels yet" : why;
#endif
  return b;
}

const std::vector<Backend>& backends() {
  static const std::vector<Backend> v = {portable_backend(), dnnl_backend(), cuda_backend()};
  return v;
}

const Backend& backend_info(BackendKind kind) {
  for (const auto& b : backends())
    if (b.kind == kind) return b;
  IOTNAS_ASSERT(false, "backend kind missing from the registry");
  return backends().front();
}

std::vector<BackendKind> usable_backends() {
  std::vector<BackendKind> v;
  for (const auto& b : backends())
    if (b.usable) v.push_back(b.kind);
  return v;
}

const char* backend_name(BackendKind kind) {
  return backend_info(kind).name;
}

BackendKind parse_backend(const std::string& name) {
  if (name == "auto") {
    const Backend* best = nullptr;
    for (const auto& b : backends())
      if (b.usable && (!best || b.auto_rank < best->auto_rank)) best = &b;
    IOTNAS_ASSERT(best, "no usable backend (portable always is)");
    return best->kind;
  }
  std::string names = "auto";
  for (const auto& b : backends()) {
    names += ", " + std::string(b.name);
    if (name == b.name) {
      if (!b.usable)
        fail("backend '", name, "' cannot run here: ", b.why_not, " (use --backend auto)");
      return b.kind;
    }
  }
  fail("unknown backend '", name, "' (choose ", names, ")");
}

}  // namespace iotnas
