// Spectral clustering recovers planted clusters; k-means++ is deterministic for a seed.
// GCC 12 -march=native: false-positive warnings inside Eigen's AVX-512 paths.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"
#include "search/spectral.hpp"
#include "test_util.hpp"

namespace iotnas::search {
namespace {

// Same partition up to renaming: a bijection between labels.
::testing::AssertionResult same_partition(const std::vector<int>& got,
                                          const std::vector<int>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  std::map<int, int> g2w, w2g;
  for (size_t i = 0; i < got.size(); ++i) {
    auto [a, new_a] = g2w.emplace(got[i], want[i]);
    auto [b, new_b] = w2g.emplace(want[i], got[i]);
    if (a->second != want[i] || b->second != got[i]) {
      return ::testing::AssertionFailure()
             << "point " << i << ": cluster " << got[i] << " mixes planted clusters";
    }
  }
  return ::testing::AssertionSuccess();
}

// k Gaussian blobs of different sizes in `dims` dimensions, centers at least 1 apart,
// spread 0.03.
void planted_blobs(int k, int dims, uint64_t seed, Eigen::MatrixXd& points,
                   std::vector<int>& truth) {
  Rng rng(seed);
  std::vector<Eigen::VectorXd> centers;
  while (int(centers.size()) < k) {
    Eigen::VectorXd c(dims);
    for (int d = 0; d < dims; ++d) c(d) = 4 * rng.uniform();
    bool far = true;
    for (const auto& o : centers) far = far && (o - c).norm() > 1.0;
    if (far) centers.push_back(c);
  }
  truth.clear();
  std::vector<Eigen::VectorXd> rows;
  for (int c = 0; c < k; ++c) {
    const int size = 4 + int(rng.below(14));
    for (int i = 0; i < size; ++i) {
      Eigen::VectorXd p = centers[c];
      for (int d = 0; d < dims; ++d) {
        // Box-Muller
        const double u1 = std::max(rng.uniform(), 1e-12), u2 = rng.uniform();
        p(d) += 0.03 * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
      }
      rows.push_back(p);
      truth.push_back(c);
    }
  }
  // Shuffle so that clusters are not contiguous.
  std::vector<int> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
  for (size_t i = order.size() - 1; i > 0; --i)
    std::swap(order[i], order[rng.below(uint32_t(i + 1))]);
  points.resize(Eigen::Index(rows.size()), dims);
  std::vector<int> shuffled(rows.size());
  for (size_t i = 0; i < order.size(); ++i) {
    points.row(Eigen::Index(i)) = rows[order[i]].transpose();
    shuffled[i] = truth[order[i]];
  }
  truth = shuffled;
}

TEST(Spectral, RecoversPlantedClusters) {
  for (int trial = 0; trial < 10; ++trial) {
    const uint64_t seed = test::fresh_seed() + trial;
    Eigen::MatrixXd x;
    std::vector<int> truth;
    planted_blobs(10, 6, seed, x, truth);
    const auto got = spectral_clustering(x, 10, seed);
    EXPECT_TRUE(same_partition(got, truth)) << test::seed_note(seed);
    EXPECT_EQ(std::set<int>(got.begin(), got.end()).size(), 10u);
  }
}

TEST(Spectral, SeparatesConcentricRingsThatKMeansCannot) {
  Eigen::MatrixXd x(200, 2);
  std::vector<int> truth(200);
  Rng rng(5);
  for (int i = 0; i < 200; ++i) {
    const double r = i < 100 ? 1.0 : 4.0, a = 2 * M_PI * rng.uniform();
    x(i, 0) = r * std::cos(a) + 0.05 * (rng.uniform() - 0.5);
    x(i, 1) = r * std::sin(a) + 0.05 * (rng.uniform() - 0.5);
    truth[i] = i < 100 ? 0 : 1;
  }
  EXPECT_TRUE(same_partition(spectral_clustering(x, 2, 1), truth));
  EXPECT_FALSE(same_partition(kmeans_pp(x, 2, 1), truth));
}

TEST(Spectral, SmallAndDegenerateInputs) {
  Eigen::MatrixXd three(3, 2);
  three << 0, 0, 1, 1, 2, 2;
  auto got = spectral_clustering(three, 10, 1);  // k > n: every point alone
  EXPECT_EQ(std::set<int>(got.begin(), got.end()).size(), 3u);
  EXPECT_TRUE(spectral_clustering(Eigen::MatrixXd(0, 2), 3, 1).empty());
  Eigen::MatrixXd same = Eigen::MatrixXd::Ones(20, 3);  // all points equal
  got = spectral_clustering(same, 4, 1);
  EXPECT_EQ(got.size(), 20u);
  for (int g : got) {
    EXPECT_GE(g, 0);
    EXPECT_LT(g, 4);
  }
}

TEST(KMeans, DeterministicForASeedAndRecoversBlobs) {
  Eigen::MatrixXd x;
  std::vector<int> truth;
  planted_blobs(5, 3, 11, x, truth);
  const auto a = kmeans_pp(x, 5, 3);
  EXPECT_EQ(a, kmeans_pp(x, 5, 3));
  EXPECT_TRUE(same_partition(a, truth));
}

}  // namespace
}  // namespace iotnas::search
