#include "kernels/base/error.hpp"

namespace iotnas {

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  std::ostringstream os;
  os << "internal error: " << expr << " failed at " << file << ':' << line;
  if (!msg.empty()) os << " (" << msg << ')';
  throw InternalError(os.str());
}

}  // namespace iotnas
