// iotnas laws / search / sample: learn sampling laws for a window of parameters or FLOPs, search
// every window of the 1-2-5 grid with pictures and a report, and draw models from laws
// (docs/search.md).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "engine/util/files.hpp"
#include "engine/util/plot.hpp"
#include "kernels/base/error.hpp"
#include "search/ga.hpp"
#include "search/law.hpp"
#include "search/report.hpp"
#include "search/windows.hpp"

namespace iotnas::apps {

namespace {

using namespace iotnas::search;

// --data as these commands take it: any dataset name `iotnas train` takes, and also the bare
// names "mnist" and "cifar10" (only the input shape matters here, no file is read).
DataShape search_shape(const std::string& data) {
  if (data == "mnist") return {Shape{1, 28, 28}, 10};
  if (data == "cifar10" || data == "cifar-10") return {Shape{3, 32, 32}, 10};
  return data_shape(data);
}

double parse_positive(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || !(v > 0)) {
    fail(what, ": '", text, "' is not a positive number");
  }
  return v;
}

// "LO:HI" -> {LO, HI}; numbers as 1e4, 20000 or 2.5e5.
std::pair<double, double> parse_window(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) fail("--window '", text, "' must be LO:HI, e.g. 1e4:2e4");
  const double lo = parse_positive(text.substr(0, colon), "--window LO");
  const double hi = parse_positive(text.substr(colon + 1), "--window HI");
  if (!(lo < hi)) fail("--window ", text, ": LO must be smaller than HI");
  return {lo, hi};
}

struct GaOpts {
  GaConfig ga;
  void add(CLI::App* cmd) {
    cmd->add_option("--n-init", ga.n_init, "GA: initial population")->capture_default_str();
    cmd->add_option("--n-steps", ga.n_steps, "GA: steps (one child each)")->capture_default_str();
    cmd->add_option("--n-eval", ga.n_eval, "GA: models drawn to score one law")
        ->capture_default_str();
    cmd->add_option("--tournament", ga.tournament, "GA: tournament size")->capture_default_str();
    cmd->add_option("--clusters", ga.clusters, "Spectral clusters = laws returned")
        ->capture_default_str();
  }
};

void set_threads(int threads) {
  if (threads < 0 || threads > 1024) fail("--threads ", threads, " is out of range [0, 1024]");
  if (threads > 0) omp_set_num_threads(threads);
}

// ---- iotnas laws ---------------------------------------------------------------------------

struct LawsOpts {
  std::string space, metric = "params", window, data = "fashion-mnist", out;
  uint64_t seed = 1;
  int threads = 0;
  GaOpts ga;
};

int run_laws(const LawsOpts& o) {
  set_threads(o.threads);
  const Space& space = find_space(o.space);
  const Metric metric = parse_metric(o.metric);
  const auto [lo, hi] = parse_window(o.window);
  const DataShape shape = search_shape(o.data);
  check_input(shape.input, shape.classes);
  check_window(space, reachable_range(space, metric, shape.input, shape.classes), metric, lo, hi);
  GaConfig ga = o.ga.ga;
  ga.seed = o.seed;
  const GaResult r = learn_laws(space, {metric, lo, hi, shape.input, shape.classes}, ga);

  // The laws' merit, measured on fresh models: 100 per law.
  SampleOptions so;
  so.input = shape.input;
  so.classes = shape.classes;
  so.seed = derive_seed(o.seed, 0x6c617773);
  const auto check = sample_laws(space, r.laws, 100 * int64_t(r.laws.size()), so);
  int64_t inside = 0;
  for (const auto& s : check) {
    const double v = metric_value(s.analytics, metric);
    inside += v >= lo && v <= hi;
  }

  LawSet set;
  set.space = space.name;
  set.metric = metric;
  set.window_lo = lo;
  set.window_hi = hi;
  set.input = shape.input;
  set.classes = shape.classes;
  set.seed = o.seed;
  set.laws = r.laws;
  char summary[320];
  std::snprintf(summary, sizeof summary,
                "%zu laws for %s, %s in [%g, %g] on %s: %.1f%% of %zu fresh models inside "
                "(%lld models evaluated by the GA)",
                r.laws.size(), space.name.c_str(), metric_name(metric), lo, hi,
                to_string(shape.input).c_str(), 100.0 * double(inside) / double(check.size()),
                check.size(), (long long)r.evaluated);
  if (o.out.empty()) {
    std::cout << laws_to_json(set);
    std::fprintf(stderr, "%s\n", summary);
  } else {
    save_laws_file(o.out, set);
    std::printf("%s\nwrote %s\n", summary, o.out.c_str());
  }
  return 0;
}

// ---- iotnas search -------------------------------------------------------------------------

struct SearchOpts {
  std::string space, metric = "params", data = "fashion-mnist", out;
  uint64_t seed = 1;
  int n_val = 100, threads = 0;
  int64_t uniform = 1000000, check = 100000;
  bool plots = true;
  GaOpts ga;
};

