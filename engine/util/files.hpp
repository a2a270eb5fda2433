// Writing output files so that a killed process never leaves a half-written one.
#pragma once

#include <string>
#include <string_view>

namespace iotnas {

// Writes `text` to `path`, by what `path` is (docs/run.md, "Output files"):
// - a regular file, or nothing yet: atomically (a temporary file in the same folder, fsync, then
//   rename over the old one, keeping its permission bits), so a reader sees the old or the new
//   text, never a part;
// - "-": standard output; a character or block device, a FIFO: written through, in place;
// - a symbolic link: followed (up to 40 links), and what it points at written as above; the link
//   stays;
// - a directory, or anything else: refused.
// Throws iotnas::Error naming the path and the system's reason (e.g. ENOSPC) when it cannot be
// written; a temporary file is removed again.
void write_file_atomic(const std::string& path, std::string_view text);

}  // namespace iotnas
