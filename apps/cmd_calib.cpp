// iotnas calib measure | fit | predict: device profiles of batch-1 latency, latency models fitted
// on them, and predictions for models never run on the device (docs/calibration.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include "apps/cli_fields.hpp"
#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/progress.hpp"
#include "calib/calibrate.hpp"
#include "calib/fit.hpp"
#include "calib/profile.hpp"
#include "engine/reference_models.hpp"
#include "kernels/base/error.hpp"
#include "search/select.hpp"

namespace iotnas::apps {

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) {
  g_stop = true;
}

struct MeasureOpts {
  std::string spaces = "all", out, backend = "auto", data = "fashion-mnist";
  std::vector<std::string> models;  // measure these instead of sampling
  int n = 200, rounds = 2;
  double min_params = 1e3, max_params = 1e6;
  calib::MeasureConfig measure;  // backend: from `backend`
  bool json = false;
};

int run_measure(const MeasureOpts& o) {
  if (o.n < 1 || o.n > 100000) fail("--n ", o.n, " is out of range [1, 100000]");
  if (!(o.min_params >= 1 && o.min_params < o.max_params))
    fail("--min-params ", o.min_params, " must be >= 1 and below --max-params ", o.max_params);
  std::vector<const search::Space*> spaces;
  if (o.spaces == "all") {
    for (const auto& s : search::spaces()) spaces.push_back(&s);
  } else {
    std::stringstream ss(o.spaces);
    std::string name;
    while (std::getline(ss, name, ','))
      if (!name.empty()) spaces.push_back(&search::find_space(name));
    if (spaces.empty()) fail("--spaces is empty; name spaces (", search::space_names(), ") or all");
  }
  calib::MeasureConfig cfg = o.measure;
  cfg.backend = parse_backend(o.backend);
  calib::check_measure_config(cfg);
  const DataShape shape = data_shape(o.data);
  search::check_input(shape.input, shape.classes);
  const auto settings = calib::settings_for(cfg, shape.input, shape.classes);

  calib::Profile profile;
  std::error_code ec;
  if (std::filesystem::exists(o.out, ec)) {
    profile = calib::load_profile(o.out);
    calib::check_same_settings(profile, settings, o.out);
  } else {
    profile.settings = settings;
  }
  Progress progress;
  std::vector<calib::Candidate> plan;
  if (o.models.empty()) {
    for (auto& p : search::sample_across_windows(spaces, o.n, o.min_params, o.max_params,
                                                 shape.input, shape.classes, cfg.seed,
                                                 [&](const std::string& s) { progress.line(s); }))
      plan.push_back({p.space, std::move(p.vars), std::move(p.spec)});
  } else {
    for (const auto& name : o.models) {
      ModelSpec spec = resolve_model(name, shape.input, shape.classes);
      if (!(spec.input == shape.input))
        fail("model '", name, "' takes input ", to_string(spec.input), ", not ",
             to_string(shape.input), " (--data ", o.data, ")");
      if (spec.name.empty()) spec.name = name;
      plan.push_back({calib::space_of_name(spec.name), {}, std::move(spec)});
    }
  }
  int have = 0;
  for (const auto& c : plan) {
    const int i = profile.find(c.spec.name);
    if (i >= 0) have += std::min(o.rounds, int(profile.models[size_t(i)].measurements.size()));
  }
  progress.line("measuring " + std::to_string(plan.size()) + " models (" + std::to_string(have) +
                " of their " + std::to_string(int(plan.size()) * o.rounds) +
                " measurements already in " + o.out + ") on " +
                calib::device_summary(calib::describe_device(cfg.backend, cfg.threads)) + ", " +
                std::to_string(o.rounds) + " interleaved rounds of " + std::to_string(cfg.repeats) +
                " timed runs");
  calib::MeasureRun run;
  run.rounds = o.rounds;
  run.stop = &g_stop;
  auto on_progress = [&](const calib::MeasureProgress& p) {
    char buf[300];
    std::snprintf(buf, sizeof buf, "%d/%d  %-40s %9.4f ms (spread %.0f%%%s)  ETA %s", p.done,
                  p.total, p.model->id.substr(0, 40).c_str(), p.measurement->median_ms,
                  p.measurement->spread * 100, p.measurement->noisy ? ", noisy" : "",
                  format_duration(p.eta_seconds).c_str());
    progress.update(buf);
  };
  g_stop = false;
  auto old_int = std::signal(SIGINT, on_stop_signal);
  auto old_term = std::signal(SIGTERM, on_stop_signal);
  const auto t0 = std::chrono::steady_clock::now();
  bool finished = false;
  try {
    finished = calib::measure_profile(profile, plan, cfg, run, on_progress,
                                      [&] { calib::save_profile(o.out, profile); });
  } catch (...) {
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
    throw;
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int measured = 0, noisy = 0;
  for (const auto& m : profile.models) {
    measured += !m.measurements.empty();
    for (const auto& x : m.measurements) noisy += x.noisy;
  }
  char buf[300];
  std::snprintf(buf, sizeof buf, "%s: %d models measured (%d measurements flagged noisy), %.1fs",
                o.out.c_str(), measured, noisy, seconds);
  progress.line(buf);
  // How steady the machine was: the ceiling of any latency model fitted on this profile.
  int pairs = 0;
  const double ceiling = calib::noise_within_10pct(profile, false, profile.probe_ref(), &pairs);
  if (pairs > 0) {
    std::snprintf(buf, sizeof buf,
                  "noise ceiling: the two measurements of %.1f%% of %d models agree within "
                  "+-10%%",
                  100 * ceiling, pairs);
    progress.line(buf);
    if (ceiling < 0.9) {
      size_t rounds = 0;
      for (const auto& m : profile.models) rounds = std::max(rounds, m.measurements.size());
      std::snprintf(buf, sizeof buf,
                    "the machine was busy while measuring (noise ceiling below 90%%): latency "
                    "models fitted on this profile are held back by it; rerun with --rounds %zu "
                    "when it is quiet (adds a pass, keeps what was measured; a model's latency "
                    "is its fastest pass)",
                    rounds + 1);
      progress.line(buf);
    }
  }
  if (o.json) {
    nlohmann::json j = {
        {"profile", o.out},
        {"models", measured},
        {"noisy_measurements", noisy},
        {"noise_within_10pct", std::isnan(ceiling) ? nlohmann::json() : nlohmann::json(ceiling)},
        {"seconds", seconds},
        {"finished", finished},
        {"device", profile.devices.empty() ? nlohmann::json() : profile.devices.back()}};
    std::cout << j.dump() << "\n";
  }
  if (!finished) {
    progress.line("stopped by a signal; rerun the same command to resume");
    return 130;
  }
  return 0;
}

struct FitOpts {
  std::string profile, plots;
  int folds = 5;
  uint64_t seed = 1;
  std::string statistic = "median";
  bool raw_times = false;
  bool json = false;
};

int run_fit(const FitOpts& o) {
  if (o.folds < 2 || o.folds > 100) fail("--folds ", o.folds, " is out of range [2, 100]");
  calib::Profile p = calib::load_profile(o.profile);
  calib::FitOptions fo;
  fo.folds = o.folds;
  fo.seed = o.seed;
  fo.use_min = o.statistic == "min";
  fo.speed_normalize = !o.raw_times;
  auto progress = std::make_unique<Progress>();  // ended before the results are printed
  const auto t0 = std::chrono::steady_clock::now();
  fo.on_kind = [&](calib::ModelKind k, int i, int n) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[160];
    std::snprintf(buf, sizeof buf, "cross-validating %s (%d of %d, %d folds), %.1fs",
                  calib::model_kind_name(k), i + 1, n, o.folds, s);
    progress->update(buf);
  };
  calib::FitReport r;
  try {
    r = calib::fit_profile(p, fo);
  } catch (const Error& e) {
    progress.reset();
    fail("profile '", o.profile, "': ", e.what());
  }
  progress.reset();
  const nlohmann::json j = calib::fit_report_json(r, fo);
  p.fit = j;
  p.fit["fitted"] = calib::utc_now_iso();
  calib::save_profile(o.profile, p);
  std::vector<std::string> plots;
  if (!o.plots.empty()) plots = calib::write_plots(o.plots, p, r);
  if (o.json) {
    nlohmann::json out = j;
    out.erase("model");
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf("%s: %zu measured models (%s latencies) on %s\n", o.profile.c_str(), r.used.size(),
              o.statistic.c_str(),
              p.devices.empty() ? "?" : calib::device_summary(p.devices.back()).c_str());
  if (r.probe_ref_ms > 0)
    std::printf(
        "times scaled to the reference speed: speed probe %.4f ms (--raw-times: unscaled)\n",
        r.probe_ref_ms);
  if (r.noise_models > 0)
    std::printf(
        "noise ceiling: %.1f%% of %d models' two interleaved measurements agree within "
        "+-10%% (%.1f%% unscaled)\n",
        r.noise_within_10pct * 100, r.noise_models, r.noise_within_10pct_raw * 100);
  std::printf("%d-fold cross-validation:\n  %-14s %8s %8s %12s\n", o.folds, "model", "R2(log)",
              "MdAPE", "within+-10%");
  for (size_t i = 0; i < r.models.size(); ++i) {
    const auto& s = r.models[i].scores;
    std::printf("  %-14s %8.4f %7.2f%% %11.1f%%%s\n", calib::model_kind_name(r.models[i].kind),
                s.r2, s.mdape * 100, s.within_10pct * 100, int(i) == r.best ? "  <- best" : "");
  }
  std::printf("saved %s (fitted on all %zu models) into %s\n",
              calib::model_kind_name(r.best_model.kind), r.used.size(), o.profile.c_str());
  for (const auto& f : plots) std::printf("wrote %s\n", f.c_str());
  return 0;
}

struct PredictOpts {
  std::string profile, model;
  bool json = false;
};

int run_predict(const PredictOpts& o) {
  const calib::Profile p = calib::load_profile(o.profile);
  const calib::LatencyModel m = calib::fitted_model(p, o.profile);
  const ModelSpec spec = resolve_model(o.model, p.settings.input, p.settings.classes);
  if (!(spec.input == p.settings.input))
    fail("model '", o.model, "' takes input ", to_string(spec.input), " but profile '", o.profile,
         "' was measured with ", to_string(p.settings.input));
  calib::ModelFeatures f;
  try {
    f = calib::model_features(spec);
  } catch (const Error& e) {
    fail("model '", o.model, "': ", e.what());
  }
  const calib::Prediction pr = calib::predict(m, f);
  if (std::isnan(pr.latency_ms))
    fail("profile '", o.profile, "': its ", calib::model_kind_name(m.kind),
         " latency model gives no finite latency for model '", o.model,
         "' (a damaged or extreme fit); fit it again with `iotnas calib fit --profile ", o.profile,
         "`");
  for (const auto& w : pr.warnings)
    std::fprintf(stderr, "iotnas: warning: model '%s': %s\n", o.model.c_str(), w.c_str());
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"latency_ms", pr.latency_ms},
                        {"latency_model", calib::model_kind_name(m.kind)},
                        {"params", f.params},
                        {"flops", f.flops},
                        {"in_range", pr.warnings.empty()},
                        {"warnings", pr.warnings}};
    if (!p.devices.empty()) j["device"] = calib::device_summary(p.devices.back());
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%.4f ms  %s (%.0f params, %.4g FLOPs; %s on %s)\n", pr.latency_ms, o.model.c_str(),
                f.params, f.flops, calib::model_kind_name(m.kind),
                p.devices.empty() ? "?" : calib::device_summary(p.devices.back()).c_str());
  }
  return 0;
}

}  // namespace

