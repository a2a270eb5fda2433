// Sliding windows (paper §4): one GA search per pair of consecutive grid points (1-2-5 per
// decade), n_val models drawn per learned law; plus the statistics the report and the pictures
// use (uniform baseline, histograms of log10 of the metric, share of samples per decade).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "search/ga.hpp"
#include "search/law.hpp"
#include "search/space.hpp"

namespace iotnas::search {

// 1-2-5 grid from `from` to `to`, both powers of ten: grid_125(1e3, 1e7) = 1e3, 2e3, 5e3, 1e4,
// ..., 5e6, 1e7 (13 points).
std::vector<double> grid_125(double from, double to);
// params: 1e3 .. 1e7; flops: 1e5 .. 1e9.
std::vector<double> default_grid(Metric metric);

enum class Coverage {
  inside,       // the window lies inside the space's reachable range: the quality bar applies
  partial,      // the window overlaps the range: searched, reported, no bar
  unreachable,  // no model of the space lands in the window: reported and skipped
};
const char* coverage_name(Coverage c);
Coverage window_coverage(const Reach& reach, double lo, double hi);

// Checks a window for `iotnas laws`: LO < HI and reachable, else iotnas::Error naming the
// space's reachable range.
void check_window(const Space& space, const Reach& reach, Metric metric, double lo, double hi);

struct WindowResult {
  double lo = 0, hi = 0;
  Coverage coverage = Coverage::unreachable;
  GaResult ga;                  // empty when unreachable
  std::vector<Sample> samples;  // n_val per law, law_index into ga.laws
  double in_window = 0;         // fraction of samples with lo <= metric <= hi
  double seconds = 0;           // wall time of the GA and the sampling
};

// The most models drawn per learned law (n_val: `iotnas search --n-val`, the run config's
// "search.n_val"), and per window (n_val x laws, the laws being ga.clusters at most): a window's
// samples are held in memory (about 250 bytes each).
inline constexpr int kMaxNVal = 1000000;
inline constexpr int64_t kMaxWindowSamples = 10000000;

struct SearchConfig {
  Metric metric = Metric::params;
  std::vector<double> grid;  // empty: default_grid(metric)
  GaConfig ga;               // ga.seed is replaced by a seed derived from (seed, window)
  int n_val = 100;           // models drawn per learned law, 1..kMaxNVal
  Shape input{1, 28, 28};
  int classes = 10;
  uint64_t seed = 1;
  bool with_specs = false;  // build each sample's ModelSpec
};

struct SpaceSearch {
  std::string space;
  Metric metric = Metric::params;
  Reach reach;
  std::vector<WindowResult> windows;  // one per pair of consecutive grid points
  double seconds = 0;
};

// All windows of one space; windows run in parallel (OpenMP), each with its own seed, so the
// result does not depend on the thread count.
SpaceSearch search_space(const Space& space, const SearchConfig& config);

// Statistics of log10(metric) over a set of models, with a histogram.
struct Statistics {
  int64_t count = 0;
  double mean = 0, stddev = 0, min = 0, max = 0;  // of log10(metric); stddev: population
  double m2 = 0;                                  // sum of squared deviations (Welford)
  double bin_width = 0.1;                         // histogram bins over log10(metric) from 0
  std::vector<int64_t> histogram;                 // bin b counts [b*w, (b+1)*w)
  std::vector<int64_t> per_decade;                // [10^d, 10^(d+1)) for d = 0, 1, ...
  void add(double log10_value);
  void merge(const Statistics& other);
  void finish() { stddev = count > 1 ? std::sqrt(m2 / double(count)) : 0.0; }
};
// One million uniform samples take about a second per space.
Statistics uniform_statistics(const Space& space, Metric metric, int64_t n, Shape input,
                              int classes, uint64_t seed);
Statistics sample_statistics(const std::vector<Sample>& samples, Metric metric);
// All samples of all windows of a search.
Statistics search_statistics(const SpaceSearch& search);

// Share of a search's samples per decade [10^d, 10^(d+1)) inside the grid, and whether the
// space reaches the whole decade.
struct DecadeShare {
  double lo = 0, hi = 0;
  double share = 0;
  bool reachable = false;
};
std::vector<DecadeShare> decade_shares(const SpaceSearch& search);

}  // namespace iotnas::search
