// engine/util: the random-number generators keep their bits, SHA-256 and unit keys match the
// published examples, gnuplot is found and run (or its absence is told), and output files are
// replaced atomically, devices and FIFOs written through, links followed, directories refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "engine/model.hpp"
#include "engine/util/files.hpp"
#include "engine/util/hash.hpp"
#include "engine/util/plot.hpp"
#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"
#include "test_util.hpp"

namespace iotnas {
namespace {

TEST(UtilHash, Sha256MatchesPublishedExamples) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Length prefixes: part boundaries matter. The value is the one the hand-written SHA-256 of
  // earlier versions gave, so stores written by them keep their keys.
  EXPECT_NE(unit_key({"ab", "c"}), unit_key({"a", "bc"}));
  EXPECT_EQ(unit_key({"ab", "c"}), sha256_hex("2:ab1:c"));
  EXPECT_EQ(unit_key({"model", "{}"}),
            "76c4ac1cce0328a5745e856355eb7099be4724ea1bf8d38c2ad324b61b4a33b1");
}

#if defined(__GLIBCXX__)
// The weight initialiser used std::uniform_real_distribution<float> on std::mt19937_64 before
// engine/util/rng.hpp; uniform_float must give the same floats (libstdc++ is what built them).
TEST(UtilRng, UniformFloatEqualsLibstdcxxDistribution) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 a(seed), b(seed);
  for (float bound : {1.f, 0.5f, 1.f / 3.f, 0.0625f, 1e-3f, 7.f}) {
    std::uniform_real_distribution<float> u(-bound, bound);
    for (int i = 0; i < 200000; ++i) {
      const float x = u(a), y = uniform_float(b, -bound, bound);
      ASSERT_EQ(x, y) << "bound " << bound << " draw " << i << " " << test::seed_note(seed);
    }
  }
  std::uniform_real_distribution<double> unit(0, 1);
  for (int i = 0; i < 200000; ++i) ASSERT_EQ(unit(a), uniform_unit(b)) << test::seed_note(seed);
}

TEST(UtilRng, ModelWeightsAreDrawnAsBefore) {
  ModelSpec spec;
  spec.input = {1, 8, 8};
  spec.layers = {conv("c1", 4, 3), relu("r1"), global_avg_pool("g"), dense("fc", 3)};
  const Model m = make_model(spec, 42);
  std::mt19937_64 rng(42);
  size_t k = 0;
  for (const Node& n : m.graph.nodes) {
    if (n.layer.op != Op::conv2d && n.layer.op != Op::dense) continue;
    const float bound = 1.0f / std::sqrt(float(n.weight_count / n.layer.out_channels));
    std::uniform_real_distribution<float> u(-bound, bound);
    for (int64_t i = 0; i < n.weight_count + n.bias_count; ++i, ++k)
      ASSERT_EQ(m.params[size_t(n.param_offset + i)], u(rng)) << n.layer.name << " " << i;
  }
  EXPECT_EQ(k, m.params.size());
}
#endif

TEST(UtilRng, SameSeedSameStreamsDifferentSeedsDiffer) {
  Rng a(7, 3), b(7, 3), c(7, 4);
  StreamRng s(stream_key(7, 1, 2)), t(stream_key(7, 1, 2)), u(stream_key(7, 2, 1));
  int same_c = 0, same_u = 0;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = a.next();
    ASSERT_EQ(x, b.next());
    same_c += x == c.next();
    const uint64_t y = s.next();
    ASSERT_EQ(y, t.next());
    same_u += y == u.next();
  }
  EXPECT_EQ(same_c, 0);
  EXPECT_EQ(same_u, 0);
  // below(n) stays below n and reaches both ends.
  bool low = false, high = false;
  for (int i = 0; i < 10000; ++i) {
    const uint32_t v = a.below(7);
    const uint64_t w = s.below(7);
    ASSERT_LT(v, 7u);
    ASSERT_LT(w, 7u);
    low |= v == 0 || w == 0;
    high |= v == 6 || w == 6;
  }
  EXPECT_TRUE(low);
  EXPECT_TRUE(high);
  // normal(): mean near 0, variance near 1.
  double sum = 0, sq = 0;
  for (int i = 0; i < 100000; ++i) {
    const double z = a.normal();
    sum += z;
    sq += z * z;
  }
  EXPECT_NEAR(sum / 1e5, 0.0, 0.02);
  EXPECT_NEAR(sq / 1e5, 1.0, 0.02);
}

