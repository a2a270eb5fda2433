// Gradient-boosted regression trees (squared error), the learner of the layer_gbm latency model:
// many shallow trees, each fitted to what the trees before it left unexplained. Splits are found
// on histograms of each feature's values (at most kMaxBins bins per feature, cut at quantiles),
// so fitting costs O(trees x depth x rows x features); prediction walks one path per tree.
// Deterministic for a given seed (row subsampling).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

namespace iotnas::calib {

struct BoostOptions {
  int trees = 600;
  double learning_rate = 0.05;
  int max_depth = 6;
  int min_leaf = 5;        // fewest rows in a leaf
  double subsample = 0.8;  // share of rows each tree is fitted on
  uint64_t seed = 1;
};

inline constexpr int kMaxBins = 255;

class BoostedTrees {
 public:
  // x: rows x features, row-major; y: one target per row. Throws iotnas::Error when there are
  // no rows or a value is not finite.
  void fit(std::span<const double> x, int features, std::span<const double> y,
           const BoostOptions& o = {});
  double predict(std::span<const double> row) const;
  bool empty() const { return trees_.empty(); }
  int features() const { return features_; }

  nlohmann::json to_json() const;
  // Throws iotnas::Error naming `origin` when the JSON is not a model of `features` features.
  static BoostedTrees from_json(const nlohmann::json& j, int features, const std::string& origin);

 private:
  // One tree as flat arrays; node 0 is the root. A leaf has feature -1 and its value in value.
  struct Tree {
    std::vector<int> feature, left, right;
    std::vector<double> threshold, value;
  };
  double base_ = 0;
  int features_ = 0;
  std::vector<Tree> trees_;
};

}  // namespace iotnas::calib
