// Portable batch norm against the naive reference (training and inference forward), stable for
// data with a large common offset, backward by central finite differences of the double
// reference's training forward, and the same bits for 1, 2 and 3 threads.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/portable/ops.hpp"
#include "portable_helpers.hpp"
#include "reference/nn.hpp"
#include "test_util.hpp"

namespace iotnas::kernels::portable {
namespace {

using test::fresh_seed;
using test::nan_vector;
using test::random_vector;
using test::seed_note;

struct BnCase {
  int n, c, hw;
};
const std::vector<BnCase> kCases = {{2, 5, 13}, {3, 17, 1}, {4, 8, 49}, {1, 16, 7}, {8, 3, 196}};

testing::Message describe(const BnCase& k) {
  return testing::Message() << "bn n=" << k.n << " c=" << k.c << " hw=" << k.hw;
}

constexpr float kEps = 1e-5f;

TEST(PortableBatchNorm, TrainingForwardMatchesReference) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const BnCase& k : kCases) {
    SCOPED_TRACE(describe(k));
    const size_t size = size_t(k.n) * k.c * k.hw;
    const auto src = random_vector(size, seed + 3 * i, -2.f, 3.f);
    const auto gamma = random_vector(k.c, seed + 3 * i + 1, 0.5f, 1.5f);
    const auto beta = random_vector(k.c, seed + 3 * i + 2);
    ++i;
    const auto want = ref::batch_norm_fwd_training(
        k.n, k.c, k.hw, ref::to_double(src), ref::to_double(gamma), ref::to_double(beta), kEps);
    auto dst = nan_vector(size), mean = nan_vector(k.c), var = nan_vector(k.c);
    batch_norm_fwd_training(k.n, k.c, k.hw, src.data(), gamma.data(), beta.data(), kEps, dst.data(),
                            mean.data(), var.data());
    EXPECT_TRUE(test::all_close(dst, want.dst, 1e-5, 1e-5)) << "dst";
    EXPECT_TRUE(test::all_close(mean, want.mean, 1e-6, 1e-7)) << "mean";
    EXPECT_TRUE(test::all_close(var, want.var, 1e-6, 1e-7)) << "var";
  }
}

// Values 1e4 + U(-1, 1): a one-pass E[x^2] - E[x]^2 in float would lose the variance entirely.
TEST(PortableBatchNorm, StableForLargeOffsets) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  const int n = 4, c = 3, hw = 50;
  auto src = random_vector(size_t(n) * c * hw, seed);
  for (float& x : src) x += 1e4f;
  const std::vector<float> gamma = {1.f, 2.f, 0.5f}, beta = {0.f, -1.f, 1.f};
  const auto want = ref::batch_norm_fwd_training(n, c, hw, ref::to_double(src),
                                                 ref::to_double(gamma), ref::to_double(beta), kEps);
  auto dst = nan_vector(src.size()), mean = nan_vector(c), var = nan_vector(c);
  batch_norm_fwd_training(n, c, hw, src.data(), gamma.data(), beta.data(), kEps, dst.data(),
                          mean.data(), var.data());
  EXPECT_TRUE(test::all_close(var, want.var, 1e-5, 0.0)) << "var";
  EXPECT_TRUE(test::all_close(dst, want.dst, 1e-4, 1e-4)) << "dst";
}

TEST(PortableBatchNorm, InferenceForwardMatchesReference) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const BnCase& k : kCases) {
    SCOPED_TRACE(describe(k));
    const size_t size = size_t(k.n) * k.c * k.hw;
    const auto src = random_vector(size, seed + 5 * i);
    const auto gamma = random_vector(k.c, seed + 5 * i + 1, 0.5f, 1.5f);
    const auto beta = random_vector(k.c, seed + 5 * i + 2);
    const auto mean = random_vector(k.c, seed + 5 * i + 3);
    const auto var = random_vector(k.c, seed + 5 * i + 4, 0.1f, 2.f);
    ++i;
    auto dst = nan_vector(size);
    batch_norm_fwd_inference(k.n, k.c, k.hw, src.data(), gamma.data(), beta.data(), mean.data(),
                             var.data(), kEps, dst.data());
    const auto want = ref::batch_norm_fwd_inference(
        k.n, k.c, k.hw, ref::to_double(src), ref::to_double(gamma), ref::to_double(beta),
        ref::to_double(mean), ref::to_double(var), kEps);
    EXPECT_TRUE(test::all_close(dst, want, 1e-5, 1e-6));
  }
}

