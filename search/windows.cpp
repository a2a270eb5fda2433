#include "search/windows.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "kernels/base/error.hpp"
#include "kernels/base/parallel.hpp"

namespace iotnas::search {

std::vector<double> grid_125(double from, double to) {
  const double a = std::log10(from), b = std::log10(to);
  if (!(from > 0) || !(to > from) || std::abs(a - std::round(a)) > 1e-9 ||
      std::abs(b - std::round(b)) > 1e-9) {
    fail("a 1-2-5 grid needs two powers of ten FROM < TO, got ", from, " and ", to);
  }
  std::vector<double> g;
  for (int d = int(std::round(a)); d < int(std::round(b)); ++d) {
    const double p = std::pow(10.0, d);
    g.insert(g.end(), {p, 2 * p, 5 * p});
  }
  g.push_back(to);
  return g;
}

std::vector<double> default_grid(Metric metric) {
  return metric == Metric::params ? grid_125(1e3, 1e7) : grid_125(1e5, 1e9);
}

const char* coverage_name(Coverage c) {
  switch (c) {
    case Coverage::inside:
      return "inside";
    case Coverage::partial:
      return "partial";
    default:
      return "unreachable";
  }
}

Coverage window_coverage(const Reach& r, double lo, double hi) {
  if (hi < r.min || lo > r.max) return Coverage::unreachable;
  if (lo >= r.min && hi <= r.max) return Coverage::inside;
  return Coverage::partial;
}

void check_window(const Space& space, const Reach& reach, Metric metric, double lo, double hi) {
  if (!(lo > 0) || !std::isfinite(hi) || !(lo < hi)) {
    fail("window ", lo, ":", hi, " needs 0 < LO < HI");
  }
  if (window_coverage(reach, lo, hi) == Coverage::unreachable) {
    fail("space '", space.name, "' cannot reach the window ", lo, ":", hi, " of ",
         metric_name(metric), ": its models have ", reach.min, " to ", reach.max, " ",
         metric_name(metric), " for this input shape");
  }
}

namespace {

// Window w = [lo, hi] of a search: its laws, their samples and the share inside the window.
void search_window(const Space& space, const SearchConfig& config, const Reach& reach, double lo,
                   double hi, int w, WindowResult& r) {
  const auto t0 = std::chrono::steady_clock::now();
  r.lo = lo;
  r.hi = hi;
  r.coverage = window_coverage(reach, r.lo, r.hi);
  if (r.coverage == Coverage::unreachable) return;
  GaConfig ga = config.ga;
  ga.seed = derive_seed(config.seed, uint64_t(w));
  r.ga = learn_laws(space, {config.metric, r.lo, r.hi, config.input, config.classes}, ga);
  SampleOptions so;
  so.input = config.input;
  so.classes = config.classes;
  so.seed = derive_seed(config.seed, 1000 + uint64_t(w));
  so.with_specs = config.with_specs;
  r.samples = sample_laws(space, r.ga.laws, int64_t(config.n_val) * int64_t(r.ga.laws.size()), so);
  int64_t hits = 0;
  for (const auto& s : r.samples) {
    const double v = metric_value(s.analytics, config.metric);
    hits += (v >= r.lo && v <= r.hi);
  }
  r.in_window = r.samples.empty() ? 0 : double(hits) / double(r.samples.size());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

SpaceSearch search_space(const Space& space, const SearchConfig& config) {
  const auto start = std::chrono::steady_clock::now();
  check_input(config.input, config.classes);
  check_ga_config(config.ga);
  if (config.n_val < 1 || config.n_val > kMaxNVal)
    fail("n_val = ", config.n_val, " is out of range [1, ", kMaxNVal, "]");
  if (int64_t(config.n_val) * config.ga.clusters > kMaxWindowSamples)
    fail("n_val x clusters = ", int64_t(config.n_val) * config.ga.clusters,
         " models per window is more than ", kMaxWindowSamples, "; lower n_val or clusters");
  SpaceSearch out;
  out.space = space.name;
  out.metric = config.metric;
  out.reach = reachable_range(space, config.metric, config.input, config.classes);
  const std::vector<double> grid = config.grid.empty() ? default_grid(config.metric) : config.grid;
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    if (!(grid[i] > 0) || !(grid[i] < grid[i + 1])) {
      fail("the window grid must be positive and increasing (", grid[i], " then ", grid[i + 1],
           ")");
    }
  }
  const int num_windows = std::max(0, int(grid.size()) - 1);
  out.windows.resize(num_windows);
  FirstException error;
#pragma omp parallel for schedule(dynamic, 1)
  for (int w = 0; w < num_windows; ++w) {
    error.run(
        [&] { search_window(space, config, out.reach, grid[w], grid[w + 1], w, out.windows[w]); });
  }
  error.rethrow();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

void Statistics::add(double v) {
  if (count == 0) {
    min = max = v;
  } else {
    min = std::min(min, v);
    max = std::max(max, v);
  }
  count++;
  const double delta = v - mean;
  mean += delta / double(count);
  m2 += delta * (v - mean);
  const int bin = std::max(0, int(std::floor(v / bin_width + 1e-9)));
  if (int(histogram.size()) <= bin) histogram.resize(bin + 1, 0);
  histogram[bin]++;
  const int decade = std::max(0, int(std::floor(v + 1e-12)));
  if (int(per_decade.size()) <= decade) per_decade.resize(decade + 1, 0);
  per_decade[decade]++;
}

void Statistics::merge(const Statistics& o) {
  if (o.count == 0) return;
  if (count == 0) {
    *this = o;
    return;
  }
  const double n = double(count + o.count);
  const double delta = o.mean - mean;
  m2 += o.m2 + delta * delta * double(count) * double(o.count) / n;
  mean += delta * double(o.count) / n;
  count += o.count;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
  if (histogram.size() < o.histogram.size()) histogram.resize(o.histogram.size(), 0);
  for (size_t i = 0; i < o.histogram.size(); ++i) histogram[i] += o.histogram[i];
  if (per_decade.size() < o.per_decade.size()) per_decade.resize(o.per_decade.size(), 0);
  for (size_t i = 0; i < o.per_decade.size(); ++i) per_decade[i] += o.per_decade[i];
}

Statistics uniform_statistics(const Space& space, Metric metric, int64_t n, Shape input,
                              int classes, uint64_t seed) {
  check_input(input, classes);
  const Law law = uniform_law(space);
  Statistics total;
  constexpr int64_t kChunk = 4096;  // samples per random stream
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Statistics> parts(chunks);
  FirstException error;
#pragma omp parallel
  {
    NetBuilder scratch;
    std::vector<int> vars;
#pragma omp for schedule(dynamic, 4)
    for (int64_t c = 0; c < chunks; ++c) {
      error.run([&] {
        vars.resize(space.vars.size());
        Rng rng(seed, uint64_t(c));
        const int64_t end = std::min(n, (c + 1) * kChunk);
        for (int64_t i = c * kChunk; i < end; ++i) {
          draw_vector(space, law, rng, vars);
          const Analytics a = analyze_vars(space, vars, input, classes, scratch);
          parts[c].add(std::log10(std::max(1.0, metric_value(a, metric))));
        }
      });
    }
  }
  error.rethrow();
  for (const auto& p : parts) total.merge(p);  // fixed order: same result for any thread count
  total.finish();
  return total;
}

Statistics sample_statistics(const std::vector<Sample>& samples, Metric metric) {
  Statistics s;
  for (const auto& x : samples) s.add(std::log10(std::max(1.0, metric_value(x.analytics, metric))));
  s.finish();
  return s;
}

Statistics search_statistics(const SpaceSearch& search) {
  Statistics s;
  for (const auto& w : search.windows) {
    for (const auto& x : w.samples) {
      s.add(std::log10(std::max(1.0, metric_value(x.analytics, search.metric))));
    }
  }
  s.finish();
  return s;
}

std::vector<DecadeShare> decade_shares(const SpaceSearch& search) {
  std::vector<DecadeShare> out;
  if (search.windows.empty()) return out;
  const double first = search.windows.front().lo, last = search.windows.back().hi;
  int64_t total = 0;
  for (const auto& w : search.windows) total += int64_t(w.samples.size());
  for (int d = int(std::floor(std::log10(first) + 1e-9)); std::pow(10.0, d) < last * (1 - 1e-9);
       ++d) {
    DecadeShare ds;
    ds.lo = std::pow(10.0, d);
    ds.hi = std::pow(10.0, d + 1);
    ds.reachable = ds.lo >= search.reach.min && ds.hi <= search.reach.max;
    int64_t hits = 0;
    for (const auto& w : search.windows) {
      for (const auto& s : w.samples) {
        const double v = metric_value(s.analytics, search.metric);
        hits += (v >= ds.lo && v < ds.hi);
      }
    }
    ds.share = total ? double(hits) / double(total) : 0.0;
    out.push_back(ds);
  }
  return out;
}

}  // namespace iotnas::search
