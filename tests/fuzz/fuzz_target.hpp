// Fuzz targets: each feeds arbitrary bytes to one reader of outside input. iotnas::Error is the
// expected answer to bad input; any other exception, an assertion (exit 70 in the CLI), a
// sanitizer report or a crash is a finding. The same entry functions run under libFuzzer
// (fuzz_<name>, the debug preset) and in the regression driver (iotnas_fuzz_replay, every build).
// How to run them: docs/testing.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace iotnas::fuzz {

using Entry = void (*)(std::span<const uint8_t> data);

struct Target {
  const char* name;  // fuzz_<name> is its libFuzzer binary, tests/fuzz/{corpus,crashes}/<name>/
  Entry entry;
};

// Every target linked in, in registration order.
std::vector<Target>& targets();
int register_target(const char* name, Entry entry);
const Target* find_target(std::string_view name);

// Runs one input: returns "" when the target accepts it, the message when it refuses it with
// iotnas::Error; prints any other exception's type and message, then aborts (the finding
// libFuzzer records).
std::string run_one(const Target& target, std::span<const uint8_t> data);

// The input as text.
inline std::string_view as_text(std::span<const uint8_t> data) {
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

// Aborts with `what` when an invariant of the target does not hold.
[[noreturn]] void finding(const char* what);

}  // namespace iotnas::fuzz

// Defines and registers target `name`: IOTNAS_FUZZ_TARGET(spec) { ... uses `data` ... }
#define IOTNAS_FUZZ_TARGET(name)                                 \
  static void fuzz_entry_##name(std::span<const uint8_t> data);  \
  [[maybe_unused]] static const int fuzz_registered_##name =     \
      ::iotnas::fuzz::register_target(#name, fuzz_entry_##name); \
  static void fuzz_entry_##name(std::span<const uint8_t> data)
