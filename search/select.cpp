#include "search/select.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"
#include "search/ga.hpp"
#include "search/law.hpp"

namespace iotnas::search {

namespace {

// Index of pick j of k spread evenly over n sorted items.
size_t spread_index(int j, int k, size_t n) {
  return std::min(size_t((j + 0.5) * double(n) / k), n - 1);
}

// Grid points 1, 2, 5 x 10^k inside [lo, hi], with lo and hi themselves.
std::vector<double> grid_between(double lo, double hi) {
  std::vector<double> g{lo};
  for (double decade = std::pow(10.0, std::floor(std::log10(lo))); decade <= hi; decade *= 10)
    for (double m : {1.0, 2.0, 5.0})
      if (m * decade > lo * 1.0001 && m * decade < hi * 0.9999) g.push_back(m * decade);
  g.push_back(hi);
  return g;
}

}  // namespace

std::vector<Pick> select_per_window(std::span<const SpaceSearch> searches, Metric metric,
                                    const CandidateSettings& settings, Shape input, int classes,
                                    std::set<std::string>& seen) {
  std::vector<Pick> picks;
  size_t n_windows = 0;
  for (const auto& s : searches) n_windows = std::max(n_windows, s.windows.size());
  for (size_t wi = 0; wi < n_windows; ++wi) {
    for (const SpaceSearch& search : searches) {
      if (wi >= search.windows.size()) continue;
      const WindowResult& w = search.windows[wi];
      if (w.coverage == Coverage::unreachable) continue;
      std::vector<const Sample*> ok;
      for (const auto& smp : w.samples) {
        const double m = metric_value(smp.analytics, metric);
        if (m >= w.lo && m <= w.hi && double(smp.analytics.flops) <= settings.max_flops)
          ok.push_back(&smp);
      }
      std::sort(ok.begin(), ok.end(), [&](const Sample* a, const Sample* b) {
        const double ma = metric_value(a->analytics, metric);
        const double mb = metric_value(b->analytics, metric);
        return ma != mb ? ma < mb : a->vars < b->vars;
      });
      const int k = std::min<int>(settings.per_window, int(ok.size()));
      const Space& space = find_space(search.space);
      for (int j = 0; j < k; ++j) {
        Pick p;
        p.space = space.name;
        p.vars = ok[spread_index(j, k, ok.size())]->vars;
        p.spec = build_spec(space, p.vars, input, classes);
        p.spec_json = spec_to_json(p.spec);
        if (!seen.insert(p.spec_json).second) continue;
        p.analytics = analyze(p.spec);
        picks.push_back(std::move(p));
      }
    }
  }
  if (settings.max_models > 0 && int(picks.size()) > settings.max_models)
    picks.resize(size_t(settings.max_models));
  return picks;
}

ConstraintPicks select_for_constraint(std::span<const SpaceSearch> searches,
                                      int64_t max_weight_bytes,
                                      std::optional<double> max_latency_ms,
                                      const CandidateSettings& settings, Shape input, int classes,
                                      std::set<std::string>& picked,
                                      const std::function<double(const Pick&)>& predict) {
  const double lo = double(max_weight_bytes) / 4, hi = double(max_weight_bytes);
  std::vector<const Sample*> pool;
  std::vector<std::string> pool_space;
  std::set<std::pair<std::string, std::vector<int>>> dup;
  for (const auto& s : searches)
    for (const auto& w : s.windows)
      for (const auto& smp : w.samples) {
        const double n = double(smp.analytics.inference_params);
        if (n < lo || n > hi || double(smp.analytics.flops) > settings.max_flops) continue;
        if (!dup.insert({s.space, smp.vars}).second) continue;
        pool.push_back(&smp);
        pool_space.push_back(s.space);
      }
  ConstraintPicks out;
  std::vector<Pick> ok;
  for (size_t i = 0; i < pool.size(); ++i) {
    Pick p;
    p.space = pool_space[i];
    p.vars = pool[i]->vars;
    p.spec = build_spec(find_space(p.space), p.vars, input, classes);
    p.analytics = pool[i]->analytics;
    if (max_latency_ms && predict) {
      out.latency_judged = true;
      if (!(predict(p) <= *max_latency_ms)) continue;
    }
    ok.push_back(std::move(p));
  }
  std::sort(ok.begin(), ok.end(), [](const Pick& a, const Pick& b) {
    return a.analytics.inference_params != b.analytics.inference_params
               ? a.analytics.inference_params < b.analytics.inference_params
               : a.spec.name < b.spec.name;
  });
  out.fitting = ok.size();
  out.chosen = std::min<int>(settings.per_constraint, int(ok.size()));
  for (int j = 0; j < out.chosen; ++j) {
    Pick& p = ok[spread_index(j, out.chosen, ok.size())];
    if (p.spec_json.empty()) p.spec_json = spec_to_json(p.spec);
    if (!picked.insert(p.spec_json).second) continue;
    out.added.push_back(p);
  }
  return out;
}

std::vector<Pick> select_for_calibration(std::span<const Pick> candidates,
                                         std::span<const SpaceSearch> searches, int models,
                                         double max_flops, Shape input, int classes,
                                         std::set<std::string>& seen) {
  const size_t want = size_t(std::max(models, 0));
  std::vector<Pick> out(candidates.begin(), candidates.begin() + std::min(candidates.size(), want));
  for (size_t j = 0; out.size() < want; ++j) {
    bool any = false;
    for (const auto& s : searches) {
      for (const auto& w : s.windows) {
        if (j >= w.samples.size() || out.size() >= want) continue;
        any = true;
        const Sample& smp = w.samples[j];
        if (double(smp.analytics.flops) > max_flops) continue;
        Pick p;
        p.space = s.space;
        p.vars = smp.vars;
        p.spec = build_spec(find_space(s.space), p.vars, input, classes);
        p.spec_json = spec_to_json(p.spec);
        if (!seen.insert(p.spec_json).second) continue;
        p.analytics = smp.analytics;
        out.push_back(std::move(p));
      }
    }
    if (!any) break;
  }
  return out;
}

std::vector<Pick> sample_across_windows(std::span<const Space* const> spaces, int n, double lo,
                                        double hi, Shape input, int classes, uint64_t seed,
                                        const std::function<void(const std::string&)>& note) {
  struct Cell {
    const Space* space;
    double lo, hi;
    int count = 0;
  };
  const auto grid = grid_between(lo, hi);
  std::vector<Cell> cells;
  for (size_t w = 0; w + 1 < grid.size(); ++w)
    for (const Space* s : spaces) {
      const auto reach = reachable_range(*s, Metric::params, input, classes);
      if (window_coverage(reach, grid[w], grid[w + 1]) != Coverage::unreachable)
        cells.push_back({s, grid[w], grid[w + 1]});
    }
  if (cells.empty()) fail("no search space reaches [", lo, ", ", hi, "] parameters");
  const int C = int(cells.size());
  if (n >= C) {
    for (auto& c : cells) c.count = n / C;
    const int extra = n % C;
    for (int i = 0; i < extra; ++i) cells[size_t(int64_t(i) * C / extra)].count++;
  } else {
    for (int i = 0; i < n; ++i) cells[size_t(int64_t(i) * C / n)].count++;
  }
  std::vector<Pick> plan;
  std::set<std::string> taken;
  for (size_t ci = 0; ci < cells.size(); ++ci) {
    const Cell& c = cells[ci];
    if (c.count == 0) continue;
    const uint64_t cell_seed = derive_seed(seed, ci);
    std::vector<Law> laws;
    try {
      GaConfig ga;
      ga.n_init = 40;
      ga.n_steps = 200;
      ga.clusters = 4;
      ga.n_rescore = 20;
      ga.seed = cell_seed;
      laws = learn_laws(*c.space, {Metric::params, c.lo, c.hi, input, classes}, ga).laws;
    } catch (const Error& e) {
      if (note)
        note(c.space->name + ": no laws for [" + std::to_string(int64_t(c.lo)) + ", " +
             std::to_string(int64_t(c.hi)) + "] (" + e.what() + "): uniform draw instead");
    }
    if (laws.empty()) laws.push_back(uniform_law(*c.space));
    SampleOptions so;
    so.input = input;
    so.classes = classes;
    so.seed = cell_seed;
    so.with_specs = true;
    auto samples = sample_laws(*c.space, laws, 4 * c.count + 8, so);
    // Models inside the window first (stable), then the rest; no model twice.
    std::stable_partition(samples.begin(), samples.end(), [&](const Sample& s) {
      return s.analytics.params >= c.lo && s.analytics.params <= c.hi;
    });
    int got = 0;
    for (auto& s : samples) {
      if (got == c.count) break;
      if (!taken.insert(s.spec.name).second) continue;
      Pick p;
      p.space = c.space->name;
      p.vars = s.vars;
      p.spec = std::move(s.spec);
      p.analytics = s.analytics;
      plan.push_back(std::move(p));
      ++got;
    }
  }
  return plan;
}

}  // namespace iotnas::search
