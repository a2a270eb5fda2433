// Helpers for the portable kernels' tests (tests/kernels/portable_*_test.cpp).
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/shapes.hpp"
#include "test_util.hpp"

namespace iotnas::test {

// Sets the OpenMP thread count for a scope.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

// Up to k distinct indices in [0, n), sorted; all of them when n <= k.
inline std::vector<size_t> random_indices(size_t n, size_t k, uint64_t seed) {
  std::vector<size_t> all(n);
  std::iota(all.begin(), all.end(), size_t(0));
  if (n <= k) return all;
  std::mt19937_64 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(k);
  std::sort(all.begin(), all.end());
  return all;
}

template <typename T>
std::vector<T> gather(const std::vector<T>& v, const std::vector<size_t>& idx) {
  std::vector<T> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(v[i]);
  return out;
}

// Exact equality (integer-valued data), NaN fails.
inline ::testing::AssertionResult exactly_equal(const std::vector<float>& got,
                                                const std::vector<double>& want) {
  return all_close(got, want, 0.0, 1e-30);
}

inline ::testing::AssertionResult bitwise_equal(const std::vector<float>& a,
                                                const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      return ::testing::AssertionFailure()
             << "first difference at " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

inline std::vector<double> plus(const std::vector<float>& a, const std::vector<double>& b) {
  std::vector<double> r(b.size());
  for (size_t i = 0; i < b.size(); ++i) r[i] = double(a[i]) + b[i];
  return r;
}

// Square-ish convolution shape builder: out sizes from the floor formula.
inline kernels::ConvShape conv_shape(int n, int c_in, int c_out, int h, int w, int kh, int kw,
                                     int sh = 1, int sw = 1, int ph = 0, int pw = 0,
                                     int groups = 1) {
  kernels::ConvShape s;
  s.n = n, s.c_in = c_in, s.c_out = c_out, s.h_in = h, s.w_in = w, s.kh = kh, s.kw = kw;
  s.sh = sh, s.sw = sw, s.ph = ph, s.pw = pw, s.groups = groups;
  s.h_out = (h + 2 * ph - kh) / sh + 1;
  s.w_out = (w + 2 * pw - kw) / sw + 1;
  return s;
}

inline std::string describe(const kernels::ConvShape& s) {
  std::ostringstream os;
  os << "conv n=" << s.n << " " << s.c_in << "->" << s.c_out << " in " << s.h_in << "x" << s.w_in
     << " k " << s.kh << "x" << s.kw << " stride " << s.sh << "x" << s.sw << " pad " << s.ph << "x"
     << s.pw << " groups " << s.groups;
  return os.str();
}

inline kernels::PoolShape pool_shape(int n, int c, int h, int w, int kh, int kw, int sh, int sw,
                                     int ph, int pw) {
  kernels::PoolShape s;
  s.n = n, s.c = c, s.h_in = h, s.w_in = w, s.kh = kh, s.kw = kw, s.sh = sh, s.sw = sw;
  s.ph = ph, s.pw = pw;
  s.h_out = (h + 2 * ph - kh) / sh + 1;
  s.w_out = (w + 2 * pw - kw) / sw + 1;
  return s;
}

inline std::string describe(const kernels::PoolShape& s) {
  std::ostringstream os;
  os << "pool n=" << s.n << " c=" << s.c << " in " << s.h_in << "x" << s.w_in << " k " << s.kh
     << "x" << s.kw << " stride " << s.sh << "x" << s.sw << " pad " << s.ph << "x" << s.pw;
  return os.str();
}

}  // namespace iotnas::test
