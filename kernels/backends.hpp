// Which compute backends this build has, and which one runs. One table answers both
// "is it built" and "is it usable here" (why not, if not).
#pragma once

#include <string>
#include <vector>

namespace iotnas::kernels {

enum class BackendKind { portable, dnnl, cuda };

struct BackendInfo {
  BackendKind kind;
  const char* name;     // "portable", "dnnl", "cuda"
  bool built = false;   // compiled into this binary
  bool usable = false;  // built and able to run on this machine
  std::string version;  // e.g. oneDNN "2.6.3"
  std::string why_not;  // when !usable: the reason, e.g. "no CUDA device"
};

const std::vector<BackendInfo>& backends();
const BackendInfo& backend_info(BackendKind kind);
// "auto" picks dnnl when usable, else portable. Throws iotnas::Error for an unknown or unusable
// name, saying why and what is available.
BackendKind parse_backend(const std::string& name);
const char* backend_name(BackendKind kind);

}  // namespace iotnas::kernels
