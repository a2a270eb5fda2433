#include "kernels/cpu_features.hpp"

#include <fstream>
#include <thread>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace iotnas::kernels {

namespace {

std::string read_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    // x86: "model name : ..."; arm64: "Model : Raspberry Pi ..." or "CPU part".
    for (const char* key : {"model name", "Model"}) {
      if (line.rfind(key, 0) == 0) {
        auto colon = line.find(':');
        if (colon != std::string::npos) {
          auto s = line.substr(colon + 1);
          s.erase(0, s.find_first_not_of(" \t"));
          return s;
        }
      }
    }
  }
  return "unknown";
}

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) f.f16c = (c >> 29) & 1;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = (a >> 5) & 1;
#elif defined(__aarch64__)
  f.neon = true;
#endif
  f.model = read_model();
  f.logical_cpus = int(std::thread::hardware_concurrency());
  return f;
}

}  // namespace

std::string CpuFeatures::isa_list() const {
  std::string s;
  auto put = [&](bool on, const char* name) {
    if (on) s += (s.empty() ? "" : " ") + std::string(name);
  };
  put(avx2, "avx2");
  put(fma, "fma");
  put(f16c, "f16c");
  put(avx512f, "avx512f");
  put(avx512bw, "avx512bw");
  put(avx512vl, "avx512vl");
  put(avx512dq, "avx512dq");
  put(avx512bf16, "avx512bf16");
  put(neon, "neon");
  return s.empty() ? "baseline" : s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace iotnas::kernels
