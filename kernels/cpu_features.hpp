// What the CPU this process runs on can do; read once. Dispatch of vector kernels uses it.
#pragma once

#include <string>

namespace iotnas::kernels {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;  // x86-64
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false;  // vcvtneps2bf16
  bool neon = false;        // aarch64 (always there)
  std::string model;        // e.g. "AMD EPYC 9354P"
  int logical_cpus = 1;
  bool has_avx512() const { return avx512f && avx512bw && avx512vl && avx512dq; }
  bool has_avx2() const { return avx2 && fma && f16c; }
  std::string isa_list() const;  // "avx2 fma f16c avx512f ..."
};

const CpuFeatures& cpu_features();

}  // namespace iotnas::kernels