TEST(UtilPlot, GnuplotRunsAScriptOrIsReportedMissing) {
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty()) GTEST_SKIP() << "gnuplot is not installed";
  const auto dir = std::filesystem::temp_directory_path() /
                   ("iotnas_plot_" + std::to_string(test::fresh_seed() % 1000000007));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "ok.gp") << "set terminal svg\nset output 'ok.svg'\nplot x\n";
  std::ofstream(dir / "bad.gp") << "this is not gnuplot\n";
  EXPECT_EQ(run_gnuplot(gnuplot, dir.string(), "ok.gp"), "");
  EXPECT_TRUE(std::filesystem::exists(dir / "ok.svg"));
  const std::string why = run_gnuplot(gnuplot, dir.string(), "bad.gp");
  EXPECT_NE(why.find("bad.gp"), std::string::npos) << why;
  std::filesystem::remove_all(dir);
}

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The message of the Error that write_file_atomic(path, text) throws ("" when it throws none).
std::string write_error(const std::string& path, std::string_view text) {
  try {
    write_file_atomic(path, text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Nothing but `names` in dir (no temporary file left behind).
void expect_only(const fs::path& dir, std::set<std::string> names) {
  std::set<std::string> got;
  for (const auto& e : fs::directory_iterator(dir)) got.insert(e.path().filename().string());
  EXPECT_EQ(got, names);
}

TEST(UtilFiles, ReplacesARegularFileKeepingItsModeAndCreatesANewOne) {
  test::TempDir dir;
  const fs::path file = dir.path / "out.json";
  write_file_atomic(file.string(), "first\n");
  EXPECT_EQ(read_text(file), "first\n");
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  write_file_atomic(file.string(), "second\n");
  EXPECT_EQ(read_text(file), "second\n");
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  expect_only(dir.path, {"out.json"});
  // A missing folder: the system's reason, no file.
  const std::string why = write_error((dir.path / "none" / "x.csv").string(), "x");
  EXPECT_NE(why.find("No such file or directory"), std::string::npos) << why;
  expect_only(dir.path, {"out.json"});
}

TEST(UtilFiles, RefusesADirectoryNamingIt) {
  test::TempDir dir;
  const std::string why = write_error(dir.str(), "x");
  EXPECT_NE(why.find("cannot write '" + dir.str() + "': it is a directory"), std::string::npos)
      << why;
  EXPECT_EQ(why.find("Success"), std::string::npos) << why;
  EXPECT_TRUE(fs::is_directory(dir.path));
  expect_only(dir.path, {});
}

// A copy of a memory device (mknod needs root; a container may also refuse to open it).
bool make_device(const fs::path& p, unsigned minor) {
  if (::mknod(p.c_str(), S_IFCHR | 0666, makedev(1, minor)) != 0) return false;
  const int fd = ::open(p.c_str(), O_WRONLY);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

void expect_device(const fs::path& p, unsigned minor) {
  struct stat st {};
  ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << p << " was replaced";
  EXPECT_EQ(st.st_rdev, makedev(1, minor)) << p;
}

TEST(UtilFiles, WritesThroughADeviceAndReportsItsErrors) {
  test::TempDir dir;
  const fs::path null = dir.path / "null", full = dir.path / "full";
  if (!make_device(null, 3) || !make_device(full, 7))
    GTEST_SKIP() << "cannot make device nodes here (" << std::strerror(errno) << ")";
  write_file_atomic(null.string(), "gone\n");
  expect_device(null, 3);
  const std::string why = write_error(full.string(), "text");
  EXPECT_NE(why.find("cannot write '" + full.string() + "': No space left on device"),
            std::string::npos)
      << why;
  EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  expect_device(full, 7);
  expect_only(dir.path, {"null", "full"});
}

TEST(UtilFiles, WritesThroughAFifo) {
  test::TempDir dir;
  const fs::path fifo = dir.path / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string text(100000, 'x');  // more than a pipe holds: the reader must drain it
  std::string got;
  std::thread reader([&] { got = read_text(fifo); });
  write_file_atomic(fifo.string(), text);
  reader.join();
  EXPECT_EQ(got, text);
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  expect_only(dir.path, {"fifo"});
}

TEST(UtilFiles, FollowsSymbolicLinksAndKeepsThem) {
  test::TempDir dir;
  fs::create_directories(dir.path / "real");
  const fs::path target = dir.path / "real" / "out.csv", link = dir.path / "link.csv";
  std::ofstream(target) << "old";
  fs::create_symlink("real/out.csv", link);  // relative to the link's folder
  write_file_atomic(link.string(), "new");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_text(target), "new");
  // A chain of links, the last pointing at nothing yet: the file is made where it points.
  fs::create_symlink(dir.path / "real" / "later.csv", dir.path / "dangling");
  fs::create_symlink("dangling", dir.path / "chain");
  write_file_atomic((dir.path / "chain").string(), "made");
  EXPECT_EQ(read_text(dir.path / "real" / "later.csv"), "made");
  EXPECT_TRUE(fs::is_symlink(dir.path / "chain"));
  EXPECT_TRUE(fs::is_symlink(dir.path / "dangling"));
  // A link to a folder, and a loop: refused.
  fs::create_directory_symlink("real", dir.path / "to_dir");
  EXPECT_NE(write_error((dir.path / "to_dir").string(), "x").find("is a directory"),
            std::string::npos);
  fs::create_symlink("loop", dir.path / "loop");
  EXPECT_NE(write_error((dir.path / "loop").string(), "x").find("Too many levels"),
            std::string::npos);
  expect_only(dir.path / "real", {"out.csv", "later.csv"});
}

// Run in a folder of its own, where writing a file named "-" would show.
TEST(UtilFiles, DashIsStandardOutput) {
  test::TempDir dir;
  const fs::path file = dir.path / "stdout.txt";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path);
  std::fflush(stdout);
  const int saved = ::dup(STDOUT_FILENO);
  ::dup2(fd, STDOUT_FILENO);
  const std::string why = write_error("-", "to stdout\n");
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  ::close(fd);
  fs::current_path(cwd);
  EXPECT_EQ(why, "");
  EXPECT_EQ(read_text(file), "to stdout\n");
  expect_only(dir.path, {"stdout.txt"});
}

}  // namespace
}  // namespace iotnas
