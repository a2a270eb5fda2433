#include "search/report.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <sstream>

#include "engine/util/files.hpp"
#include "engine/util/plot.hpp"
#include "kernels/base/error.hpp"
#include "kernels/base/parallel.hpp"

namespace iotnas::search {

namespace fs = std::filesystem;

namespace {

// Why the model of `vars` is invalid ("" when it is valid): its analytic path throws or
// disagrees with analyze(build_graph(spec)). Throws std::bad_alloc.
std::string model_error(const Space& space, const std::vector<int>& vars, Shape input, int classes,
                        NetBuilder& scratch) {
  try {
    const Analytics fast = analyze_vars(space, vars, input, classes, scratch);
    const Analytics full = analyze(build_graph(build_spec(space, vars, input, classes)));
    if (fast.params != full.params || fast.flops != full.flops ||
        fast.peak_activation_bytes != full.peak_activation_bytes) {
      return "the analytic path disagrees with analyze(build_graph(spec))";
    }
  } catch (const std::bad_alloc&) {
    throw;  // the machine's limit, not the model's fault
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

ValidityCheck check_uniform_models(const Space& space, int64_t n, Shape input, int classes,
                                   uint64_t seed) {
  check_input(input, classes);
  if (n < 0) fail("cannot check a negative number of models (", n, ")");
  const Law law = uniform_law(space);
  std::atomic<int64_t> bad{0};
  ValidityCheck out;
  out.checked = n;
  FirstException failure;  // not a model's error (those are counted): e.g. out of memory
#pragma omp parallel
  {
    NetBuilder scratch;
    std::vector<int> vars;
#pragma omp for schedule(dynamic, 256)
    for (int64_t i = 0; i < n; ++i) {
      failure.run([&] {
        vars.resize(space.vars.size());
        Rng rng(seed, uint64_t(i));
        draw_vector(space, law, rng, vars);
        const std::string error = model_error(space, vars, input, classes, scratch);
        if (!error.empty() && bad.fetch_add(1) == 0)
          out.first_error = space.name + vector_string(vars) + ": " + error;
      });
    }
  }
  failure.rethrow();
  out.invalid = bad.load();
  return out;
}

namespace {

// The decade range the quality bar covers: [1e3, 1e7] for params, [1e5, 1e9] for FLOPs.
std::pair<double, double> bar_decades(Metric m) {
  return m == Metric::params ? std::pair{1e3, 1e7} : std::pair{1e5, 1e9};
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string general(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string short_number(double v) {
  if (!(v > 0) || !std::isfinite(v)) return general(v);
  const int e = int(std::floor(std::log10(v) + 1e-9));
  const double m = v / std::pow(10.0, e);
  if (std::abs(m - std::round(m)) < 1e-9) {
    return std::to_string(int(std::round(m))) + "e" + std::to_string(e);
  }
  return general(v);
}

Verdict judge(const SpaceReport& r) {
  Verdict v;
  for (const auto& w : r.search.windows) {
    if (w.coverage == Coverage::inside && w.in_window < 0.5) v.windows_ok = false;
  }
  const auto [lo, hi] = bar_decades(r.search.metric);
  for (const auto& d : decade_shares(r.search)) {
    if (d.reachable && d.lo >= lo * (1 - 1e-9) && d.hi <= hi * (1 + 1e-9) && d.share < 0.10) {
      v.decades_ok = false;
    }
  }
  v.valid_ok = r.valid.invalid == 0;
  return v;
}

std::string distribution_csv(const Statistics& uniform, const Statistics& learned) {
  const double w = uniform.bin_width;
  IOTNAS_ASSERT(learned.bin_width == w);
  const size_t bins = std::max(uniform.histogram.size(), learned.histogram.size());
  size_t first = bins, last = 0;
  for (size_t b = 0; b < bins; ++b) {
    const bool any = (b < uniform.histogram.size() && uniform.histogram[b]) ||
                     (b < learned.histogram.size() && learned.histogram[b]);
    if (any) {
      first = std::min(first, b);
      last = b;
    }
  }
  std::string out = "log10_lo,log10_hi,uniform,learned\n";
  if (first == bins) return out;
  auto share = [](const Statistics& s, size_t b) {
    return b < s.histogram.size() && s.count ? double(s.histogram[b]) / double(s.count) : 0.0;
  };
  for (size_t b = first; b <= last; ++b) {
    out += fixed(double(b) * w, 2) + "," + fixed(double(b + 1) * w, 2) + "," +
           fixed(share(uniform, b), 6) + "," + fixed(share(learned, b), 6) + "\n";
  }
  return out;
}

std::string samples_csv(const Space& space, const SpaceSearch& search) {
  std::string out = "window_lo,window_hi,law_index";
  for (const auto& x : space.vars) out += "," + x.name;
  out += ",params,flops,peak_activation_bytes,in_window\n";
  for (const auto& w : search.windows) {
    const std::string head = general(w.lo) + "," + general(w.hi) + ",";
    for (const auto& s : w.samples) {
      out += head + std::to_string(s.law_index);
      for (int v : s.vars) out += "," + std::to_string(v);
      const double m = metric_value(s.analytics, search.metric);
      out += "," + std::to_string(s.analytics.params) + "," + std::to_string(s.analytics.flops) +
             "," + std::to_string(s.analytics.peak_activation_bytes) + "," +
             (m >= w.lo && m <= w.hi ? "1" : "0") + "\n";
    }
  }
  return out;
}

std::string gnuplot_script(const SpaceReport& r, const std::string& csv, const std::string& stem) {
  const std::string metric = r.search.metric == Metric::params ? "parameters" : "FLOPs";
  int searched = 0;
  for (const auto& w : r.search.windows) searched += w.coverage != Coverage::unreachable;
  std::ostringstream s;
  s << "# " << r.search.space << ": distribution of log10(" << metric
    << "), uniform baseline vs learned laws. Run: gnuplot " << stem << ".gp\n"
    << "set datafile separator ','\n"
    << "set title \"" << r.search.space << " (" << to_string(r.input) << "): log10(" << metric
    << "), uniform baseline vs laws learned for " << searched << " windows\"\n"
    << "set xlabel 'log10(" << metric << ")'\n"
    << "set ylabel 'share of models per " << fixed(r.uniform.bin_width, 1) << " bin'\n"
    << "set key top left\nset grid ytics\n"
    << "set boxwidth " << fixed(r.uniform.bin_width, 2) << " absolute\n"
    << "set style fill transparent solid 0.45 noborder\n"
    << "do for [t in 'pngcairo svg'] {\n"
    << "  set terminal t size 960,540\n"
    << "  set output '" << stem << "' . (t eq 'svg' ? '.svg' : '.png')\n"
    << "  plot '" << csv << "' skip 1 using (($1+$2)/2):3 with boxes lc rgb '#1f77b4' title "
    << "'uniform (" << r.uniform.count << " models)', \\\n"
    << "       '' skip 1 using (($1+$2)/2):4 with boxes lc rgb '#d62728' title 'learned laws ("
    << r.learned.count << " models)'\n"
    << "  unset output\n"
    << "}\n";
  return s.str();
}

nlohmann::json report_json(const SpaceReport& r) {
  using nlohmann::json;
  const auto& s = r.search;
  json j;
  j["space"] = s.space;
  j["metric"] = metric_name(s.metric);
  j["input_shape"] = {r.input.c, r.input.h, r.input.w};
  j["classes"] = r.classes;
  j["seed"] = r.seed;
  j["reachable"] = {s.reach.min, s.reach.max};
  j["seconds"] = s.seconds;
  json windows = json::array();
  for (const auto& w : s.windows) {
    json wj = {{"window", {w.lo, w.hi}}, {"coverage", coverage_name(w.coverage)}};
    if (w.coverage != Coverage::unreachable) {
      wj["laws"] = w.ga.laws.size();
      wj["samples"] = w.samples.size();
      wj["in_window"] = w.in_window;
      wj["best_cost"] = w.ga.laws.empty() ? json(nullptr) : json(w.ga.laws.front().cost);
      wj["evaluated"] = w.ga.evaluated;
      wj["seconds"] = w.seconds;
    }
    windows.push_back(wj);
  }
  j["windows"] = windows;
  json decades = json::array();
  for (const auto& d : decade_shares(s)) {
    decades.push_back({{"decade", {d.lo, d.hi}}, {"share", d.share}, {"reachable", d.reachable}});
  }
  j["decades"] = decades;
  auto stats = [](const Statistics& st) {
    json per = json::array();
    for (size_t d = 0; d < st.per_decade.size(); ++d) {
      if (st.per_decade[d]) {
        per.push_back({{"decade", {std::pow(10.0, double(d)), std::pow(10.0, double(d + 1))}},
                       {"share", double(st.per_decade[d]) / double(st.count)}});
      }
    }
    return json{{"count", st.count},   {"mean_log10", st.mean}, {"stddev_log10", st.stddev},
                {"min_log10", st.min}, {"max_log10", st.max},   {"per_decade", per}};
  };
  j["uniform"] = stats(r.uniform);
  j["learned"] = stats(r.learned);
  j["validity"] = {{"checked", r.valid.checked}, {"invalid", r.valid.invalid}};
  if (!r.valid.first_error.empty()) j["validity"]["first_error"] = r.valid.first_error;
  const Verdict v = judge(r);
  j["bars"] = {{"windows", v.windows_ok}, {"decades", v.decades_ok}, {"valid", v.valid_ok}};
  return j;
}

std::string report_markdown(const SpaceReport& r) {
  const auto& s = r.search;
  const char* metric = metric_name(s.metric);
  std::ostringstream o;
  const Verdict v = judge(r);
  o << "## " << s.space << " (" << metric << ", input " << to_string(r.input) << ", " << r.classes
    << " classes, seed " << r.seed << ")\n\n"
    << "Reachable range: " << general(s.reach.min) << " to " << general(s.reach.max) << " "
    << metric << " (10^" << fixed(std::log10(s.reach.min), 2) << " to 10^"
    << fixed(std::log10(s.reach.max), 2) << "). Search time " << fixed(s.seconds, 2) << " s.\n\n"
    << "| window | coverage | laws | samples | in window | best cost | seconds |\n"
    << "|---|---|---:|---:|---:|---:|---:|\n";
  for (const auto& w : s.windows) {
    o << "| " << short_number(w.lo) << " – " << short_number(w.hi) << " | "
      << coverage_name(w.coverage);
    if (w.coverage == Coverage::unreachable) {
      o << " (skipped) | | | | | |\n";
      continue;
    }
    o << " | " << w.ga.laws.size() << " | " << w.samples.size() << " | "
      << fixed(100 * w.in_window, 1) << " %" << (w.coverage == Coverage::inside ? "" : " (no bar)")
      << " | " << (w.ga.laws.empty() ? "" : fixed(w.ga.laws.front().cost, 3)) << " | "
      << fixed(w.seconds, 3) << " |\n";
  }
  o << "\n| decade | share of learned samples | uniform baseline | reachable |\n"
    << "|---|---:|---:|---|\n";
  for (const auto& d : decade_shares(s)) {
    const int e = int(std::round(std::log10(d.lo)));
    const double u = e >= 0 && e < int(r.uniform.per_decade.size()) && r.uniform.count
                         ? double(r.uniform.per_decade[e]) / double(r.uniform.count)
                         : 0.0;
    o << "| " << short_number(d.lo) << " – " << short_number(d.hi) << " | "
      << fixed(100 * d.share, 1) << " % | " << fixed(100 * u, 1) << " % | "
      << (d.reachable ? "yes" : "partly or no") << " |\n";
  }
  o << "\nUniform baseline: " << r.uniform.count << " models, log10(" << metric << ") mean "
    << fixed(r.uniform.mean, 2) << ", std " << fixed(r.uniform.stddev, 2)
    << ". Learned laws: " << r.learned.count << " models, mean " << fixed(r.learned.mean, 2)
    << ", std " << fixed(r.learned.stddev, 2) << ".\n\n"
    << "Validity: " << r.valid.checked << " uniform models built and shape-checked, "
    << r.valid.invalid << " invalid"
    << (r.valid.first_error.empty() ? "" : " (first: " + r.valid.first_error + ")") << ".\n\n"
    << "Quality bars: windows inside the range ≥ 50 % in window: "
    << (v.windows_ok ? "met" : "NOT MET")
    << "; reachable decades ≥ 10 %: " << (v.decades_ok ? "met" : "NOT MET")
    << "; all models valid: " << (v.valid_ok ? "met" : "NOT MET") << ".\n\n";
  return o.str();
}

WrittenFiles write_space_files(const SpaceReport& r, const std::string& dir,
                               const std::string& gnuplot) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create the folder '", dir, "': ", ec.message());
  const Space& space = find_space(r.search.space);
  const std::string metric = metric_name(r.search.metric);
  WrittenFiles out;
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = (fs::path(dir) / name).string();
    write_file_atomic(path, text);
    out.paths.push_back(path);
  };
  for (const auto& w : r.search.windows) {
    if (w.coverage == Coverage::unreachable) continue;
    LawSet set;
    set.space = space.name;
    set.metric = r.search.metric;
    set.window_lo = w.lo;
    set.window_hi = w.hi;
    set.input = r.input;
    set.classes = r.classes;
    set.seed = r.seed;
    set.laws = w.ga.laws;
    write("laws-" + metric + "-" + short_number(w.lo) + "-" + short_number(w.hi) + ".json",
          laws_to_json(set));
  }
  write("samples-" + metric + ".csv", samples_csv(space, r.search));
  const std::string stem = "distribution-" + metric;
  write(stem + ".csv", distribution_csv(r.uniform, r.learned));
  write(stem + ".gp", gnuplot_script(r, stem + ".csv", stem));
  if (gnuplot.empty()) {
    out.plot_note = "gnuplot is not installed: no PNG/SVG (the .gp script draws them)";
  } else {
    out.plot_note = run_gnuplot(gnuplot, dir, stem + ".gp");
    if (out.plot_note.empty()) {
      out.paths.push_back((fs::path(dir) / (stem + ".png")).string());
      out.paths.push_back((fs::path(dir) / (stem + ".svg")).string());
    }
  }
  return out;
}

}  // namespace iotnas::search
