#include "engine/checkpoint.hpp"

#include <zlib.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/graph.hpp"
#include "engine/util/files.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

namespace fs = std::filesystem;

constexpr std::array<char, 8> kMagic = {'I', 'O', 'T', 'N', 'A', 'S', 'C', 'K'};
constexpr size_t kHeaderBytes = 32;          // magic, version, sections, content bytes, crc, 0
constexpr size_t kCrcFrom = 8, kCrcTo = 24;  // header bytes covered by the checksum
constexpr size_t kSectionHeadBytes = 16;     // tag, reserved, length

// Section tags, four ASCII bytes as they appear in the file.
constexpr uint32_t tag_of(const char (&s)[5]) {
  return uint32_t(uint8_t(s[0])) | uint32_t(uint8_t(s[1])) << 8 | uint32_t(uint8_t(s[2])) << 16 |
         uint32_t(uint8_t(s[3])) << 24;
}
constexpr uint32_t kTagSpec = tag_of("SPEC"), kTagParams = tag_of("PARM"),
                   kTagState = tag_of("STAT"), kTagRecord = tag_of("RECD");

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t get_u64(const uint8_t* p) {
  return uint64_t(get_u32(p)) | uint64_t(get_u32(p + 4)) << 32;
}

void put_section(std::string& out, uint32_t tag, const std::string& payload) {
  put_u32(out, tag);
  put_u32(out, 0);
  put_u64(out, payload.size());
  out += payload;
}

std::string floats_le(const std::vector<float>& v) {
  std::string out;
  out.reserve(v.size() * 4);
  for (float x : v) put_u32(out, std::bit_cast<uint32_t>(x));
  return out;
}

uint32_t checksum(const uint8_t* header, const uint8_t* content, size_t content_bytes) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  crc = crc32_z(crc, header + kCrcFrom, kCrcTo - kCrcFrom);
  crc = crc32_z(crc, content, content_bytes);
  return uint32_t(crc);
}

struct Sizes {
  int64_t params = 0, state = 0;
};

Sizes graph_sizes(const ModelSpec& spec, const std::string& path) {
  try {
    const Graph g = build_graph(spec);
    return {g.num_params, g.num_state};
  } catch (const Error& e) {
    fail("checkpoint '", path, "': its model spec is invalid: ", e.what());
  }
}

[[noreturn]] void damaged(const std::string& path, const std::string& why) {
  fail("checkpoint '", path, "' is damaged (", why,
       "); restore it from a good copy or train the model again");
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  const Sizes want = graph_sizes(ckpt.spec, path);
  if (int64_t(ckpt.params.size()) != want.params || int64_t(ckpt.state.size()) != want.state) {
    fail("cannot save checkpoint '", path, "': ", ckpt.params.size(), " parameters and ",
         ckpt.state.size(), " state values given, the spec needs ", want.params, " and ",
         want.state);
  }
  if (!ckpt.record_json.empty() && !nlohmann::json::accept(ckpt.record_json)) {
    fail("cannot save checkpoint '", path, "': the training record is not valid JSON");
  }
  std::string content;
  put_section(content, kTagSpec, spec_to_json(ckpt.spec, -1));
  put_section(content, kTagParams, floats_le(ckpt.params));
  put_section(content, kTagState, floats_le(ckpt.state));
  put_section(content, kTagRecord, ckpt.record_json);

  std::string file(kMagic.begin(), kMagic.end());
  put_u32(file, kCheckpointVersion);
  put_u32(file, 4);  // sections
  put_u64(file, content.size());
  put_u32(file, 0);  // checksum, filled in below
  put_u32(file, 0);  // reserved
  const uint32_t crc = checksum(reinterpret_cast<const uint8_t*>(file.data()),
                                reinterpret_cast<const uint8_t*>(content.data()), content.size());
  for (int i = 0; i < 4; ++i) file[kCrcTo + i] = char(uint8_t(crc >> (8 * i)));
  file += content;

  // The shared writer: atomic in place of a regular file, through a device, FIFO or '-',
  // following symlinks, refusing a directory (docs/run.md, "Output files").
  write_file_atomic(path, file);
}

