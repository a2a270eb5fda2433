#include "search/front.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

#include "kernels/base/error.hpp"
#include "kernels/round/format.hpp"

namespace iotnas::search {

const char* cost_name(Cost c) {
  return c == Cost::weight_bytes ? "weight_bytes" : "latency_ms";
}

double cost_value(const Candidate& c, Cost cost) {
  return cost == Cost::weight_bytes ? double(c.weight_bytes) : c.latency_ms;
}

std::vector<int> pareto_front(std::span<const Candidate> candidates, Cost cost) {
  std::vector<int> order;
  for (int i = 0; i < int(candidates.size()); ++i)
    if (!std::isnan(candidates[i].accuracy) && !std::isnan(cost_value(candidates[i], cost)))
      order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const double ca = cost_value(candidates[a], cost), cb = cost_value(candidates[b], cost);
    if (ca != cb) return ca < cb;
    return candidates[a].accuracy > candidates[b].accuracy;
  });
  std::vector<int> front;
  double best = -std::numeric_limits<double>::infinity();
  for (int i : order) {
    if (candidates[i].accuracy > best) {
      front.push_back(i);
      best = candidates[i].accuracy;
    }
  }
  return front;
}

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string format_label(const Candidate& c) {
  return kernels::format_label(c.w, c.t);
}

std::string bytes_text(double b) {
  return fmt("%.0f", b) + " B";
}
std::string ms_text(double ms) {
  return fmt("%.4g", ms) + " ms";
}
std::string percent(double acc) {
  return fmt("%.2f", acc * 100) + " %";
}

// Strict weak order "better answer first": accuracy, then fewer bytes, lower latency (unknown
// last), fewer bits, input order.
bool better(std::span<const Candidate> c, int a, int b) {
  const Candidate &x = c[a], &y = c[b];
  if (x.accuracy != y.accuracy) return x.accuracy > y.accuracy;
  if (x.weight_bytes != y.weight_bytes) return x.weight_bytes < y.weight_bytes;
  const bool xl = !std::isnan(x.latency_ms), yl = !std::isnan(y.latency_ms);
  if (xl != yl) return xl;
  if (xl && x.latency_ms != y.latency_ms) return x.latency_ms < y.latency_ms;
  if (x.bits() != y.bits()) return x.bits() < y.bits();
  return a < b;
}

}  // namespace

