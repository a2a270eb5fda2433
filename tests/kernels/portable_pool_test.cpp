// Portable max, average and global average pooling against the naive reference: max pooling on
// integer data full of ties (the first maximum in row-major window order wins), backward by
// central finite differences of the double reference, skipping probes whose perturbation changes
// a window's winner (a kink).
#include <gtest/gtest.h>

#include <vector>

#include "kernels/portable/ops.hpp"
#include "portable_helpers.hpp"
#include "reference/nn.hpp"
#include "test_util.hpp"

namespace iotnas::kernels::portable {
namespace {

using test::describe;
using test::exactly_equal;
using test::fresh_seed;
using test::nan_vector;
using test::pool_shape;
using test::random_ints;
using test::random_vector;
using test::seed_note;

// pool_shape(n, c, h, w, kh, kw, sh, sw, ph, pw)
std::vector<PoolShape> pool_cases() {
  return {
      pool_shape(1, 8, 28, 28, 2, 2, 2, 2, 0, 0),   // the nets' 2x2 pooling
      pool_shape(3, 5, 7, 7, 2, 2, 2, 2, 0, 0),     // odd size: last row/column dropped
      pool_shape(2, 12, 14, 14, 2, 2, 2, 2, 0, 0),  // 7 outputs per row
      pool_shape(1, 3, 8, 9, 2, 2, 2, 2, 0, 0),     // 4 per row, odd width
      pool_shape(2, 2, 19, 34, 2, 2, 2, 2, 0, 0),   // 17 per row, odd height
      pool_shape(2, 17, 13, 11, 3, 3, 2, 2, 1, 1),  // 3x3 stride 2 pad 1
      pool_shape(1, 16, 9, 9, 3, 3, 1, 1, 1, 1),    // 3x3 stride 1 pad 1
      pool_shape(2, 3, 8, 9, 2, 3, 1, 2, 0, 1),     // non-square
      pool_shape(1, 4, 11, 11, 5, 5, 3, 3, 2, 2),   // 5x5 stride 3
      pool_shape(3, 2, 7, 7, 7, 7, 1, 1, 0, 0),     // global-sized window
      pool_shape(5, 1, 6, 6, 1, 1, 1, 1, 0, 0),     // identity
  };
}

TEST(PortableMaxPool, ForwardExactWithTiesFirstWins) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const PoolShape& s : pool_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_ints(s.src_size(), seed + i++, -2, 2);  // many ties
    const auto want = ref::max_pool_fwd(s, ref::to_double(src));
    auto dst = nan_vector(s.dst_size());
    std::vector<int32_t> argmax(size_t(s.dst_size()), -7);
    max_pool_fwd(s, src.data(), dst.data(), argmax.data());
    EXPECT_TRUE(exactly_equal(dst, want.dst));
    EXPECT_EQ(argmax, want.argmax);
    dst = nan_vector(s.dst_size());
    max_pool_fwd(s, src.data(), dst.data(), nullptr);  // inference path
    EXPECT_TRUE(exactly_equal(dst, want.dst)) << "without argmax";
  }
}

TEST(PortableMaxPool, BackwardExactAndAccumulates) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const PoolShape& s : pool_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_ints(s.src_size(), seed + 3 * i, -2, 2);
    const auto ddst = random_ints(s.dst_size(), seed + 3 * i + 1);
    const auto prior = random_ints(s.src_size(), seed + 3 * i + 2);
    ++i;
    const auto fwd = ref::max_pool_fwd(s, ref::to_double(src));
    const auto want = ref::max_pool_bwd(s, ref::to_double(ddst), fwd.argmax);
    std::vector<int32_t> argmax(size_t(s.dst_size()));
    auto dst = nan_vector(s.dst_size());
    max_pool_fwd(s, src.data(), dst.data(), argmax.data());
    auto dsrc = nan_vector(s.src_size());
    max_pool_bwd(s, ddst.data(), argmax.data(), dsrc.data(), false);
    EXPECT_TRUE(exactly_equal(dsrc, want));
    dsrc = prior;
    max_pool_bwd(s, ddst.data(), argmax.data(), dsrc.data(), true);
    EXPECT_TRUE(exactly_equal(dsrc, test::plus(prior, want))) << "accumulate";
  }
}

TEST(PortableMaxPool, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  constexpr double kStep = 1e-4;
  int i = 0, checked = 0;
  for (const PoolShape& s : pool_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(s.src_size(), seed + 3 * i);
    const auto r = random_vector(s.dst_size(), seed + 3 * i + 1);
    const auto idx = test::random_indices(src.size(), 24, seed + 3 * i + 2);
    ++i;
    const auto sd = ref::to_double(src), rd = ref::to_double(r);
    const auto winners = ref::max_pool_fwd(s, sd).argmax;
    std::vector<size_t> smooth;  // probes whose +-step leaves every window's winner in place
    for (size_t e : idx) {
      auto x = sd;
      x[e] = sd[e] + kStep;
      const bool up_same = ref::max_pool_fwd(s, x).argmax == winners;
      x[e] = sd[e] - kStep;
      if (up_same && ref::max_pool_fwd(s, x).argmax == winners) smooth.push_back(e);
    }
    const auto fd = ref::numeric_grad(
        [&](const std::vector<double>& x) { return ref::dot(ref::max_pool_fwd(s, x).dst, rd); }, sd,
        smooth, kStep);
    std::vector<int32_t> argmax(size_t(s.dst_size()));
    auto dst = nan_vector(s.dst_size()), dsrc = nan_vector(s.src_size());
    max_pool_fwd(s, src.data(), dst.data(), argmax.data());
    max_pool_bwd(s, r.data(), argmax.data(), dsrc.data(), false);
    EXPECT_TRUE(test::all_close(test::gather(dsrc, smooth), fd, 1e-6, 1e-6));
    checked += int(smooth.size());
  }
  EXPECT_GT(checked, 100);  // kinks are rare with random floats
}

