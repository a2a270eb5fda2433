// The checkpoint reader, twice per input: as given, and with its CRC-32 made right, so that the
// fuzzer reaches the sections behind the checksum.
#include <zlib.h>

#include <string>

#include "engine/checkpoint.hpp"
#include "fuzz/fuzz_target.hpp"
#include "kernels/base/error.hpp"

namespace {

// The input with the header's checksum field (bytes 24..27) over bytes 8..23 and the content.
std::string with_right_crc(std::string_view in) {
  std::string s(in);
  if (s.size() < 32) return s;
  const auto* b = reinterpret_cast<const Bytef*>(s.data());
  uLong crc = crc32_z(0L, Z_NULL, 0);
  crc = crc32_z(crc, b + 8, 16);
  crc = crc32_z(crc, b + 32, s.size() - 32);
  for (int i = 0; i < 4; ++i) s[24 + i] = char(uint8_t(crc >> (8 * i)));
  return s;
}

}  // namespace

IOTNAS_FUZZ_TARGET(checkpoint) {
  using namespace iotnas;
  try {
    parse_checkpoint(fuzz::as_text(data), "fuzz.ckpt");
  } catch (const Error&) {
  }
  parse_checkpoint(with_right_crc(fuzz::as_text(data)), "fuzz-crc.ckpt");
}
