// libFuzzer's entry for one target, chosen at compile time (IOTNAS_FUZZ_TARGET_NAME).
#include <cstdio>
#include <cstdlib>

#include "fuzz/fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const iotnas::fuzz::Target* target = [] {
    const iotnas::fuzz::Target* t = iotnas::fuzz::find_target(IOTNAS_FUZZ_TARGET_NAME);
    if (!t) {
      std::fprintf(stderr, "no fuzz target '%s' linked in\n", IOTNAS_FUZZ_TARGET_NAME);
      std::exit(2);
    }
    return t;
  }();
  iotnas::fuzz::run_one(*target, {data, size});
  return 0;
}
