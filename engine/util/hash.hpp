// Content hashes: SHA-256 from Nettle (Debian's nettle-dev, the library GnuTLS is built on), and
// the unit keys of the experiment store built from it.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace iotnas {

// Lower-case hex SHA-256 (FIPS 180-4) of `data`.
std::string sha256_hex(std::string_view data);

// Lower-case hex SHA-256 of the parts, each prefixed by its decimal length and ':' (so
// {"ab","c"} != {"a","bc"}). The store keys every unit of work by it: changing it would orphan
// every stored unit.
std::string unit_key(std::initializer_list<std::string_view> parts);

}  // namespace iotnas
