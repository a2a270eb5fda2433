// Errors shared by every iotnas library.
//   iotnas::Error    - bad input from outside (file, flag, config, model); the message names the
//                      input and the fix. apps/ prints it on one line and exits non-zero.
//   IOTNAS_ASSERT    - an internal invariant; always on (also in release builds).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace iotnas {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// An internal bug, not a user error: carries file and line.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

// Builds a message from streamable parts: fail("layer '", name, "': ...").
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}

}  // namespace iotnas

#define IOTNAS_ASSERT(cond, ...)                                                             \
  do {                                                                                       \
    if (!(cond)) ::iotnas::assert_fail(#cond, __FILE__, __LINE__, std::string{__VA_ARGS__}); \
  } while (0)
