#include "search/ga.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/base/error.hpp"
#include "search/spectral.hpp"

namespace iotnas::search {

void check_ga_config(const GaConfig& c) {
  auto need = [](bool ok, const char* name, int v, const std::string& range) {
    if (!ok) fail("GA parameter ", name, " = ", v, " is out of range (", range, ")");
  };
  const auto upto = [](int lo, int hi) { return std::to_string(lo) + ".." + std::to_string(hi); };
  need(c.n_init >= 2 && c.n_init <= kMaxInit, "n_init", c.n_init, upto(2, kMaxInit));
  need(c.n_steps >= 0 && c.n_steps <= kMaxSteps, "n_steps", c.n_steps, upto(0, kMaxSteps));
  need(c.n_eval >= 2 && c.n_eval <= kMaxEval, "n_eval", c.n_eval, upto(2, kMaxEval));
  need(c.tournament >= 1 && c.tournament <= c.n_init, "tournament", c.tournament, "1..n_init");
  need(c.clusters >= 1 && c.clusters <= c.n_init, "clusters", c.clusters, "1..n_init");
  need(c.n_rescore == 0 || (c.n_rescore >= 2 && c.n_rescore <= kMaxEval), "n_rescore", c.n_rescore,
       "0 or " + upto(2, kMaxEval));
  need(c.rescore_top >= 1 && c.rescore_top <= c.n_init, "rescore_top", c.rescore_top, "1..n_init");
  if (!(c.miss_weight >= 0 && c.miss_weight <= 100)) {
    fail("GA parameter miss_weight = ", c.miss_weight, " must be in [0, 100]");
  }
  if (!(c.crossover >= 0 && c.crossover <= 1)) {
    fail("GA parameter crossover = ", c.crossover, " must be in [0, 1]");
  }
  if (!(c.mutation_extra >= 0 && c.mutation_extra < 1)) {
    fail("GA parameter mutation_extra = ", c.mutation_extra, " must be in [0, 1)");
  }
}

double law_cost(double mu, double sigma, double lo, double hi) {
  return std::abs(mu - sigma - std::log10(lo)) + std::abs(mu + sigma - std::log10(hi));
}

namespace {

// Laws in index space (lattice positions of each variable), as the GA moves them.
struct Individual {
  std::vector<Range> idx;              // [lo, hi] as indices into each variable's values
  double cost = 0, mu = 0, sigma = 0;  // the paper's cost and its statistics
  double miss = 0;                     // share of the drawn models outside the window
  double score = 0;                    // what the GA ranks by: cost + miss_weight * miss
};

class Evaluator {
 public:
  Evaluator(const Space& space, const Target& t, double miss_weight)
      : space_(space), t_(t), miss_weight_(miss_weight), vars_(space.vars.size()) {}

  // Estimates (mu, sigma) of log10(metric) from n models drawn from the law, and its cost.
  void evaluate(Individual& ind, int n, Rng& rng) {
    logs_.resize(n);
    int misses = 0;
    for (int s = 0; s < n; ++s) {
      for (size_t i = 0; i < vars_.size(); ++i) {
        const Range& r = ind.idx[i];
        vars_[i] = space_.vars[i].value(r.lo + int(rng.below(uint32_t(r.hi - r.lo + 1))));
      }
      const Analytics a = analyze_vars(space_, vars_, t_.input, t_.classes, scratch_);
      const double v = metric_value(a, t_.metric);
      misses += !(v >= t_.lo && v <= t_.hi);
      logs_[s] = std::log10(std::max(1.0, v));
    }
    double mean = 0;
    for (double v : logs_) mean += v;
    mean /= n;
    double ss = 0;
    for (double v : logs_) ss += (v - mean) * (v - mean);
    ind.mu = mean;
    ind.sigma = std::sqrt(ss / (n - 1));  // sample standard deviation
    ind.cost = law_cost(ind.mu, ind.sigma, t_.lo, t_.hi);
    ind.miss = double(misses) / n;
    ind.score = ind.cost + miss_weight_ * ind.miss;
  }

