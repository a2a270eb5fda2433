#include "calib/boosted_trees.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <random>

#include "engine/util/fields.hpp"
#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

namespace {

// Split points of one feature: a row goes left of cut b when its value <= cuts[b]. Few distinct
// values: one cut between each pair; many: cuts at quantiles.
std::vector<double> feature_cuts(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::vector<double> uniq = v;
  uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
  std::vector<double> cuts;
  if (uniq.size() <= size_t(kMaxBins)) {
    for (size_t i = 1; i < uniq.size(); ++i) cuts.push_back(0.5 * (uniq[i - 1] + uniq[i]));
    return cuts;
  }
  for (int k = 1; k < kMaxBins; ++k) {
    const double c = v[size_t(double(k) * double(v.size()) / kMaxBins) - 1];
    if (c < uniq.back() && (cuts.empty() || c > cuts.back())) cuts.push_back(c);
  }
  return cuts;
}

}  // namespace

void BoostedTrees::fit(std::span<const double> x, int features, std::span<const double> y,
                       const BoostOptions& o) {
  const size_t n = y.size();
  if (n == 0 || features <= 0 || x.size() != n * size_t(features))
    fail("boosted trees: need at least one row of ", features, " features");
  for (double v : x)
    if (!std::isfinite(v)) fail("boosted trees: a feature value is not finite");
  for (double v : y)
    if (!std::isfinite(v)) fail("boosted trees: a target is not finite");
  const size_t F = size_t(features);
  features_ = features;
  trees_.clear();

  // Bin every feature once.
  std::vector<std::vector<double>> cuts(F);
  std::vector<uint8_t> bin(n * F);
  for (size_t f = 0; f < F; ++f) {
    std::vector<double> col(n);
    for (size_t i = 0; i < n; ++i) col[i] = x[i * F + f];
    cuts[f] = feature_cuts(col);
    for (size_t i = 0; i < n; ++i)
      bin[i * F + f] =
          uint8_t(std::lower_bound(cuts[f].begin(), cuts[f].end(), col[i]) - cuts[f].begin());
  }

  double mean = 0;
  for (double v : y) mean += v;
  base_ = mean / double(n);
  std::vector<double> pred(n, base_), resid(n);
  std::vector<int> node_of(n);
  std::mt19937_64 rng(o.seed);
  constexpr size_t B = kMaxBins;
  // Per active node, feature and bin: residual sum and count (reused: no allocation per level).
  std::vector<double> hsum;
  std::vector<int> hcnt;

  for (int t = 0; t < o.trees; ++t) {
    for (size_t i = 0; i < n; ++i) resid[i] = y[i] - pred[i];
    size_t in_sample = 0;
    for (size_t i = 0; i < n; ++i) {
      node_of[i] = uniform_unit(rng) < o.subsample ? 0 : -1;
      in_sample += node_of[i] == 0;
    }
    if (in_sample < size_t(2 * o.min_leaf))
      std::fill(node_of.begin(), node_of.end(), 0);  // too few sampled: all rows

    Tree tree;
    std::vector<int> split_bin;  // per node: the bin a split sends left up to (-1: leaf)
    auto add_node = [&] {
      split_bin.push_back(-1);
      tree.feature.push_back(-1);
      tree.threshold.push_back(0);
      tree.left.push_back(-1);
      tree.right.push_back(-1);
      tree.value.push_back(0);
      return int(tree.feature.size()) - 1;
    };
    add_node();
    std::vector<int> active{0};
    for (int depth = 0; depth < o.max_depth && !active.empty(); ++depth) {
      // Histograms of residual sums and counts of every active node, feature and bin.
      std::vector<int> slot(tree.feature.size(), -1);
      for (size_t s = 0; s < active.size(); ++s) slot[size_t(active[s])] = int(s);
      hsum.assign(active.size() * F * B, 0.0);
      hcnt.assign(active.size() * F * B, 0);
      for (size_t i = 0; i < n; ++i) {
        if (node_of[i] < 0 || slot[size_t(node_of[i])] < 0) continue;
        const size_t base = size_t(slot[size_t(node_of[i])]) * F * B;
        for (size_t f = 0; f < F; ++f) {
          const size_t h = base + f * B + bin[i * F + f];
          hsum[h] += resid[i];
          ++hcnt[h];
        }
      }
      std::vector<int> next;
      for (size_t s = 0; s < active.size(); ++s) {
        const size_t base = s * F * B;
        double G = 0;
        int N = 0;
        for (size_t b = 0; b < B; ++b) G += hsum[base + b], N += hcnt[base + b];
        if (N < 2 * o.min_leaf) continue;
        double best = 1e-12;
        int best_f = -1, best_b = -1;
        for (size_t f = 0; f < F; ++f) {
          double gl = 0;
          int nl = 0;
          for (size_t b = 0; b + 1 < B && b < cuts[f].size(); ++b) {
            gl += hsum[base + f * B + b];
            nl += hcnt[base + f * B + b];
            const int nr = N - nl;
            if (nl < o.min_leaf || nr < o.min_leaf) continue;
            const double gr = G - gl;
            const double gain = gl * gl / nl + gr * gr / nr - G * G / N;
            if (gain > best) best = gain, best_f = int(f), best_b = int(b);
          }
        }
        if (best_f < 0) continue;
        const int node = active[s];
        tree.feature[size_t(node)] = best_f;
        tree.threshold[size_t(node)] = cuts[size_t(best_f)][size_t(best_b)];
        const int l = add_node(), r = add_node();
        tree.left[size_t(node)] = l;
        tree.right[size_t(node)] = r;
        split_bin[size_t(node)] = best_b;
        next.push_back(l);
        next.push_back(r);
      }
      for (size_t i = 0; i < n; ++i) {
        const int node = node_of[i];
        if (node < 0 || split_bin[size_t(node)] < 0) continue;
        const size_t f = size_t(tree.feature[size_t(node)]);
        node_of[i] = bin[i * F + f] <= split_bin[size_t(node)] ? tree.left[size_t(node)]
                                                               : tree.right[size_t(node)];
      }
      active = std::move(next);
    }
    // Leaves: the mean residual of their sampled rows, shrunk by the learning rate.
    std::vector<double> sum(tree.feature.size(), 0.0);
    std::vector<int> cnt(tree.feature.size(), 0);
    for (size_t i = 0; i < n; ++i)
      if (node_of[i] >= 0) sum[size_t(node_of[i])] += resid[i], ++cnt[size_t(node_of[i])];
    for (size_t k = 0; k < tree.feature.size(); ++k)
      if (tree.feature[k] < 0 && cnt[k] > 0) tree.value[k] = o.learning_rate * sum[k] / cnt[k];
    trees_.push_back(std::move(tree));
    // Every row, sampled or not, moves by the new tree's prediction.
    const Tree& tr = trees_.back();
    for (size_t i = 0; i < n; ++i) {
      int k = 0;
      while (tr.feature[size_t(k)] >= 0)
        k = bin[i * F + size_t(tr.feature[size_t(k)])] <= split_bin[size_t(k)]
                ? tr.left[size_t(k)]
                : tr.right[size_t(k)];
      pred[i] += tr.value[size_t(k)];
    }
  }
}