int run_search(const SearchOpts& o) {
  set_threads(o.threads);
  const Metric metric = parse_metric(o.metric);
  std::vector<const Space*> todo;
  if (o.space == "all") {
    for (const auto& s : spaces()) todo.push_back(&s);
  } else {
    todo.push_back(&find_space(o.space));
  }
  const DataShape shape = search_shape(o.data);
  check_input(shape.input, shape.classes);
  if (o.uniform < 1 || o.uniform > 1000000000) fail("--uniform ", o.uniform, " is out of range");
  if (o.check < 0 || o.check > 100000000) fail("--check ", o.check, " is out of range");
  if (o.n_val < 1 || o.n_val > kMaxNVal)
    fail("--n-val ", o.n_val, " is out of range [1, ", kMaxNVal, "]");
  const std::string gnuplot = o.plots ? find_gnuplot() : "";
  std::string markdown = "# iotnas search: " + std::string(metric_name(metric)) + "\n\n";
  nlohmann::json report = nlohmann::json::array();
  bool all_ok = true;
  for (const Space* space : todo) {
    SearchConfig c;
    c.metric = metric;
    c.ga = o.ga.ga;
    c.n_val = o.n_val;
    c.input = shape.input;
    c.classes = shape.classes;
    c.seed = o.seed;
    SpaceReport r;
    r.seed = o.seed;
    r.input = shape.input;
    r.classes = shape.classes;
    r.search = search_space(*space, c);
    r.learned = search_statistics(r.search);
    r.uniform = uniform_statistics(*space, metric, o.uniform, shape.input, shape.classes,
                                   derive_seed(o.seed, 0x756e69));
    r.valid = check_uniform_models(*space, o.check, shape.input, shape.classes,
                                   derive_seed(o.seed, 0x76616c));
    const WrittenFiles files =
        write_space_files(r, (std::filesystem::path(o.out) / space->name).string(), gnuplot);
    markdown += report_markdown(r);
    report.push_back(report_json(r));
    int searched = 0, skipped = 0;
    double worst = 1;
    for (const auto& w : r.search.windows) {
      if (w.coverage == Coverage::unreachable) {
        ++skipped;
        continue;
      }
      ++searched;
      if (w.coverage == Coverage::inside) worst = std::min(worst, w.in_window);
    }
    const Verdict v = judge(r);
    all_ok = all_ok && v.ok();
    std::printf(
        "%-10s reach %.3g..%.3g: %d windows searched, %d unreachable (skipped), worst window "
        "%.1f%% inside, %lld/%lld models valid, bars %s, %.2f s, %zu files%s%s\n",
        space->name.c_str(), r.search.reach.min, r.search.reach.max, searched, skipped, 100 * worst,
        (long long)(r.valid.checked - r.valid.invalid), (long long)r.valid.checked,
        v.ok() ? "met" : "NOT MET", r.search.seconds, files.paths.size(),
        files.plot_note.empty() ? "" : "; ", files.plot_note.c_str());
    std::fflush(stdout);
  }
  const std::string stem =
      (std::filesystem::path(o.out) / ("report-" + std::string(metric_name(metric)))).string();
  write_file_atomic(stem + ".md", markdown);
  write_file_atomic(stem + ".json", report.dump(2) + "\n");
  std::printf("wrote %s.md and %s.json%s\n", stem.c_str(), stem.c_str(),
              all_ok ? "" : " (some quality bars are not met: see the report)");
  return 0;
}

// ---- iotnas sample -------------------------------------------------------------------------

struct SampleOpts {
  std::string space, laws, data = "fashion-mnist";
  bool uniform = false, json = false, data_given = false;
  int64_t n = 0;
  uint64_t seed = 1;
  int threads = 0;
};

