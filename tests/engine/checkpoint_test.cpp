// Checkpoints: exact round trip, atomic writes, and a clear error for every kind of bad file.
// The file layout is written here independently from docs/checkpoint-format.md, so the test
// checks the document as well as the code.
#include "engine/checkpoint.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include "engine/graph.hpp"
#include "kernels/base/error.hpp"
#include "test_util.hpp"

namespace iotnas {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error is not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no iotnas::Error thrown";
  return "";
}

#define EXPECT_MENTIONS(msg, part)               \
  EXPECT_NE((msg).find(part), std::string::npos) \
      << "'" << (msg) << "' does not mention '" << (part) << "'"

// A small model with parameters and batch-norm state.
ModelSpec small_spec() {
  ModelSpec m{"ckpt-test", Shape{3, 8, 8}, {}};
  m.layers.push_back(conv("conv1", 4, 3));
  m.layers.push_back(batch_norm("bn1"));
  m.layers.push_back(relu("relu1"));
  m.layers.push_back(global_avg_pool("gap"));
  m.layers.push_back(dense("fc", 5));
  return m;
}

Checkpoint small_checkpoint(uint64_t seed) {
  Checkpoint c;
  c.spec = small_spec();
  const Graph g = build_graph(c.spec);
  c.params = test::random_vector(size_t(g.num_params), seed);
  c.state = test::random_vector(size_t(g.num_state), seed + 1, 0.f, 2.f);
  // Values whose bits must survive: signed zero, a subnormal, infinities, the extremes.
  c.params[0] = -0.f;
  c.params[1] = std::numeric_limits<float>::denorm_min();
  c.params[2] = std::numeric_limits<float>::infinity();
  c.params[3] = -std::numeric_limits<float>::max();
  c.record_json = R"({"epochs": 3, "test_accuracy": 0.8125, "note": "ünïcode"})";
  return c;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i])) << "element " << i;
  }
}

// ---- an independent writer of the documented layout ---------------------------------------------

void le32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char(v >> (8 * i)));
}
void le64(std::string& s, uint64_t v) {
  le32(s, uint32_t(v));
  le32(s, uint32_t(v >> 32));
}
std::string section(const char* tag, const std::string& payload) {
  std::string s(tag, 4);
  le32(s, 0);
  le64(s, payload.size());
  return s + payload;
}
std::string floats(const std::vector<float>& v) {
  std::string s;
  for (float x : v) le32(s, std::bit_cast<uint32_t>(x));
  return s;
}
// Header (magic, version, sections, content bytes, CRC-32 of header bytes 8..23 + content, 0).
std::string assemble(const std::string& content, uint32_t sections, uint32_t version = 1) {
  std::string h = "IOTNASCK";
  le32(h, version);
  le32(h, sections);
  le64(h, content.size());
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(h.data() + 8), 16);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(content.data()), uInt(content.size()));
  le32(h, uint32_t(crc));
  le32(h, 0);
  return h + content;
}

// ---- tests ------------------------------------------------------------------------------------

TEST(Checkpoint, RoundTripIsExact) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  TempDir dir;
  const Checkpoint c = small_checkpoint(seed);
  save_checkpoint(dir / "model.ckpt", c);
  const Checkpoint back = load_checkpoint(dir / "model.ckpt");
  EXPECT_EQ(spec_to_json(back.spec), spec_to_json(c.spec));
  expect_same_bits(back.params, c.params);
  expect_same_bits(back.state, c.state);
  EXPECT_EQ(back.record_json, c.record_json);
  // Empty record, and overwriting an existing file.
  Checkpoint d = small_checkpoint(seed + 5);
  d.record_json.clear();
  save_checkpoint(dir / "model.ckpt", d);
  const Checkpoint back2 = load_checkpoint(dir / "model.ckpt");
  expect_same_bits(back2.params, d.params);
  EXPECT_EQ(back2.record_json, "");
}

TEST(Checkpoint, MatchesTheDocumentedLayout) {
  TempDir dir;
  const Checkpoint c = small_checkpoint(1);
  save_checkpoint(dir / "a.ckpt", c);
  const std::string content = section("SPEC", spec_to_json(c.spec, -1)) +
                              section("PARM", floats(c.params)) + section("STAT", floats(c.state)) +
                              section("RECD", c.record_json);
  EXPECT_EQ(read_file(dir / "a.ckpt"), assemble(content, 4));
  // Sections may come in any order, and unknown ones are skipped.
  const std::string reordered =
      section("RECD", "{}") + section("XTRA", "future data") + section("STAT", floats(c.state)) +
      section("PARM", floats(c.params)) + section("SPEC", spec_to_json(c.spec));
  write_file(dir / "b.ckpt", assemble(reordered, 5));
  const Checkpoint b = load_checkpoint(dir / "b.ckpt");
  expect_same_bits(b.params, c.params);
  EXPECT_EQ(b.record_json, "{}");
}

