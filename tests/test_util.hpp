// Helpers shared by every test program: seeded random data (the seed is printed on failure),
// NaN-prefilled outputs so unwritten elements fail, and tolerant comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace iotnas::test {

// A fresh seed per call (from the clock unless IOTNAS_TEST_SEED is set), recorded into the
// current test's output with SCOPED_TRACE-like messages via seed_note().
uint64_t fresh_seed();
std::string seed_note(uint64_t seed);  // "seed=N (rerun with IOTNAS_TEST_SEED=N)"

std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);
// Integer values in [lo, hi]: products and sums stay exact in float for small problems.
std::vector<float> random_ints(size_t n, uint64_t seed, int lo = -3, int hi = 3);
inline std::vector<float> nan_vector(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// Max over i of |a-b| / (atol + rtol*|b|) <= 1, reporting the first offending index.
::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<double>& want,
                                     double rtol, double atol);
::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                     double rtol, double atol);

// A fresh folder under the system's temporary directory (unique per process and object), removed
// with everything in it when the object goes. `create` false: only the path is reserved (for
// tests of code that must create it, or must refuse to).
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(bool create = true);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path.string(); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// The bytes of a file ("" when it cannot be read).
std::string read_bytes(const std::filesystem::path& p);

// What a command printed and how it ended.
struct Shell {
  int status = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};
// Runs `command` with /bin/sh, stdin from /dev/null, stdout and stderr through files in `scratch`.
Shell shell(const std::string& command, const std::filesystem::path& scratch);

// Path of the Fashion-MNIST files, or "" when they are absent (tests then skip).
std::string fashion_mnist_dir();

}  // namespace iotnas::test
