// Fitting a profile: every latency model cross-validated on the profile's measured models, the
// best one refitted on all of them and stored in the profile; prediction from a fitted profile.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "calib/latency_model.hpp"
#include "calib/profile.hpp"

namespace iotnas::calib {

inline constexpr int kMinProfileModels = 10;  // measured models a profile needs to be fitted

struct FitOptions {
  int folds = 5;
  uint64_t seed = 1;  // fold assignment
  // Fit on each measurement's fastest run instead of its median (and judge the noise ceiling on
  // the same): on a machine shared with other work the minimum is the more repeatable statistic.
  bool use_min = false;
  // Scale every measurement to the profile's reference speed (its speed probe, Profile::probe_ref)
  // before anything else; measurements without a probe stay as they are.
  bool speed_normalize = true;
  // Called before each kind is cross-validated (its index among the kinds fitted, their count).
  std::function<void(ModelKind, int, int)> on_kind;
};

struct FitReport {
  std::vector<CvResult> models;         // one per ModelKind fitted, in kModelKinds order
  int best = 0;                         // index into models: most held-out within +-10% (then R2)
  LatencyModel best_model;              // the best kind refitted on every model
  double noise_within_10pct = NAN;      // two interleaved measurements agreeing within +-10%
  double noise_within_10pct_raw = NAN;  // the same without the speed probe's scaling
  double probe_ref_ms = 0;              // the reference speed used (0: none)
  int noise_models = 0;                 // models with two measurements
  int noisy_measurements = 0;           // measurements flagged noisy
  std::vector<size_t> used;             // profile model indices fitted on (measured ones)
  std::vector<double> measured_ms;      // their latencies (median or min, FitOptions::use_min)
  std::vector<ModelFeatures> features;
  int layer_timed = 0;               // models with per-layer times (layer_knn learns from them)
  std::vector<std::string> skipped;  // kinds not fitted (layer_knn without layer times)
};

// Throws iotnas::Error when the profile has fewer than kMinProfileModels measured models or a
// model spec fails shape inference.
// The profile's noise ceiling: the share of its models with two measurements whose first two
// agree within +-10% (each scaled to probe_ref when > 0, see ProfileModel::value); NaN when no
// model has two. `models` (when given) receives how many had two.
double noise_within_10pct(const Profile& p, bool use_min, double probe_ref, int* models = nullptr);

FitReport fit_profile(const Profile& p, const FitOptions& o = {});
// The report as `iotnas calib fit --json` prints it: best_model, within_10pct, r2, mdape,
// models {kind: {r2, mdape, within_10pct}}, noise_within_10pct, plus counts and the fitted model.
nlohmann::json fit_report_json(const FitReport& r, const FitOptions& o);

// The fitted model stored in a profile (`fit.model`). Throws iotnas::Error naming the file when
// the profile has not been fitted.
LatencyModel fitted_model(const Profile& p, const std::string& origin);

// CSV files and gnuplot scripts into `dir` (created): latency_vs_flops.csv/.gp (measured latency
// against FLOPs per space, log-log, the paper's Fig. 2) and predicted_vs_measured.csv/.gp
// (held-out predictions of every model). Renders PNG and SVG when `gnuplot` is on the PATH and
// `render` is set. Returns the paths written.
std::vector<std::string> write_plots(const std::string& dir, const Profile& p, const FitReport& r,
                                     bool render = true);

}  // namespace iotnas::calib