namespace {

// Checks the header of a `size`-byte file whose first min(size, 32) bytes are `head`: magic,
// version, reserved field, and the announced content length against the file's.
void check_header(std::string_view head, size_t size, const std::string& path) {
  const uint8_t* b = reinterpret_cast<const uint8_t*>(head.data());
  const size_t magic_seen = std::min(size, kMagic.size());
  if (size == 0 || std::memcmp(b, kMagic.data(), magic_seen) != 0) {
    fail("'", path, "' is not an iotnas checkpoint (it does not start with 'IOTNASCK'); pass ",
         "a file written by `iotnas train --out FILE`");
  }
  if (size < kHeaderBytes) {
    fail("checkpoint '", path, "' is truncated: ", size, " bytes, shorter than its ", kHeaderBytes,
         "-byte header; copy it again or train the model again");
  }
  const uint32_t version = get_u32(b + 8);
  if (version > kCheckpointVersion) {
    fail("checkpoint '", path, "' was written by a newer iotnas (format version ", version,
         "; this build reads up to ", kCheckpointVersion, "): upgrade iotnas to load it");
  }
  if (version == 0) damaged(path, "format version 0");
  if (get_u32(b + 28) != 0) damaged(path, "reserved header field is not zero");
  const uint64_t content_bytes = get_u64(b + 16);
  const size_t have = size - kHeaderBytes;
  if (content_bytes > have) {
    fail("checkpoint '", path, "' is truncated: its header announces ",
         kHeaderBytes + content_bytes, " bytes, the file has ", size,
         "; the write or copy was interrupted: copy it again or train the model again");
  }
  if (content_bytes < have) {
    damaged(path, std::to_string(have - content_bytes) + " bytes after the announced end");
  }
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail("checkpoint '", path, "' does not exist or is not a file; pass the file that ",
         "`iotnas train --out FILE` wrote");
  }
  const size_t size = size_t(fs::file_size(path, ec));
  std::ifstream f(path, std::ios::binary);
  if (ec || !f) fail("cannot read checkpoint '", path, "': ", std::strerror(errno));
  // The header first: a large foreign file is rejected without reading it all.
  std::string bytes(std::min(size, kHeaderBytes), '\0');
  auto read_into = [&](size_t from) {
    if (!f.read(bytes.data() + from, std::streamsize(bytes.size() - from))) {
      fail("cannot read checkpoint '", path, "': ", std::strerror(errno));
    }
  };
  read_into(0);
  check_header(bytes, size, path);
  bytes.resize(size);
  read_into(kHeaderBytes);
  return parse_checkpoint(bytes, path);
}

Checkpoint parse_checkpoint(std::string_view bytes, const std::string& path) {
  check_header(bytes.substr(0, kHeaderBytes), bytes.size(), path);
  const uint8_t* b = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint32_t sections = get_u32(b + 12);
  const uint64_t content_bytes = get_u64(b + 16);
  const uint32_t stored_crc = get_u32(b + 24);
  const uint8_t* content = b + kHeaderBytes;
  const uint32_t crc = checksum(b, content, content_bytes);
  if (crc != stored_crc) {
    std::ostringstream why;
    why << "checksum mismatch: stored " << std::hex << stored_crc << ", computed " << crc;
    damaged(path, why.str());
  }

  // Sections. Unknown tags are skipped: a later version 1 writer may add some.
  const std::string* spec_json = nullptr;
  Checkpoint ckpt;
  bool have_params = false, have_state = false, have_record = false;
  std::string spec_text;
  size_t at = 0;
  auto floats = [&](const uint8_t* p, uint64_t n, const char* what) {
    if (n % 4 != 0) damaged(path, std::string(what) + " section is not a whole number of floats");
    std::vector<float> v(n / 4);
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::bit_cast<float>(get_u32(p + 4 * i));
    return v;
  };
  for (uint32_t s = 0; s < sections; ++s) {
    if (content_bytes - at < kSectionHeadBytes) damaged(path, "section list runs past the end");
    const uint8_t* head = content + at;
    const uint32_t tag = get_u32(head);
    if (get_u32(head + 4) != 0) {
      damaged(path, "reserved field of section " + std::to_string(s + 1) + " is not zero");
    }
    const uint64_t len = get_u64(head + 8);
    at += kSectionHeadBytes;
    if (len > content_bytes - at) damaged(path, "a section runs past the end");
    const uint8_t* payload = content + at;
    at += len;
    auto once = [&](bool& seen, const char* name) {
      if (seen) damaged(path, std::string("two ") + name + " sections");
      seen = true;
    };
    if (tag == kTagSpec) {
      if (spec_json) damaged(path, "two SPEC sections");
      spec_text.assign(reinterpret_cast<const char*>(payload), len);
      spec_json = &spec_text;
    } else if (tag == kTagParams) {
      once(have_params, "PARM");
      ckpt.params = floats(payload, len, "PARM");
    } else if (tag == kTagState) {
      once(have_state, "STAT");
      ckpt.state = floats(payload, len, "STAT");
    } else if (tag == kTagRecord) {
      once(have_record, "RECD");
      ckpt.record_json.assign(reinterpret_cast<const char*>(payload), len);
    }
  }
  if (at != content_bytes) damaged(path, "bytes after the last section");
  if (!spec_json) damaged(path, "no SPEC section");
  if (!have_params) damaged(path, "no PARM section");
  if (!have_state) damaged(path, "no STAT section");
  if (!ckpt.record_json.empty() && !nlohmann::json::accept(ckpt.record_json)) {
    damaged(path, "the training record is not valid JSON");
  }
  ckpt.spec = parse_spec(*spec_json, "checkpoint '" + path + "' (model spec)");
  const Sizes want = graph_sizes(ckpt.spec, path);
  if (int64_t(ckpt.params.size()) != want.params || int64_t(ckpt.state.size()) != want.state) {
    fail("checkpoint '", path, "' holds ", ckpt.params.size(), " parameters and ",
         ckpt.state.size(), " state values but its model spec needs ", want.params, " and ",
         want.state, ": written by an incompatible iotnas build; train the model again");
  }
  return ckpt;
}

}  // namespace iotnas