double BoostedTrees::predict(std::span<const double> row) const {
  IOTNAS_ASSERT(int(row.size()) == features_);
  double s = base_;
  for (const Tree& t : trees_) {
    int k = 0;
    while (t.feature[size_t(k)] >= 0)
      k = row[size_t(t.feature[size_t(k)])] <= t.threshold[size_t(k)] ? t.left[size_t(k)]
                                                                      : t.right[size_t(k)];
    s += t.value[size_t(k)];
  }
  return s;
}

nlohmann::json BoostedTrees::to_json() const {
  // A node is [feature, threshold, left, right] or, for a leaf, [value].
  nlohmann::json trees = nlohmann::json::array();
  for (const Tree& t : trees_) {
    nlohmann::json nodes = nlohmann::json::array();
    for (size_t k = 0; k < t.feature.size(); ++k) {
      if (t.feature[k] < 0)
        nodes.push_back({t.value[k]});
      else
        nodes.push_back({t.feature[k], t.threshold[k], t.left[k], t.right[k]});
    }
    trees.push_back(std::move(nodes));
  }
  return {{"base", base_}, {"features", features_}, {"trees", std::move(trees)}};
}

BoostedTrees BoostedTrees::from_json(const nlohmann::json& j, int features,
                                     const std::string& origin) {
  const auto bad = [&](const std::string& what) {
    fail(origin, ": damaged boosted trees (", what, "); fit the model again");
  };
  if (!j.is_object() || !j.contains("trees") || !j.contains("base") || !j.contains("features"))
    bad("missing base, features or trees");
  BoostedTrees m;
  try {
    m.base_ = j.at("base").get<double>();
    if (!fields::integer_in(j.at("features"), features, features))
      bad("fitted on " + j.at("features").dump() + " features, this iotnas uses " +
          std::to_string(features));
    m.features_ = features;
    if (!j.at("trees").is_array()) bad("trees is not an array");
    for (const auto& nodes : j.at("trees")) {
      Tree t;
      if (!nodes.is_array() || nodes.empty() || nodes.size() > size_t(INT32_MAX))
        bad("a tree is not a non-empty array of nodes");
      const int count = int(nodes.size());
      for (int k = 0; k < count; ++k) {
        const auto& node = nodes.at(size_t(k));
        if (node.size() == 1) {
          t.feature.push_back(-1);
          t.threshold.push_back(0);
          t.left.push_back(-1);
          t.right.push_back(-1);
          t.value.push_back(node[0].get<double>());
        } else if (node.size() == 4) {
          // Children come after their parent: no cycles, every walk ends at a leaf.
          if (!fields::integer_in(node[0], 0, features - 1))
            bad("a node's feature " + node[0].dump() + " is not below the " +
                std::to_string(features) + " features");
          if (!fields::integer_in(node[2], k + 1, count - 1) ||
              !fields::integer_in(node[3], k + 1, count - 1))
            bad("a node's children are out of range");
          const int f = node[0].get<int>(), l = node[2].get<int>(), r = node[3].get<int>();
          t.feature.push_back(f);
          t.threshold.push_back(node[1].get<double>());
          t.left.push_back(l);
          t.right.push_back(r);
          t.value.push_back(0);
        } else {
          bad("a node is neither [value] nor [feature, threshold, left, right]");
        }
        if (!std::isfinite(t.threshold.back()) || !std::isfinite(t.value.back()))
          bad("a number is not finite");
      }
      m.trees_.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    bad(e.what());
  }
  if (!std::isfinite(m.base_)) bad("base is not finite");
  return m;
}

}  // namespace iotnas::calib
