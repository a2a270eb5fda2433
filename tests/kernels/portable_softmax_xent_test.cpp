// Portable softmax cross-entropy against the naive reference: the loss in double, dlogits, the
// finite differences of the reference loss, and logits large enough to overflow a naive float
// exp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
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

std::vector<int32_t> random_labels(int n, int k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, k - 1);
  std::vector<int32_t> labels(size_t(n), 0);
  for (auto& l : labels) l = d(rng);
  labels.front() = 0;  // both edges of [0, k)
  labels.back() = k - 1;
  return labels;
}

struct Case {
  int n, k;
  float scale;
};

TEST(PortableSoftmaxXent, LossAndGradientMatchReference) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const Case& c : {Case{1, 1, 1.f}, Case{1, 10, 3.f}, Case{7, 10, 5.f}, Case{33, 17, 1.f},
                        Case{5, 3, 1e4f}, Case{4, 10, 100.f}}) {
    SCOPED_TRACE(testing::Message() << "n=" << c.n << " k=" << c.k << " scale=" << c.scale);
    const auto logits = random_vector(size_t(c.n) * c.k, seed + 2 * i, -c.scale, c.scale);
    const auto labels = random_labels(c.n, c.k, seed + 2 * i + 1);
    ++i;
    const auto ld = ref::to_double(logits);
    const double want = ref::softmax_xent(c.n, c.k, ld, labels);
    auto dlogits = nan_vector(logits.size());
    const double loss = softmax_xent(c.n, c.k, logits.data(), labels.data(), dlogits.data());
    EXPECT_TRUE(std::isfinite(loss));
    EXPECT_NEAR(loss, want, 1e-12 * (1 + std::abs(want)));
    EXPECT_TRUE(test::all_close(dlogits, ref::softmax_xent_grad(c.n, c.k, ld, labels), 1e-6, 1e-8));
    EXPECT_EQ(softmax_xent(c.n, c.k, logits.data(), labels.data(), nullptr), loss)
        << "without dlogits";
    if (c.scale <= 5.f) {
      const auto idx = test::random_indices(ld.size(), 20, seed + 100 + i);
      const auto fd = ref::numeric_grad(
          [&](const std::vector<double>& z) { return ref::softmax_xent(c.n, c.k, z, labels); }, ld,
          idx, 1e-5);
      EXPECT_TRUE(test::all_close(test::gather(dlogits, idx), fd, 1e-5, 1e-7))
          << "finite differences";
    }
  }
}

}  // namespace
}  // namespace iotnas::kernels::portable
