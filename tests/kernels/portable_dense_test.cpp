// Portable dense layer against the naive reference: exactly on integer data, with and without
// bias and ReLU, over shapes that cross the kernels' tile sizes; backward by finite differences;
// the same bits for 1, 2 and 3 threads.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/portable/ops.hpp"
#include "portable_helpers.hpp"
#include "reference/nn.hpp"
#include "test_util.hpp"

namespace iotnas::kernels::portable {
namespace {

using test::exactly_equal;
using test::fresh_seed;
using test::nan_vector;
using test::random_ints;
using test::random_vector;
using test::seed_note;

DenseShape dense(int n, int in, int out) {
  DenseShape s;
  s.n = n, s.in = in, s.out = out;
  return s;
}

std::vector<DenseShape> dense_cases() {
  return {dense(1, 12, 10),   dense(3, 17, 5),    dense(5, 64, 33),  dense(2, 300, 7),
          dense(37, 40, 260), dense(1, 3136, 32), dense(128, 16, 10)};
}

testing::Message describe(const DenseShape& s) {
  return testing::Message() << "dense n=" << s.n << " in=" << s.in << " out=" << s.out;
}

TEST(PortableDense, ForwardExactOnIntegers) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const DenseShape& s : dense_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_ints(size_t(s.n) * s.in, seed + 3 * i);
    const auto wei = random_ints(size_t(s.out) * s.in, seed + 3 * i + 1);
    const auto bias = random_ints(s.out, seed + 3 * i + 2);
    ++i;
    const auto sd = ref::to_double(src), wd = ref::to_double(wei), bd = ref::to_double(bias);
    for (bool relu : {false, true}) {
      auto dst = nan_vector(size_t(s.n) * s.out);
      dense_fwd(s, src.data(), wei.data(), bias.data(), dst.data(), relu);
      EXPECT_TRUE(exactly_equal(dst, ref::dense_fwd(s, sd, wd, bd, relu))) << "relu=" << relu;
    }
    auto dst = nan_vector(size_t(s.n) * s.out);
    dense_fwd(s, src.data(), wei.data(), nullptr, dst.data(), false);
    EXPECT_TRUE(exactly_equal(dst, ref::dense_fwd(s, sd, wd, {}, false))) << "no bias";
  }
}

TEST(PortableDense, BackwardExactOnIntegersAndAccumulate) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const DenseShape& s : dense_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_ints(size_t(s.n) * s.in, seed + 4 * i);
    const auto wei = random_ints(size_t(s.out) * s.in, seed + 4 * i + 1);
    const auto ddst = random_ints(size_t(s.n) * s.out, seed + 4 * i + 2);
    const auto prior = random_ints(src.size(), seed + 4 * i + 3);
    ++i;
    const auto sd = ref::to_double(src), wd = ref::to_double(wei), gd = ref::to_double(ddst);
    const auto want_src = ref::dense_bwd_data(s, gd, wd);
    auto dsrc = nan_vector(src.size());
    dense_bwd_data(s, ddst.data(), wei.data(), dsrc.data(), false);
    EXPECT_TRUE(exactly_equal(dsrc, want_src)) << "dsrc";
    dsrc = prior;
    dense_bwd_data(s, ddst.data(), wei.data(), dsrc.data(), true);
    EXPECT_TRUE(exactly_equal(dsrc, test::plus(prior, want_src))) << "dsrc accumulate";
    auto dwei = nan_vector(wei.size()), dbias = nan_vector(s.out);
    dense_bwd_weights(s, src.data(), ddst.data(), dwei.data(), dbias.data());
    EXPECT_TRUE(exactly_equal(dwei, ref::dense_bwd_weights(s, sd, gd))) << "dwei";
    EXPECT_TRUE(exactly_equal(dbias, ref::dense_bwd_bias(s, gd))) << "dbias";
    dwei = nan_vector(wei.size());
    dense_bwd_weights(s, src.data(), ddst.data(), dwei.data(), nullptr);
    EXPECT_TRUE(exactly_equal(dwei, ref::dense_bwd_weights(s, sd, gd))) << "dwei, no dbias";
  }
}

TEST(PortableDense, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const DenseShape& s : dense_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(size_t(s.n) * s.in, seed + 5 * i);
    const auto wei = random_vector(size_t(s.out) * s.in, seed + 5 * i + 1);
    const auto bias = random_vector(s.out, seed + 5 * i + 2);
    const auto r = random_vector(size_t(s.n) * s.out, seed + 5 * i + 3);
    const uint64_t pick = seed + 5 * i + 4;
    ++i;
    const auto sd = ref::to_double(src), wd = ref::to_double(wei), bd = ref::to_double(bias),
               rd = ref::to_double(r);
    auto loss_src = [&](const std::vector<double>& x) {
      return ref::dot(ref::dense_fwd(s, x, wd, bd, false), rd);
    };
    auto loss_wei = [&](const std::vector<double>& x) {
      return ref::dot(ref::dense_fwd(s, sd, x, bd, false), rd);
    };
    auto loss_bias = [&](const std::vector<double>& x) {
      return ref::dot(ref::dense_fwd(s, sd, wd, x, false), rd);
    };
    const auto is = test::random_indices(sd.size(), 10, pick);
    const auto iw = test::random_indices(wd.size(), 10, pick + 1);
    const auto ib = test::random_indices(bd.size(), 10, pick + 2);
    auto dsrc = nan_vector(sd.size()), dwei = nan_vector(wd.size()), dbias = nan_vector(s.out);
    dense_bwd_data(s, r.data(), wei.data(), dsrc.data(), false);
    dense_bwd_weights(s, src.data(), r.data(), dwei.data(), dbias.data());
    const double atol_src = 2e-6 * s.out + 1e-6, atol_wei = 2e-6 * s.n + 1e-6;
    EXPECT_TRUE(test::all_close(test::gather(dsrc, is), ref::numeric_grad(loss_src, sd, is, 1e-2),
                                1e-4, atol_src));
    EXPECT_TRUE(test::all_close(test::gather(dwei, iw), ref::numeric_grad(loss_wei, wd, iw, 1e-2),
                                1e-4, atol_wei));
    EXPECT_TRUE(test::all_close(test::gather(dbias, ib), ref::numeric_grad(loss_bias, bd, ib, 1e-2),
                                1e-4, atol_wei));
  }
}

TEST(PortableDense, SameBitsForAnyThreadCount) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  for (const DenseShape& s : {dense(37, 300, 260), dense(128, 40, 33), dense(1, 3136, 32)}) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(size_t(s.n) * s.in, seed);
    const auto wei = random_vector(size_t(s.out) * s.in, seed + 1);
    const auto ddst = random_vector(size_t(s.n) * s.out, seed + 2);
    auto run = [&](int threads) {
      test::ThreadCount tc(threads);
      std::vector<std::vector<float>> out = {nan_vector(ddst.size()), nan_vector(src.size()),
                                             nan_vector(wei.size()), nan_vector(s.out)};
      dense_fwd(s, src.data(), wei.data(), nullptr, out[0].data(), false);
      dense_bwd_data(s, ddst.data(), wei.data(), out[1].data(), false);
      dense_bwd_weights(s, src.data(), ddst.data(), out[2].data(), out[3].data());
      return out;
    };
    const auto one = run(1);
    for (int t : {2, 3}) {
      const auto many = run(t);
      for (size_t k = 0; k < one.size(); ++k) {
        EXPECT_TRUE(test::bitwise_equal(many[k], one[k]))
            << "output " << k << ", " << t << " threads";
      }
    }
  }
}

}  // namespace
}  // namespace iotnas::kernels::portable