void add_calib_command(CLI::App& app, Action& action) {
  auto* calib = app.add_subcommand(
      "calib", "Measure batch-1 latency on this device, fit latency models, predict latency");
  calib->require_subcommand(1);

  auto* m = calib->add_subcommand("measure",
                                  "Measure models sampled across spaces and sizes "
                                  "into a device profile (resumable)");
  auto mo = std::make_shared<MeasureOpts>();
  m->add_option("--out", mo->out, "Profile to write (JSON); an existing one is resumed")
      ->required();
  m->add_option("--model", mo->models,
                "Measure this model (spec file or ref:NAME; repeatable) instead of sampling");
  m->add_option("--spaces", mo->spaces, "all, or a comma-separated list of spaces")
      ->capture_default_str();
  m->add_option("--n", mo->n, "Models to measure")->capture_default_str();
  m->add_option("--min-params", mo->min_params, "Smallest parameter count sampled")
      ->capture_default_str();
  m->add_option("--max-params", mo->max_params, "Largest parameter count sampled")
      ->capture_default_str();
  add_field_options(*m, calib::measure_fields(), mo->measure);
  m->add_option("--backend", mo->backend, "auto, dnnl or portable")->capture_default_str();
  m->add_option("--data", mo->data, "Dataset whose input shape the models take")
      ->capture_default_str();
  m->add_option("--rounds", mo->rounds, "Measurements per model, in interleaved passes")
      ->capture_default_str();
  m->add_flag("--json", mo->json, "Print one JSON summary object on stdout");
  m->callback([&action, mo] { action = [mo] { return run_measure(*mo); }; });

  auto* f = calib->add_subcommand("fit",
                                  "Fit and cross-validate latency models on a profile; "
                                  "save the best into it");
  auto fo = std::make_shared<FitOpts>();
  f->add_option("--profile", fo->profile, "Profile written by `iotnas calib measure`")->required();
  f->add_option("--folds", fo->folds, "Cross-validation folds")->capture_default_str();
  f->add_option("--seed", fo->seed, "Seed for the fold assignment")->capture_default_str();
  f->add_flag("--raw-times", fo->raw_times,
              "Fit on the times as measured, without scaling each to the profile's reference speed "
              "(its speed probe)");
  f->add_option("--statistic", fo->statistic,
                "Latency of a measurement: median of its timed runs, or min (steadier on a "
                "shared machine)")
      ->check(CLI::IsMember({"median", "min"}))
      ->capture_default_str();
  f->add_option("--plots", fo->plots,
                "Write CSV + gnuplot scripts (and PNG/SVG when gnuplot exists) into this folder");
  f->add_flag("--json", fo->json, "Print one JSON object on stdout");
  f->callback([&action, fo] { action = [fo] { return run_fit(*fo); }; });

  auto* p = calib->add_subcommand("predict", "Predict a model's latency from a fitted profile");
  auto po = std::make_shared<PredictOpts>();
  p->add_option("--profile", po->profile, "Profile fitted by `iotnas calib fit`")->required();
  p->add_option("--model", po->model, "Model spec file (JSON) or ref:NAME")->required();
  p->add_flag("--json", po->json, "Print one JSON object on stdout");
  p->callback([&action, po] { action = [po] { return run_predict(*po); }; });
}

}  // namespace iotnas::apps
