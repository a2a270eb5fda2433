// Writing output files so that a killed process never leaves a half-written one.
#pragma once

#include <string>
#include <string_view>

namespace iotnas {

// Writes `text` to `path` atomically (temporary file in the same folder, then rename). Throws
// iotnas::Error naming the path when it cannot be written.
void write_file_atomic(const std::string& path, std::string_view text);

}  // namespace iotnas
