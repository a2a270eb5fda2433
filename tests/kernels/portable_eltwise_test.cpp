// Portable ReLU, add and channel concatenation against the naive reference, with aliasing
// (in-place ReLU, dsrc = ddst, dst = srcs[0]), accumulation, finite differences (ReLU probes
// within a step of 0 skipped), and sizes below, at and well above one parallel block.
#include <gtest/gtest.h>

#include <cmath>
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

const std::vector<int64_t> kCounts = {1, 7, 16, 17, 1000, (1 << 16) + 3, (1 << 18) + 17};

TEST(PortableRelu, ForwardOutOfPlaceAndInPlace) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  for (int64_t count : kCounts) {
    SCOPED_TRACE(testing::Message() << "count=" << count);
    const auto src = random_ints(count, seed + count);
    const auto want = ref::relu_fwd(ref::to_double(src));
    auto dst = nan_vector(count);
    relu_fwd(count, src.data(), dst.data());
    EXPECT_TRUE(exactly_equal(dst, want));
    auto inplace = src;
    relu_fwd(count, inplace.data(), inplace.data());
    EXPECT_TRUE(exactly_equal(inplace, want)) << "in place";
  }
}

TEST(PortableRelu, BackwardAliasingAndAccumulate) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  for (int64_t count : kCounts) {
    SCOPED_TRACE(testing::Message() << "count=" << count);
    const auto src = random_ints(count, seed + 3 * count);
    const auto ddst = random_ints(count, seed + 3 * count + 1);
    const auto prior = random_ints(count, seed + 3 * count + 2);
    auto y = nan_vector(count);
    relu_fwd(count, src.data(), y.data());
    const auto want = ref::relu_bwd(ref::to_double(src), ref::to_double(ddst));
    auto dsrc = nan_vector(count);
    relu_bwd(count, y.data(), ddst.data(), dsrc.data(), false);
    EXPECT_TRUE(exactly_equal(dsrc, want));
    auto alias = ddst;  // dsrc == ddst
    relu_bwd(count, y.data(), alias.data(), alias.data(), false);
    EXPECT_TRUE(exactly_equal(alias, want)) << "dsrc aliases ddst";
    dsrc = prior;
    relu_bwd(count, y.data(), ddst.data(), dsrc.data(), true);
    EXPECT_TRUE(exactly_equal(dsrc, test::plus(prior, want))) << "accumulate";
  }
}

TEST(PortableRelu, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  constexpr double kStep = 1e-3;
  const int64_t count = 5000;
  const auto src = random_vector(count, seed);
  const auto r = random_vector(count, seed + 1);
  std::vector<size_t> idx;
  for (size_t i : test::random_indices(count, 64, seed + 2)) {
    if (std::abs(src[i]) > 2 * kStep) idx.push_back(i);  // away from the kink at 0
  }
  const auto rd = ref::to_double(r);
  const auto fd = ref::numeric_grad(
      [&](const std::vector<double>& x) { return ref::dot(ref::relu_fwd(x), rd); },
      ref::to_double(src), idx, kStep);
  auto y = nan_vector(count), dsrc = nan_vector(count);
  relu_fwd(count, src.data(), y.data());
  relu_bwd(count, y.data(), r.data(), dsrc.data(), false);
  EXPECT_TRUE(test::all_close(test::gather(dsrc, idx), fd, 1e-6, 1e-7));
}

TEST(PortableAdd, OneTwoThreeInputsAndAliasing) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  for (int64_t count : kCounts) {
    for (int k = 1; k <= 3; ++k) {
      SCOPED_TRACE(testing::Message() << "count=" << count << " k=" << k);
      std::vector<std::vector<float>> xs;
      std::vector<const float*> ptrs;
      std::vector<ref::dspan> spans;
      std::vector<std::vector<double>> xd;
      for (int j = 0; j < k; ++j) xs.push_back(random_ints(count, seed + 10 * count + j));
      for (int j = 0; j < k; ++j) xd.push_back(ref::to_double(xs[j]));
      for (int j = 0; j < k; ++j) ptrs.push_back(xs[j].data()), spans.emplace_back(xd[j]);
      const auto want = ref::add_fwd(spans);
      auto dst = nan_vector(count);
      add_fwd(count, k, ptrs.data(), dst.data());
      EXPECT_TRUE(exactly_equal(dst, want));
      add_fwd(count, k, ptrs.data(), xs[0].data());  // dst aliases srcs[0]
      EXPECT_TRUE(exactly_equal(xs[0], want)) << "dst aliases srcs[0]";
    }
  }
}

TEST(PortableConcat, ForwardBackwardAccumulate) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  struct Case {
    int n, hw;
    std::vector<int> channels;
  };
  const std::vector<Case> cases = {
      {1, 1, {1}}, {2, 49, {3, 8}}, {3, 13, {17, 1, 16}}, {5, 196, {8, 8, 4, 12}}};
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "n=" << c.n << " hw=" << c.hw << " k=" << c.channels.size());
    const int k = int(c.channels.size());
    int total = 0;
    std::vector<std::vector<float>> xs;
    std::vector<std::vector<double>> xd;
    for (int j = 0; j < k; ++j) {
      xs.push_back(random_ints(size_t(c.n) * c.channels[j] * c.hw, seed + 10 * i + j));
      xd.push_back(ref::to_double(xs.back()));
      total += c.channels[j];
    }
    ++i;
    std::vector<const float*> ptrs;
    std::vector<ref::dspan> spans;
    for (int j = 0; j < k; ++j) ptrs.push_back(xs[j].data()), spans.emplace_back(xd[j]);
    auto dst = nan_vector(size_t(c.n) * total * c.hw);
    concat_fwd(c.n, c.hw, k, ptrs.data(), c.channels.data(), dst.data());
    EXPECT_TRUE(exactly_equal(dst, ref::concat_fwd(c.n, c.hw, spans, c.channels)));

    const auto ddst = random_ints(dst.size(), seed + 1000 + i);
    const auto want = ref::concat_bwd(c.n, c.hw, ref::to_double(ddst), c.channels);
    std::vector<std::vector<float>> grads, priors;
    std::vector<float*> gptrs;
    for (int j = 0; j < k; ++j) {
      grads.push_back(nan_vector(xs[j].size()));
      priors.push_back(random_ints(xs[j].size(), seed + 2000 + 10 * i + j));
    }
    for (auto& g : grads) gptrs.push_back(g.data());
    concat_bwd(c.n, c.hw, k, ddst.data(), c.channels.data(), gptrs.data(), false);
    for (int j = 0; j < k; ++j) EXPECT_TRUE(exactly_equal(grads[j], want[j])) << "input " << j;
    grads = priors;
    gptrs.clear();
    for (auto& g : grads) gptrs.push_back(g.data());
    concat_bwd(c.n, c.hw, k, ddst.data(), c.channels.data(), gptrs.data(), true);
    for (int j = 0; j < k; ++j) {
      EXPECT_TRUE(exactly_equal(grads[j], test::plus(priors[j], want[j]))) << "accumulate " << j;
    }
  }
}

}  // namespace
}  // namespace iotnas::kernels::portable
