// GCC 12 with -march=native (AVX-512) warns about Eigen's own eigen-solver internals
// ("__Y may be used uninitialized"): a known false positive in the intrinsics header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "search/spectral.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::search {

namespace {

// One k-means++ run; returns the within-cluster sum of squares and writes the assignment.
double kmeans_once(const Eigen::MatrixXd& x, int k, Rng& rng, int max_iterations,
                   std::vector<int>& assign) {
  const int n = int(x.rows());
  Eigen::MatrixXd centers(k, x.cols());
  std::vector<double> d2(n, std::numeric_limits<double>::infinity());
  std::vector<bool> chosen(n, false);
  int first = int(rng.below(uint32_t(n)));
  centers.row(0) = x.row(first);
  chosen[first] = true;
  for (int c = 1; c < k; ++c) {
    double total = 0;
    for (int i = 0; i < n; ++i) {
      d2[i] = std::min(d2[i], (x.row(i) - centers.row(c - 1)).squaredNorm());
      total += d2[i];
    }
    int pick = -1;
    if (total > 0) {
      double r = rng.uniform() * total;
      for (int i = 0; i < n && pick < 0; ++i) {
        r -= d2[i];
        if (r < 0 && d2[i] > 0) pick = i;
      }
      if (pick < 0) {  // rounding at the end of the sum
        for (int i = n - 1; i >= 0 && pick < 0; --i) {
          if (d2[i] > 0) pick = i;
        }
      }
    } else {  // fewer distinct points than k: any point not chosen yet
      for (int i = 0; i < n && pick < 0; ++i) {
        if (!chosen[i]) pick = i;
      }
    }
    chosen[pick] = true;
    centers.row(c) = x.row(pick);
  }
  assign.assign(n, -1);
  double inertia = 0;
  for (int it = 0; it < max_iterations; ++it) {
    bool changed = false;
    inertia = 0;
    for (int i = 0; i < n; ++i) {
      int best = 0;
      double best_d = std::numeric_limits<double>::infinity();
      for (int c = 0; c < k; ++c) {
        const double d = (x.row(i) - centers.row(c)).squaredNorm();
        if (d < best_d) {
          best_d = d;
          best = c;
        }
      }
      inertia += best_d;
      if (assign[i] != best) {
        assign[i] = best;
        changed = true;
      }
    }
    // Empty clusters take the point farthest from its center.
    std::vector<int> size(k, 0);
    for (int a : assign) size[a]++;
    for (int c = 0; c < k; ++c) {
      if (size[c] > 0) continue;
      int far = -1;
      double far_d = -1;
      for (int i = 0; i < n; ++i) {
        if (size[assign[i]] <= 1) continue;
        const double d = (x.row(i) - centers.row(assign[i])).squaredNorm();
        if (d > far_d) {
          far_d = d;
          far = i;
        }
      }
      if (far < 0) break;
      size[assign[far]]--;
      assign[far] = c;
      size[c] = 1;
      changed = true;
    }
    for (int c = 0; c < k; ++c) centers.row(c).setZero();
    for (int i = 0; i < n; ++i) centers.row(assign[i]) += x.row(i);
    for (int c = 0; c < k; ++c) {
      if (size[c] > 0) centers.row(c) /= double(size[c]);
    }
    if (!changed) break;
  }
  return inertia;
}

// k-means++ restarts; returns the best assignment and its within-cluster sum of squares.
std::vector<int> best_kmeans(const Eigen::MatrixXd& points, int k, uint64_t seed, int restarts,
                             int max_iterations, double* inertia_out) {
  std::vector<int> best, assign;
  double best_inertia = std::numeric_limits<double>::infinity();
  for (int r = 0; r < restarts; ++r) {
    Rng rng(seed, uint64_t(r));
    const double inertia = kmeans_once(points, k, rng, max_iterations, assign);
    if (inertia < best_inertia) {
      best_inertia = inertia;
      best = assign;
    }
  }
  if (inertia_out) *inertia_out = best_inertia;
  return best;
}

// Rows of the k eigenvectors of the smallest eigenvalues of I - D^-1/2 A D^-1/2, scaled to unit
// length, for the affinity A_ij = exp(-d_ij^2 / (2 sigma^2)), A_ii = 0.
Eigen::MatrixXd spectral_embedding(const Eigen::MatrixXd& dist2, double sigma, int k) {
  const Eigen::Index n = dist2.rows();
  Eigen::MatrixXd a = (-dist2 / (2 * sigma * sigma)).array().exp().matrix();
  a.diagonal().setZero();
  Eigen::VectorXd inv_sqrt_degree(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    inv_sqrt_degree(i) = 1.0 / std::sqrt(std::max(a.row(i).sum(), 1e-300));
  }
  const Eigen::MatrixXd laplacian = Eigen::MatrixXd::Identity(n, n) -
                                    inv_sqrt_degree.asDiagonal() * a * inv_sqrt_degree.asDiagonal();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(laplacian);
  IOTNAS_ASSERT(eig.info() == Eigen::Success, "eigen decomposition of the Laplacian failed");
  Eigen::MatrixXd u = eig.eigenvectors().leftCols(k);  // eigenvalues ascend
  for (Eigen::Index i = 0; i < n; ++i) {
    const double norm = u.row(i).norm();
    if (norm > 0) u.row(i) /= norm;
  }
  return u;
}

}  // namespace

std::vector<int> kmeans_pp(const Eigen::MatrixXd& points, int k, uint64_t seed, int restarts,
                           int max_iterations) {
  IOTNAS_ASSERT(k >= 1 && restarts >= 1, "kmeans_pp: k and restarts must be positive");
  if (points.rows() == 0) return {};
  return best_kmeans(points, std::min<int>(k, int(points.rows())), seed, restarts, max_iterations,
                     nullptr);
}

std::vector<int> spectral_clustering(const Eigen::MatrixXd& points, int k, uint64_t seed) {
  const int n = int(points.rows());
  IOTNAS_ASSERT(k >= 1, "spectral_clustering: k must be positive");
  if (n == 0) return {};
  k = std::min(k, n);
  if (k == n) {
    std::vector<int> all(n);
    for (int i = 0; i < n; ++i) all[i] = i;
    return all;
  }
  Eigen::MatrixXd dist2(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) dist2(i, j) = (points.row(i) - points.row(j)).squaredNorm();
  }
  // Scale candidates: from the median nearest-neighbour distance, doubling up to the diameter.
  std::vector<double> nearest;
  double diameter = 0;
  for (int i = 0; i < n; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int j = 0; j < n; ++j) {
      if (j != i && dist2(i, j) > 0) best = std::min(best, dist2(i, j));
      diameter = std::max(diameter, dist2(i, j));
    }
    if (std::isfinite(best)) nearest.push_back(std::sqrt(best));
  }
  diameter = std::sqrt(diameter);
  if (nearest.empty()) return kmeans_pp(points, k, seed);  // all points equal
  std::nth_element(nearest.begin(), nearest.begin() + nearest.size() / 2, nearest.end());
  const double first = nearest[nearest.size() / 2];
  // Ng, Jordan & Weiss: keep the scale whose embedding clusters most tightly.
  std::vector<int> best;
  double best_inertia = std::numeric_limits<double>::infinity();
  for (double sigma = first; sigma <= 2 * diameter; sigma *= 2) {
    double inertia = 0;
    auto assign = best_kmeans(spectral_embedding(dist2, sigma, k), k, seed, 10, 100, &inertia);
    if (inertia < best_inertia - 1e-9) {
      best_inertia = inertia;
      best = std::move(assign);
    }
  }
  return best;
}

}  // namespace iotnas::search
