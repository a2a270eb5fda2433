// The genetic algorithm that learns sampling laws for a target window (paper §4): a population of
// laws, tournament selection, mutations that move one l_x or h_x, cost
// |mu - sigma - tau1| + |mu + sigma - tau2| on log10 of the metric estimated from n_eval drawn
// models; then spectral clustering of the final population into k groups and the best law of
// each. Sequential and deterministic given the seed (one GA takes ~10-100 ms).
#pragma once

#include <cstdint>
#include <vector>

#include "search/law.hpp"
#include "search/space.hpp"

namespace iotnas::search {

struct GaConfig {
  int n_init = 100;             // initial population (random laws)
  int n_steps = 900;            // children, one per step (steady state)
  int n_eval = 10;              // models drawn to estimate (mu, sigma) of one law
  int tournament = 5;           // laws drawn per tournament; the best becomes the parent
  int clusters = 10;            // k of the spectral clustering: laws returned
  double mutation_extra = 0.8;  // chance of each further mutation after the first
  double crossover = 0.5;       // chance that a child mixes two parents' ranges per variable
  // Beyond the paper: n_eval = 10 models give noisy costs, and the best of a cluster is often a
  // lucky estimate. The rescore_top best laws of each cluster are re-estimated from n_rescore
  // fresh models and the best re-estimate wins. n_rescore = 0 keeps the paper's choice.
  int n_rescore = 100;
  int rescore_top = 3;
  // Beyond the paper: the GA ranks laws by cost + miss_weight * (share of the drawn models
  // outside [lo, hi]). The paper's cost alone is blind to laws whose models pile up just outside
  // both ends of the window (a coarse variable such as a width of 2 or 3 channels gives
  // mu +- sigma = [lo, hi] with few models inside). miss_weight = 0 is the paper's ranking.
  double miss_weight = 0.75;
  uint64_t seed = 1;
};
// The largest GA sizes check_ga_config accepts (the flags of `iotnas laws` / `iotnas search` and
// the run config's "search" fields share them).
inline constexpr int kMaxInit = 100000;     // n_init
inline constexpr int kMaxSteps = 10000000;  // n_steps
inline constexpr int kMaxEval = 100000;     // n_eval, n_rescore
// Throws iotnas::Error naming the parameter when one is out of range.
void check_ga_config(const GaConfig& c);

// What the laws should hit: lo <= metric <= hi for models of this input shape.
struct Target {
  Metric metric = Metric::params;
  double lo = 0, hi = 0;  // metric units (parameters or FLOPs), 0 < lo < hi
  Shape input{1, 28, 28};
  int classes = 10;
};

// The paper's cost in log10 units: |mu - sigma - log10(lo)| + |mu + sigma - log10(hi)|.
double law_cost(double mu, double sigma, double lo, double hi);

struct GaResult {
  std::vector<Law> population;  // final population, with the GA's cost estimates
  std::vector<int> cluster;     // cluster index per population member
  std::vector<Law> laws;        // best law per cluster, lowest cost first (rescored costs)
  int64_t evaluated = 0;        // models evaluated: (n_init + n_steps) * n_eval + rescoring
};

// Learns laws for `target` in `space`. Throws iotnas::Error for a bad window or config.
GaResult learn_laws(const Space& space, const Target& target, const GaConfig& config);

}  // namespace iotnas::search