 private:
  const Space& space_;
  const Target& t_;
  double miss_weight_;
  std::vector<int> vars_;
  std::vector<double> logs_;
  NetBuilder scratch_;
};

// Initial laws, three kinds in turn: bounds uniform over each variable's values; log-uniform
// (index + 1 = count^u, biased to small values); and "scaled": log-uniform below count^s for one
// s in [0, 1] shared by all variables of the law, so that some laws make every variable small
// at once and the population starts with models of every size the space has.
Individual random_individual(const Space& space, int kind, Rng& rng) {
  Individual ind;
  const double scale = kind == 2 ? rng.uniform() : 1.0;
  for (const auto& x : space.vars) {
    const int count = x.count();
    int ab[2];
    for (int& i : ab) {
      if (kind == 0) {
        i = int(rng.below(uint32_t(count)));
      } else {
        i = int(std::floor(std::exp(rng.uniform() * scale * std::log(double(count))))) - 1;
        i = std::clamp(i, 0, count - 1);
      }
    }
    ind.idx.push_back({std::min(ab[0], ab[1]), std::max(ab[0], ab[1])});
  }
  return ind;
}

// Moves one bound (l_x or h_x) of one variable: a relative move (index + 1 scaled by 2^u,
// u in [-1, 1]: fine steps at small widths, big ones at large widths), a small additive step
// (up to a tenth of the variable's values), or a jump anywhere. Bounds that cross are swapped.
void mutate_once(const Space& space, Individual& ind, Rng& rng) {
  const int v = int(rng.below(uint32_t(space.vars.size())));
  const int count = space.vars[v].count();
  if (count == 1) return;
  Range& r = ind.idx[v];
  int& bound = rng.below(2) ? r.hi : r.lo;
  const int old = bound;
  const double kind = rng.uniform();
  if (kind < 0.45) {
    bound = int(std::lround((bound + 1) * std::exp2(2 * rng.uniform() - 1))) - 1;
    if (bound == old) bound += rng.below(2) ? 1 : -1;
  } else if (kind < 0.85) {
    const int reach = std::max(1, count / 10);
    const int step = 1 + int(rng.below(uint32_t(reach)));
    bound += rng.below(2) ? step : -step;
  } else {
    bound = int(rng.below(uint32_t(count)));
  }
  bound = std::clamp(bound, 0, count - 1);
  if (r.lo > r.hi) std::swap(r.lo, r.hi);
}

Law to_law(const Space& space, const Individual& ind) {
  Law law;
  for (size_t i = 0; i < space.vars.size(); ++i) {
    law.ranges.push_back({space.vars[i].value(ind.idx[i].lo), space.vars[i].value(ind.idx[i].hi)});
  }
  law.cost = ind.cost;
  law.mu = ind.mu;
  law.sigma = ind.sigma;
  return law;
}

}  // namespace

GaResult learn_laws(const Space& space, const Target& t, const GaConfig& c) {
  check_ga_config(c);
  check_input(t.input, t.classes);
  if (!(t.lo > 0) || !(t.hi > t.lo) || !std::isfinite(t.hi)) {
    fail("window [", t.lo, ", ", t.hi, "] needs 0 < LO < HI");
  }
  Rng rng(c.seed);
  Evaluator eval(space, t, c.miss_weight);
  std::vector<Individual> pop;
  pop.reserve(c.n_init);
  for (int i = 0; i < c.n_init; ++i) {
    pop.push_back(random_individual(space, i % 3, rng));
    eval.evaluate(pop.back(), c.n_eval, rng);
  }
  auto tournament = [&] {
    int winner = int(rng.below(uint32_t(pop.size())));
    for (int k = 1; k < c.tournament; ++k) {
      const int other = int(rng.below(uint32_t(pop.size())));
      if (pop[other].score < pop[winner].score) winner = other;
    }
    return winner;
  };
  for (int step = 0; step < c.n_steps; ++step) {
    Individual child = pop[tournament()];
    if (c.crossover > 0 && rng.uniform() < c.crossover) {
      const Individual& other = pop[tournament()];
      for (size_t v = 0; v < child.idx.size(); ++v) {
        if (rng.below(2)) child.idx[v] = other.idx[v];
      }
    }
    mutate_once(space, child, rng);
    while (rng.uniform() < c.mutation_extra) mutate_once(space, child, rng);
    eval.evaluate(child, c.n_eval, rng);
    // Steady state: the child replaces the worst law when it is better.
    auto worst = std::max_element(pop.begin(), pop.end(),
                                  [](const auto& a, const auto& b) { return a.score < b.score; });
    if (child.score < worst->score) *worst = std::move(child);
  }

  GaResult result;
  result.evaluated = int64_t(c.n_init + c.n_steps) * c.n_eval;
  for (const auto& ind : pop) result.population.push_back(to_law(space, ind));

  // Cluster the distinct laws on their bounds normalised to [0, 1] per variable.
  std::vector<int> distinct;  // population index of the first copy of each distinct law
  std::vector<int> copy_of(pop.size());
  for (size_t i = 0; i < pop.size(); ++i) {
    int found = -1;
    for (size_t d = 0; d < distinct.size() && found < 0; ++d) {
      if (pop[distinct[d]].idx == pop[i].idx) found = int(d);
    }
    if (found < 0) {
      found = int(distinct.size());
      distinct.push_back(int(i));
    }
    copy_of[i] = found;
  }
  const int dims = int(space.vars.size());
  Eigen::MatrixXd points(distinct.size(), 2 * dims);
  for (size_t d = 0; d < distinct.size(); ++d) {
    for (int v = 0; v < dims; ++v) {
      const double span = std::max(1, space.vars[v].count() - 1);
      points(d, 2 * v) = pop[distinct[d]].idx[v].lo / span;
      points(d, 2 * v + 1) = pop[distinct[d]].idx[v].hi / span;
    }
  }
  const std::vector<int> groups = spectral_clustering(points, c.clusters, derive_seed(c.seed, 1));
  const int k = groups.empty() ? 0 : *std::max_element(groups.begin(), groups.end()) + 1;
  result.cluster.resize(pop.size());
  for (size_t i = 0; i < pop.size(); ++i) result.cluster[i] = groups[copy_of[i]];

  // Per cluster, its distinct laws by GA cost; the best (after rescoring the top few) wins.
  std::vector<std::vector<int>> members(k);
  for (size_t d = 0; d < distinct.size(); ++d) members[groups[d]].push_back(distinct[d]);
  std::vector<Individual> winners;
  Rng rescore_rng(c.seed, 2);
  for (auto& m : members) {
    if (m.empty()) continue;
    std::stable_sort(m.begin(), m.end(), [&](int a, int b) { return pop[a].score < pop[b].score; });
    Individual best = pop[m[0]];
    if (c.n_rescore > 0) {
      for (int j = 0; j < std::min<int>(c.rescore_top, int(m.size())); ++j) {
        Individual candidate = pop[m[j]];
        eval.evaluate(candidate, c.n_rescore, rescore_rng);
        result.evaluated += c.n_rescore;
        if (j == 0 || candidate.score < best.score) best = std::move(candidate);
      }
    }
    winners.push_back(std::move(best));
  }
  std::stable_sort(winners.begin(), winners.end(),
                   [](const auto& a, const auto& b) { return a.score < b.score; });
  for (const auto& w : winners) result.laws.push_back(to_law(space, w));
  return result;
}

}  // namespace iotnas::search
