#include "test_util.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

namespace iotnas::test {

uint64_t fresh_seed() {
  if (const char* s = std::getenv("IOTNAS_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  static uint64_t counter = 0;
  return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
         (++counter * 0x9e3779b97f4a7c15ULL);
}

TempDir::TempDir(bool create) {
  static int counter = 0;
  path = std::filesystem::temp_directory_path() /
         ("iotnas-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
          std::to_string(fresh_seed() % 1000000007));
  std::filesystem::remove_all(path);
  if (create) std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::string seed_note(uint64_t seed) {
  return "seed=" + std::to_string(seed) + " (rerun with IOTNAS_TEST_SEED=" + std::to_string(seed) +
         ")";
}

std::vector<float> random_vector(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<float> random_ints(size_t n, uint64_t seed, int lo, int hi) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = float(d(rng));
  return v;
}

template <typename T>
static ::testing::AssertionResult close_impl(const std::vector<float>& got,
                                             const std::vector<T>& want, double rtol, double atol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  size_t bad = 0, first = got.size();
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = got[i], w = double(want[i]);
    double err = g == w ? 0.0 : std::abs(g - w) / (atol + rtol * std::abs(w));
    if (!(err <= 1.0)) {  // NaN fails too
      if (first == got.size()) first = i;
      ++bad;
    }
    if (err > worst || std::isnan(err)) worst = std::isnan(err) ? INFINITY : err;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " elements differ; first at " << first << ": got "
         << got[first] << " want " << double(want[first]) << " (worst error " << worst
         << "x the tolerance rtol=" << rtol << " atol=" << atol << ")";
}

::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<double>& want,
                                     double rtol, double atol) {
  return close_impl(got, want, rtol, atol);
}
::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                     double rtol, double atol) {
  return close_impl(got, want, rtol, atol);
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("IOTNAS_FASHION_MNIST");
  std::string dir = env ? env : IOTNAS_TEST_DATA_DIR;
  if (std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) return dir;
  return "";
}

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

Shell shell(const std::string& command, const std::filesystem::path& scratch) {
  const auto out = scratch / "stdout.txt", err = scratch / "stderr.txt";
  const std::string cmd =
      "(" + command + ") >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
  const int raw = std::system(cmd.c_str());
  Shell s;
  s.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  s.out = read_bytes(out);
  s.err = read_bytes(err);
  return s;
}

}  // namespace iotnas::test