TEST(PortableAvgPool, ForwardAndBackwardMatchReference) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const PoolShape& s : pool_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(s.src_size(), seed + 3 * i);
    const auto ddst = random_vector(s.dst_size(), seed + 3 * i + 1);
    const auto prior = random_vector(s.src_size(), seed + 3 * i + 2);
    ++i;
    auto dst = nan_vector(s.dst_size());
    avg_pool_fwd(s, src.data(), dst.data());
    EXPECT_TRUE(test::all_close(dst, ref::avg_pool_fwd(s, ref::to_double(src)), 1e-6, 1e-6));
    const auto want = ref::avg_pool_bwd(s, ref::to_double(ddst));
    auto dsrc = nan_vector(s.src_size());
    avg_pool_bwd(s, ddst.data(), dsrc.data(), false);
    EXPECT_TRUE(test::all_close(dsrc, want, 1e-6, 1e-6));
    dsrc = prior;
    avg_pool_bwd(s, ddst.data(), dsrc.data(), true);
    EXPECT_TRUE(test::all_close(dsrc, test::plus(prior, want), 1e-6, 1e-6)) << "accumulate";
  }
}

TEST(PortableAvgPool, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const PoolShape& s : pool_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(s.src_size(), seed + 3 * i);
    const auto r = random_vector(s.dst_size(), seed + 3 * i + 1);
    const auto idx = test::random_indices(src.size(), 16, seed + 3 * i + 2);
    ++i;
    const auto rd = ref::to_double(r);
    const auto fd = ref::numeric_grad(
        [&](const std::vector<double>& x) { return ref::dot(ref::avg_pool_fwd(s, x), rd); },
        ref::to_double(src), idx, 1e-2);
    auto dsrc = nan_vector(s.src_size());
    avg_pool_bwd(s, r.data(), dsrc.data(), false);
    EXPECT_TRUE(test::all_close(test::gather(dsrc, idx), fd, 1e-5, 1e-6));
  }
}

TEST(PortableGlobalAvgPool, ForwardBackwardAndFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  struct Case {
    int n, c, hw;
  };
  int i = 0;
  for (const Case& k : {Case{1, 1, 1}, Case{1, 12, 49}, Case{3, 17, 13}, Case{5, 8, 196}}) {
    SCOPED_TRACE(testing::Message() << "n=" << k.n << " c=" << k.c << " hw=" << k.hw);
    const size_t in = size_t(k.n) * k.c * k.hw, out = size_t(k.n) * k.c;
    const auto src = random_vector(in, seed + 4 * i);
    const auto ddst = random_vector(out, seed + 4 * i + 1);
    const auto prior = random_vector(in, seed + 4 * i + 2);
    const auto idx = test::random_indices(in, 16, seed + 4 * i + 3);
    ++i;
    auto dst = nan_vector(out);
    global_avg_pool_fwd(k.n, k.c, k.hw, src.data(), dst.data());
    EXPECT_TRUE(test::all_close(dst, ref::global_avg_pool_fwd(k.n, k.c, k.hw, ref::to_double(src)),
                                1e-6, 1e-7));
    const auto want = ref::global_avg_pool_bwd(k.n, k.c, k.hw, ref::to_double(ddst));
    auto dsrc = nan_vector(in);
    global_avg_pool_bwd(k.n, k.c, k.hw, ddst.data(), dsrc.data(), false);
    EXPECT_TRUE(test::all_close(dsrc, want, 1e-6, 1e-7));
    dsrc = prior;
    global_avg_pool_bwd(k.n, k.c, k.hw, ddst.data(), dsrc.data(), true);
    EXPECT_TRUE(test::all_close(dsrc, test::plus(prior, want), 1e-6, 1e-7)) << "accumulate";
    const auto dd = ref::to_double(ddst);
    const auto fd = ref::numeric_grad(
        [&](const std::vector<double>& x) {
          return ref::dot(ref::global_avg_pool_fwd(k.n, k.c, k.hw, x), dd);
        },
        ref::to_double(src), idx, 1e-2);
    global_avg_pool_bwd(k.n, k.c, k.hw, ddst.data(), dsrc.data(), false);
    EXPECT_TRUE(test::all_close(test::gather(dsrc, idx), fd, 1e-5, 1e-7)) << "finite differences";
  }
}

}  // namespace
}  // namespace iotnas::kernels::portable
