#include "fuzz/fuzz_target.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "kernels/base/error.hpp"

namespace iotnas::fuzz {

std::vector<Target>& targets() {
  static std::vector<Target> all;
  return all;
}

int register_target(const char* name, Entry entry) {
  targets().push_back({name, entry});
  return int(targets().size());
}

const Target* find_target(std::string_view name) {
  for (const Target& t : targets()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

void finding(const char* what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

std::string run_one(const Target& target, std::span<const uint8_t> data) {
  try {
    target.entry(data);
  } catch (const Error& e) {
    return e.what();  // bad input refused with a message: the expected answer
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz finding in target '%s': uncaught %s: %s\n", target.name,
                 typeid(e).name(), e.what());
    std::fflush(stderr);
    std::abort();
  }
  return "";
}

}  // namespace iotnas::fuzz