Solution solve(std::span<const Candidate> candidates, const Limits& limits, int runners_up) {
  if (limits.max_weight_bytes < 0)
    fail("max weight bytes ", limits.max_weight_bytes, " is negative; give a limit >= 0");
  if (limits.max_latency_ms &&
      !(std::isfinite(*limits.max_latency_ms) && *limits.max_latency_ms > 0))
    fail("max latency ", *limits.max_latency_ms, " ms is not a positive number of milliseconds");
  const auto meets_weight = [&](const Candidate& c) {
    return c.weight_bytes <= limits.max_weight_bytes;
  };
  const auto meets_latency = [&](const Candidate& c) {
    return !limits.max_latency_ms ||
           (!std::isnan(c.latency_ms) && c.latency_ms <= *limits.max_latency_ms);
  };

  std::vector<int> known;  // candidates with an accuracy, best first
  for (int i = 0; i < int(candidates.size()); ++i)
    if (!std::isnan(candidates[i].accuracy)) known.push_back(i);
  std::sort(known.begin(), known.end(), [&](int a, int b) { return better(candidates, a, b); });

  Solution s;
  if (known.empty()) {
    s.message = "no evaluated (model, format) results to choose from";
    return s;
  }
  for (int i : known) {
    if (meets_weight(candidates[i]) && meets_latency(candidates[i])) {
      s.best = i;
      break;
    }
  }

  if (s.best < 0) {
    // Smallest weight among candidates meeting the latency limit, smallest latency among those
    // meeting the weight limit, and the global minima.
    const double inf = std::numeric_limits<double>::infinity();
    double w_given_l = inf, l_given_w = inf, w_any = inf;
    bool any_w = false, any_l = false;
    for (int i : known) {
      const Candidate& c = candidates[i];
      const double w = double(c.weight_bytes);
      w_any = std::min(w_any, w);
      if (meets_weight(c)) {
        any_w = true;
        if (!std::isnan(c.latency_ms)) l_given_w = std::min(l_given_w, c.latency_ms);
      }
      if (meets_latency(c)) {
        any_l = true;
        w_given_l = std::min(w_given_l, w);
      }
    }
    const auto finite_or_nan = [](double v) { return std::isinf(v) ? NAN : v; };
    const double wl = double(limits.max_weight_bytes);
    const double ll = limits.max_latency_ms.value_or(NAN);
    if (!any_w && any_l) {
      s.violations.push_back({Cost::weight_bytes, wl, w_given_l});
    } else if (any_w && !any_l) {
      s.violations.push_back({Cost::latency_ms, ll, finite_or_nan(l_given_w)});
    } else if (any_w && any_l) {
      s.violations.push_back({Cost::weight_bytes, wl, w_given_l});
      s.violations.push_back({Cost::latency_ms, ll, finite_or_nan(l_given_w)});
    } else {
      // Relax both: the weight to the lightest candidate's, the latency to the fastest of the
      // candidates that light.
      double l_at_w_any = inf;
      for (int i : known)
        if (double(candidates[i].weight_bytes) == w_any && !std::isnan(candidates[i].latency_ms))
          l_at_w_any = std::min(l_at_w_any, candidates[i].latency_ms);
      s.violations.push_back({Cost::weight_bytes, wl, w_any});
      if (limits.max_latency_ms)
        s.violations.push_back({Cost::latency_ms, ll, finite_or_nan(l_at_w_any)});
    }
    std::string m = "no model meets ";
    m += limits.max_latency_ms ? "the limits" : "the weight limit";
    for (size_t k = 0; k < s.violations.size(); ++k) {
      const Violation& v = s.violations[k];
      m += k == 0 ? ": " : (any_w && any_l ? "; or " : "; and ");
      if (v.limit == Cost::weight_bytes) {
        m += "weight " + bytes_text(v.given) + " -> smallest feasible " + bytes_text(v.smallest);
      } else if (std::isnan(v.smallest)) {
        m += "latency " + ms_text(v.given) + " -> no candidate has a known latency";
      } else {
        m += "latency " + ms_text(v.given) + " -> smallest feasible " + ms_text(v.smallest);
      }
    }
    s.message = m;
  } else {
    const Candidate& b = candidates[s.best];
    s.message = b.model_id + " in " + format_label(b) + ": accuracy " + percent(b.accuracy) + ", " +
                bytes_text(double(b.weight_bytes));
    if (!std::isnan(b.latency_ms)) s.message += ", " + ms_text(b.latency_ms);
  }

  // Per other model: its best feasible entry, else its best entry (with the reason it fails).
  struct PerModel {
    int feasible = -1, any = -1;
  };
  std::map<std::string, PerModel> models;
  for (int i : known) {
    const Candidate& c = candidates[i];
    if (s.best >= 0 && c.model_id == candidates[s.best].model_id) continue;
    PerModel& p = models[c.model_id];
    if (p.any < 0) p.any = i;
    if (p.feasible < 0 && meets_weight(c) && meets_latency(c)) p.feasible = i;
  }
  std::vector<RunnerUp> all;
  for (const auto& [id, p] : models) {
    RunnerUp r;
    if (p.feasible >= 0) {
      r.index = p.feasible;
      const Candidate &c = candidates[p.feasible], &b = candidates[s.best];
      if (c.accuracy < b.accuracy) {
        r.reason = "less accurate: " + percent(c.accuracy) + " in " + format_label(c) + " < " +
                   percent(b.accuracy);
      } else {
        r.reason = "as accurate (" + percent(c.accuracy) + " in " + format_label(c) +
                   ") but lost the tie: more weight bytes, latency or bits";
      }
    } else {
      r.index = p.any;
      // Which limit rules out every entry of this model: report the closest it comes.
      int64_t min_w = INT64_MAX;
      double min_l = std::numeric_limits<double>::infinity();
      bool some_w = false, some_l = false;
      for (int i : known) {
        const Candidate& c = candidates[i];
        if (c.model_id != id) continue;
        min_w = std::min(min_w, c.weight_bytes);
        if (!std::isnan(c.latency_ms)) min_l = std::min(min_l, c.latency_ms);
        some_w |= meets_weight(c);
        some_l |= meets_latency(c);
      }
      if (!some_w) {
        r.reason = "weight over the limit in every format (smallest " + bytes_text(double(min_w)) +
                   " > " + bytes_text(double(limits.max_weight_bytes)) + ")";
      } else if (!some_l) {
        r.reason = std::isinf(min_l) ? "latency unknown, cannot meet the latency limit"
                                     : "latency " + ms_text(min_l) + " > limit " +
                                           ms_text(*limits.max_latency_ms);
      } else {
        r.reason = "the formats that fit the weight limit miss the latency limit";
      }
    }
    all.push_back(r);
  }
  std::sort(all.begin(), all.end(), [&](const RunnerUp& a, const RunnerUp& b) {
    return better(candidates, a.index, b.index);
  });
  if (int(all.size()) > runners_up) all.resize(std::max(0, runners_up));
  s.runners_up = std::move(all);
  s.feasible = s.best >= 0;
  return s;
}

}  // namespace iotnas::search