TEST(PortableBatchNorm, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  constexpr double kStep = 1e-4;
  int i = 0;
  for (const BnCase& k : kCases) {
    SCOPED_TRACE(describe(k));
    const size_t size = size_t(k.n) * k.c * k.hw;
    const auto src = random_vector(size, seed + 6 * i, -2.f, 3.f);
    const auto gamma = random_vector(k.c, seed + 6 * i + 1, 0.5f, 1.5f);
    const auto beta = random_vector(k.c, seed + 6 * i + 2);
    const auto r = random_vector(size, seed + 6 * i + 3);
    const auto prior = random_vector(size, seed + 6 * i + 4);
    const uint64_t pick = seed + 6 * i + 5;
    ++i;
    const auto sd = ref::to_double(src), gd = ref::to_double(gamma), bd = ref::to_double(beta),
               rd = ref::to_double(r);
    auto loss = [&](const std::vector<double>& x, const std::vector<double>& g,
                    const std::vector<double>& b) {
      return ref::dot(ref::batch_norm_fwd_training(k.n, k.c, k.hw, x, g, b, kEps).dst, rd);
    };
    const auto is = test::random_indices(size, 16, pick);
    const auto ic = test::random_indices(k.c, 8, pick + 1);
    const auto fd_src = ref::numeric_grad(
        [&](const std::vector<double>& x) { return loss(x, gd, bd); }, sd, is, kStep);
    const auto fd_gamma = ref::numeric_grad(
        [&](const std::vector<double>& g) { return loss(sd, g, bd); }, gd, ic, kStep);
    const auto fd_beta = ref::numeric_grad(
        [&](const std::vector<double>& b) { return loss(sd, gd, b); }, bd, ic, kStep);

    auto dst = nan_vector(size), mean = nan_vector(k.c), var = nan_vector(k.c);
    batch_norm_fwd_training(k.n, k.c, k.hw, src.data(), gamma.data(), beta.data(), kEps, dst.data(),
                            mean.data(), var.data());
    auto dsrc = nan_vector(size), dgamma = nan_vector(k.c), dbeta = nan_vector(k.c);
    batch_norm_bwd(k.n, k.c, k.hw, src.data(), r.data(), gamma.data(), mean.data(), var.data(),
                   kEps, dsrc.data(), dgamma.data(), dbeta.data(), false);
    EXPECT_TRUE(test::all_close(test::gather(dsrc, is), fd_src, 2e-3, 2e-4)) << "dsrc";
    EXPECT_TRUE(test::all_close(test::gather(dgamma, ic), fd_gamma, 1e-4, 1e-4)) << "dgamma";
    EXPECT_TRUE(test::all_close(test::gather(dbeta, ic), fd_beta, 1e-5, 1e-5)) << "dbeta";

    auto acc = prior;
    batch_norm_bwd(k.n, k.c, k.hw, src.data(), r.data(), gamma.data(), mean.data(), var.data(),
                   kEps, acc.data(), dgamma.data(), dbeta.data(), true);
    std::vector<double> want_acc(size);
    for (size_t e = 0; e < size; ++e) want_acc[e] = double(prior[e]) + dsrc[e];
    EXPECT_TRUE(test::all_close(acc, want_acc, 1e-6, 1e-6)) << "accumulate";
  }
}

TEST(PortableBatchNorm, SameBitsForAnyThreadCount) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  const int n = 16, c = 12, hw = 196;  // large enough to run in parallel
  const size_t size = size_t(n) * c * hw;
  const auto src = random_vector(size, seed, -2.f, 3.f);
  const auto gamma = random_vector(c, seed + 1, 0.5f, 1.5f);
  const auto beta = random_vector(c, seed + 2);
  const auto ddst = random_vector(size, seed + 3);
  auto run = [&](int threads) {
    test::ThreadCount tc(threads);
    std::vector<std::vector<float>> o = {nan_vector(size), nan_vector(c), nan_vector(c),
                                         nan_vector(size), nan_vector(c), nan_vector(c),
                                         nan_vector(size)};
    batch_norm_fwd_training(n, c, hw, src.data(), gamma.data(), beta.data(), kEps, o[0].data(),
                            o[1].data(), o[2].data());
    batch_norm_bwd(n, c, hw, src.data(), ddst.data(), gamma.data(), o[1].data(), o[2].data(), kEps,
                   o[3].data(), o[4].data(), o[5].data(), false);
    batch_norm_fwd_inference(n, c, hw, src.data(), gamma.data(), beta.data(), o[1].data(),
                             o[2].data(), kEps, o[6].data());
    return o;
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

}  // namespace
}  // namespace iotnas::kernels::portable