int run_sample(const SampleOpts& o) {
  set_threads(o.threads);
  const Space& space = find_space(o.space);
  if (o.n < 1 || o.n > 1000000000) fail("-n ", o.n, " is out of range [1, 1e9]");
  DataShape shape = search_shape(o.data);
  std::vector<Law> laws;
  if (o.uniform) {
    laws.push_back(uniform_law(space));
  } else {
    LawSet set = load_laws_file(o.laws);
    check_laws_space(set, space, o.laws);
    if (set.input && !o.data_given) {
      shape = {*set.input, set.classes};  // the shape the laws were learned for
    } else if (set.input && (!(*set.input == shape.input) || set.classes != shape.classes)) {
      std::fprintf(stderr,
                   "iotnas: warning: the laws in '%s' were learned for input %s (%d classes); "
                   "drawing for %s (%d classes) as --data asks\n",
                   o.laws.c_str(), to_string(*set.input).c_str(), set.classes,
                   to_string(shape.input).c_str(), shape.classes);
    }
    laws = std::move(set.laws);
  }
  check_input(shape.input, shape.classes);
  SampleOptions so;
  so.input = shape.input;
  so.classes = shape.classes;
  so.seed = o.seed;
  if (!o.json) {
    std::printf("%10s %4s %12s %14s %12s  %s\n", "model", "law", "params", "FLOPs", "peak_bytes",
                "vars");
  }
  constexpr int64_t kPiece = 65536;  // models drawn and printed at a time: bounded memory
  std::string line;
  for (so.first = 0; so.first < o.n; so.first += kPiece) {
    const auto samples = sample_laws(space, laws, std::min(kPiece, o.n - so.first), so);
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample& s = samples[i];
      if (o.json) {
        nlohmann::json vars = nlohmann::json::object();
        for (size_t v = 0; v < space.vars.size(); ++v) vars[space.vars[v].name] = s.vars[v];
        const nlohmann::json j = {{"index", so.first + int64_t(i)},
                                  {"law_index", s.law_index},
                                  {"vars", vars},
                                  {"params", s.analytics.params},
                                  {"flops", s.analytics.flops},
                                  {"activation_bytes", s.analytics.peak_activation_bytes}};
        line = j.dump();
        line += '\n';
      } else {
        char buf[160];
        std::snprintf(buf, sizeof buf, "%10lld %4d %12lld %14lld %12lld  ",
                      (long long)(so.first + int64_t(i)), s.law_index,
                      (long long)s.analytics.params, (long long)s.analytics.flops,
                      (long long)s.analytics.peak_activation_bytes);
        line = buf + vector_string(s.vars) + "\n";
      }
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  }
  if (std::fflush(stdout) != 0) fail("cannot write the models to standard output");
  return 0;
}

}  // namespace

void add_laws_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand(
      "laws", "Learn sampling laws that land in a window of parameters or FLOPs (GA, paper §4)");
  auto o = std::make_shared<LawsOpts>();
  cmd->add_option("--space", o->space, "Search space: " + space_names())->required();
  cmd->add_option("--metric", o->metric, "params or flops")->capture_default_str();
  cmd->add_option("--window", o->window, "Target window LO:HI, e.g. 1e4:2e4")->required();
  cmd->add_option("--data", o->data,
                  "Dataset whose input shape the models take (fashion-mnist, mnist, cifar10, ...)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "GA seed: the same seed gives the same laws")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Write the laws file here (default: JSON on stdout)");
  cmd->add_option("--threads", o->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  o->ga.add(cmd);
  cmd->callback([&action, o] { action = [o] { return run_laws(*o); }; });
}

void add_search_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand(
      "search",
      "Learn laws for every window of the 1-2-5 grid; write laws, samples, pictures "
      "and a report");
  auto o = std::make_shared<SearchOpts>();
  cmd->add_option("--space", o->space, "Search space (" + space_names() + ") or all")->required();
  cmd->add_option("--metric", o->metric, "params (grid 1e3..1e7) or flops (1e5..1e9)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Output folder (created if needed)")->required();
  cmd->add_option("--data", o->data, "Dataset whose input shape the models take")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the whole search")->capture_default_str();
  cmd->add_option("--n-val", o->n_val, "Models drawn per learned law")->capture_default_str();
  cmd->add_option("--uniform", o->uniform, "Uniform models for the baseline distribution")
      ->capture_default_str();
  cmd->add_option("--check", o->check, "Uniform models built and shape-checked per space")
      ->capture_default_str();
  cmd->add_flag("!--no-plots", o->plots, "Write the gnuplot scripts but do not run gnuplot");
  cmd->add_option("--threads", o->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  o->ga.add(cmd);
  cmd->callback([&action, o] { action = [o] { return run_search(*o); }; });
}

void add_sample_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand(
      "sample", "Draw exactly N models from a laws file or uniformly from a space (no filtering)");
  auto o = std::make_shared<SampleOpts>();
  cmd->add_option("--space", o->space, "Search space: " + space_names())->required();
  auto* laws =
      cmd->add_option("--laws", o->laws, "Laws file (written by `iotnas laws` or by hand)");
  auto* uniform = cmd->add_flag("--uniform", o->uniform, "Draw from the whole space instead");
  laws->excludes(uniform);
  uniform->excludes(laws);
  cmd->add_option("-n", o->n, "Number of models to draw")->required();
  auto* data = cmd->add_option("--data", o->data,
                               "Dataset whose input shape the models take (default: the laws "
                               "file's shape, else fashion-mnist)");
  cmd->add_option("--seed", o->seed, "Seed: the same seed draws the same models")
      ->capture_default_str();
  cmd->add_flag("--json", o->json,
                "One JSON object per model and line: index, law_index, vars, params, flops, "
                "activation_bytes");
  cmd->add_option("--threads", o->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  cmd->callback([&action, o, laws, uniform, data] {
    if (laws->count() == 0 && uniform->count() == 0) {
      throw CLI::ValidationError("--laws/--uniform", "sample needs one of them");
    }
    o->data_given = data->count() > 0;
    action = [o] { return run_sample(*o); };
  });
}

}  // namespace iotnas::apps
