#include "kernels/backends.hpp"

#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

#if IOTNAS_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace iotnas::kernels {

#if IOTNAS_CUDA
// kernels/cuda/device.cu: number of usable devices, or -1 with the runtime's message.
int cuda_device_count(std::string* why);
#endif

namespace {

std::vector<BackendInfo> detect() {
  std::vector<BackendInfo> v;
  v.push_back({BackendKind::portable, "portable", true, true, IOTNAS_VERSION, ""});
  BackendInfo d{
      BackendKind::dnnl, "dnnl", false, false, "", "built without oneDNN (IOTNAS_DNNL=OFF)"};
#if IOTNAS_DNNL
  const dnnl_version_t* ver = dnnl_version();
  d.built = d.usable = true;
  d.version = std::to_string(ver->major) + "." + std::to_string(ver->minor) + "." +
              std::to_string(ver->patch);
  d.why_not.clear();
#endif
  v.push_back(d);
  BackendInfo c{
      BackendKind::cuda, "cuda", false, false, "", "built without CUDA (IOTNAS_CUDA=OFF)"};
#if IOTNAS_CUDA
  c.built = true;
  std::string why;
  int n = cuda_device_count(&why);
  c.usable = n > 0;
  c.why_not = n > 0 ? "" : why;
  c.version = n > 0 ? std::to_string(n) + " device(s)" : "";
#endif
  v.push_back(c);
  return v;
}

}  // namespace

const std::vector<BackendInfo>& backends() {
  static const std::vector<BackendInfo> v = detect();
  return v;
}

const BackendInfo& backend_info(BackendKind kind) {
  return backends()[static_cast<int>(kind)];
}

const char* backend_name(BackendKind kind) {
  return backend_info(kind).name;
}

BackendKind parse_backend(const std::string& name) {
  if (name == "auto") {
    return backend_info(BackendKind::dnnl).usable ? BackendKind::dnnl : BackendKind::portable;
  }
  for (const auto& b : backends()) {
    if (name == b.name) {
      if (!b.usable)
        fail("backend '", name, "' cannot run here: ", b.why_not, " (use --backend auto)");
      return b.kind;
    }
  }
  fail("unknown backend '", name, "' (choose auto, portable, dnnl or cuda)");
}

}  // namespace iotnas::kernels
