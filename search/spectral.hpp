// Spectral clustering (Ng, Jordan & Weiss 2002) and k-means++ (Arthur & Vassilvitskii 2007). Used
// to split the GA's final population of laws into k groups of similar laws (paper §4);
// deterministic given the seed.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

namespace iotnas::search {

// Clusters the rows of `points` (n x d) into min(k, n) groups; returns a cluster index in
// [0, min(k, n)) per row. Affinity A_ij = exp(-|xi-xj|^2 / (2 sigma^2)); the rows of the k
// eigenvectors of the smallest eigenvalues of the normalised Laplacian I - D^-1/2 A D^-1/2,
// scaled to unit length, are clustered by k-means++. sigma is chosen as Ng, Jordan & Weiss
// suggest: among the median nearest-neighbour distance times 1, 2, 4, ... up to the diameter,
// the one whose embedding k-means clusters most tightly.
std::vector<int> spectral_clustering(const Eigen::MatrixXd& points, int k, uint64_t seed);

// k-means with k-means++ seeding; the best of `restarts` runs (least within-cluster sum of
// squares). Rows of `points` are the items; every cluster of the result is non-empty when the
// rows hold at least k distinct points.
std::vector<int> kmeans_pp(const Eigen::MatrixXd& points, int k, uint64_t seed, int restarts = 10,
                           int max_iterations = 100);

}  // namespace iotnas::search