TEST(Checkpoint, AtomicWriteLeavesNoTemporaryFile) {
  TempDir dir;
  save_checkpoint(dir / "m.ckpt", small_checkpoint(2));
  save_checkpoint(dir / "m.ckpt", small_checkpoint(3));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"m.ckpt"});
  // A directory that does not exist: a clear error, and nothing written anywhere.
  const std::string msg =
      error_of([&] { save_checkpoint(dir / "no/such/m.ckpt", small_checkpoint(2)); });
  EXPECT_MENTIONS(msg, "cannot write");
  EXPECT_MENTIONS(msg, "no/such/m.ckpt");
  EXPECT_MENTIONS(msg, "No such file or directory");
  // A failed save leaves the previous file intact.
  Checkpoint bad = small_checkpoint(4);
  bad.params.pop_back();
  EXPECT_MENTIONS(error_of([&] { save_checkpoint(dir / "m.ckpt", bad); }), "parameters");
  expect_same_bits(load_checkpoint(dir / "m.ckpt").params, small_checkpoint(3).params);
  names.clear();
  for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"m.ckpt"});
}

// Checkpoints follow the output-file rules of engine/util/files.hpp: a device stays a device
// (`train --out /dev/null` as root replaced /dev/null before), a link stays a link, a directory is
// refused by name.
TEST(Checkpoint, SavesThroughDevicesAndLinksAndRefusesDirectories) {
  TempDir dir;
  const std::string null_copy = dir / "null";
  if (::mknod(null_copy.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    save_checkpoint(null_copy, small_checkpoint(2));
    struct stat st {};
    ASSERT_EQ(::stat(null_copy.c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
  save_checkpoint(dir / "real.ckpt", small_checkpoint(2));
  fs::create_symlink("real.ckpt", dir / "link.ckpt");
  save_checkpoint(dir / "link.ckpt", small_checkpoint(3));
  EXPECT_TRUE(fs::is_symlink(dir / "link.ckpt"));
  expect_same_bits(load_checkpoint(dir / "real.ckpt").params, small_checkpoint(3).params);
  fs::create_directory(dir / "sub");
  EXPECT_MENTIONS(error_of([&] { save_checkpoint(dir / "sub", small_checkpoint(2)); }),
                  "is a directory");
  EXPECT_TRUE(fs::is_directory(dir / "sub"));
}

TEST(Checkpoint, SaveChecksItsInput) {
  TempDir dir;
  Checkpoint c = small_checkpoint(1);
  c.state.push_back(1.f);
  EXPECT_MENTIONS(error_of([&] { save_checkpoint(dir / "x", c); }), "state");
  c = small_checkpoint(1);
  c.record_json = "{not json";
  EXPECT_MENTIONS(error_of([&] { save_checkpoint(dir / "x", c); }), "not valid JSON");
  c = small_checkpoint(1);
  c.spec.layers[4].inputs = {"nowhere"};
  EXPECT_MENTIONS(error_of([&] { save_checkpoint(dir / "x", c); }), "nowhere");
  EXPECT_FALSE(fs::exists(dir / "x"));
}

TEST(Checkpoint, TruncatedFilesSaySo) {
  TempDir dir;
  save_checkpoint(dir / "m.ckpt", small_checkpoint(7));
  const std::string full = read_file(dir / "m.ckpt");
  for (size_t keep : {size_t(4), size_t(8), size_t(20), size_t(31), size_t(32), size_t(40),
                      full.size() / 2, full.size() - 1}) {
    SCOPED_TRACE("keep " + std::to_string(keep) + " of " + std::to_string(full.size()));
    write_file(dir / "cut.ckpt", full.substr(0, keep));
    const std::string msg = error_of([&] { load_checkpoint(dir / "cut.ckpt"); });
    EXPECT_MENTIONS(msg, "truncated");
    EXPECT_MENTIONS(msg, "cut.ckpt");
  }
  write_file(dir / "long.ckpt", full + "x");
  EXPECT_MENTIONS(error_of([&] { load_checkpoint(dir / "long.ckpt"); }), "damaged");
}

TEST(Checkpoint, FlippedBitsAreDamage) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(test::seed_note(seed));
  TempDir dir;
  save_checkpoint(dir / "m.ckpt", small_checkpoint(8));
  const std::string full = read_file(dir / "m.ckpt");
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bad = full;
    const size_t at = 32 + rng() % (full.size() - 32);  // in the content
    bad[at] = char(bad[at] ^ (1 << (rng() % 8)));
    write_file(dir / "bad.ckpt", bad);
    const std::string msg = error_of([&] { load_checkpoint(dir / "bad.ckpt"); });
    ASSERT_NE(msg.find("damaged"), std::string::npos) << "byte " << at << ": " << msg;
  }
  // Any header byte: some clear error (the magic: "not a checkpoint"; the length: "truncated").
  for (size_t at = 0; at < 32; ++at) {
    std::string bad = full;
    bad[at] = char(bad[at] ^ 0x04);
    write_file(dir / "bad.ckpt", bad);
    const std::string msg = error_of([&] { load_checkpoint(dir / "bad.ckpt"); });
    EXPECT_MENTIONS(msg, "bad.ckpt");
    if (at < 8) {
      EXPECT_MENTIONS(msg, "not an iotnas checkpoint");
    }
  }
}

TEST(Checkpoint, ForeignFilesAreNotCheckpoints) {
  TempDir dir;
  write_file(dir / "spec.json", spec_to_json(small_spec()));
  write_file(dir / "empty", "");
  write_file(dir / "image.png", std::string("\x89PNG\r\n\x1a\n", 8) + std::string(100, '\0'));
  for (const char* name : {"spec.json", "empty", "image.png"}) {
    const std::string msg = error_of([&] { load_checkpoint(dir / name); });
    EXPECT_MENTIONS(msg, "not an iotnas checkpoint");
    EXPECT_MENTIONS(msg, name);
  }
  EXPECT_MENTIONS(error_of([&] { load_checkpoint(dir / "missing"); }), "does not exist");
  EXPECT_MENTIONS(error_of([&] { load_checkpoint(dir.path.string()); }), "not a file");
}

TEST(Checkpoint, NewerVersionAsksForAnUpgrade) {
  TempDir dir;
  const Checkpoint c = small_checkpoint(1);
  const std::string content = section("SPEC", spec_to_json(c.spec)) +
                              section("PARM", floats(c.params)) + section("STAT", floats(c.state));
  write_file(dir / "v2.ckpt", assemble(content, 3, 2));
  const std::string msg = error_of([&] { load_checkpoint(dir / "v2.ckpt"); });
  EXPECT_MENTIONS(msg, "newer iotnas");
  EXPECT_MENTIONS(msg, "format version 2");
  // Without a record section, version 1 loads.
  write_file(dir / "v1.ckpt", assemble(content, 3, 1));
  EXPECT_EQ(load_checkpoint(dir / "v1.ckpt").record_json, "");
}

TEST(Checkpoint, ConsistentChecksumButWrongContentIsAnError) {
  TempDir dir;
  const Checkpoint c = small_checkpoint(1);
  const std::string spec = section("SPEC", spec_to_json(c.spec));
  const std::string params = section("PARM", floats(c.params));
  const std::string state = section("STAT", floats(c.state));
  auto load = [&](const std::string& content, uint32_t sections) {
    write_file(dir / "x.ckpt", assemble(content, sections));
    return error_of([&] { load_checkpoint(dir / "x.ckpt"); });
  };
  std::vector<float> short_params(c.params.begin(), c.params.end() - 1);
  EXPECT_MENTIONS(load(spec + section("PARM", floats(short_params)) + state, 3), "incompatible");
  EXPECT_MENTIONS(load(spec + state, 2), "no PARM section");
  EXPECT_MENTIONS(load(params + state, 2), "no SPEC section");
  EXPECT_MENTIONS(load(spec + params, 2), "no STAT section");
  EXPECT_MENTIONS(load(spec + params + params + state, 4), "two PARM sections");
  EXPECT_MENTIONS(load(spec + section("PARM", "abc") + state, 3), "whole number of floats");
  EXPECT_MENTIONS(load(spec + params + state, 4), "past the end");
  EXPECT_MENTIONS(load(spec + params + state + "zz", 3), "after the last section");
  EXPECT_MENTIONS(load(spec + params + state + section("RECD", "{oops"), 4), "not valid JSON");
  EXPECT_MENTIONS(load(section("SPEC", "{}") + params + state, 3), "model spec");
  std::string huge = section("PARM", "");
  huge[8] = '\xff';  // length field far beyond the file
  EXPECT_MENTIONS(load(spec + huge + state, 3), "past the end");
}

TEST(Checkpoint, NonZeroReservedFieldsAreDamage) {
  TempDir dir;
  const Checkpoint c = small_checkpoint(1);
  const std::string spec = section("SPEC", spec_to_json(c.spec));
  std::string params = section("PARM", floats(c.params));
  const std::string state = section("STAT", floats(c.state));
  params[5] = 1;  // the section's reserved field (bytes 4..7 of its head)
  write_file(dir / "s.ckpt", assemble(spec + params + state, 3));
  std::string msg = error_of([&] { load_checkpoint(dir / "s.ckpt"); });
  EXPECT_MENTIONS(msg, "damaged");
  EXPECT_MENTIONS(msg, "reserved field of section 2");
  std::string file = assemble(spec + section("PARM", floats(c.params)) + state, 3);
  file[31] = 1;  // the header's reserved field
  write_file(dir / "h.ckpt", file);
  EXPECT_MENTIONS(error_of([&] { load_checkpoint(dir / "h.ckpt"); }), "reserved header field");
}

TEST(Checkpoint, ParsesFromMemoryAsFromTheFile) {
  TempDir dir;
  const Checkpoint c = small_checkpoint(2);
  save_checkpoint(dir / "m.ckpt", c);
  std::ifstream f(dir / "m.ckpt", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const Checkpoint m = parse_checkpoint(bytes, "mem");
  expect_same_bits(m.params, c.params);
  expect_same_bits(m.state, c.state);
  EXPECT_MENTIONS(error_of([&] { parse_checkpoint(bytes.substr(0, 40), "mem"); }), "'mem'");
}

}  // namespace
}  // namespace iotnas
