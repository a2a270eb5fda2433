#include "calib/calibrate.hpp"

#include <cmath>

namespace iotnas::calib {

namespace {

using fields::at;
using S = CalibrationSettings;
using M = MeasureConfig;

const std::vector<fields::Field<S>> kCalibrationFields = {
    {.key = "profile",
     .ref = at<&S::profile>,
     .help = "device profile to use instead of measuring here"},
    {.key = "models", .ref = at<&S::models>, .help = "models measured here", .min = 0, .max = 50},
    {.key = "repeats",
     .ref = at<&S::repeats>,
     .help = "timed forwards per measurement",
     .min = 1,
     .rule = "must be at least 1"},
    {.key = "rounds",
     .ref = at<&S::rounds>,
     .help = "measurements per model; the fastest is kept",
     .min = 1,
     .rule = "must be at least 1"},
    {.key = "threads",
     .ref = at<&S::threads>,
     .help = "threads while timing",
     .min = 1,
     .max = 1024},
};

const std::vector<fields::Field<M>> kMeasureFields = {
    {.key = "threads",
     .ref = at<&M::threads>,
     .help = "OpenMP threads while timing",
     .min = 1,
     .max = 1024,
     .flag = "--threads"},
    {.key = "repeats",
     .ref = at<&M::repeats>,
     .help = "Timed runs per measurement",
     .min = 1,
     .max = 100000,
     .flag = "--repeats"},
    {.key = "warmup",
     .ref = at<&M::warmup>,
     .help = "Untimed runs first (at least 5 ms of them)",
     .min = 0,
     .max = 100000,
     .flag = "--warmup"},
    {.key = "warmup_ms",
     .ref = at<&M::warmup_ms>,
     .help = "Keep warming up until this many ms have passed",
     .min = 0,
     .max = 60000},
    {.key = "noise_threshold",
     .ref = at<&M::noise_threshold>,
     .help = "Spread (interquartile range / median) above which a measurement is repeated, then "
             "flagged",
     .min = 0,
     .min_open = true,
     .flag = "--noise-threshold"},
    {.key = "max_attempts",
     .ref = at<&M::max_attempts>,
     .help = "Tries per measurement while it is noisy",
     .min = 1,
     .max = 100,
     .flag = "--attempts"},
    {.key = "seed",
     .ref = at<&M::seed>,
     .help = "Seed for model sampling and weights",
     .flag = "--seed"},
};

}  // namespace

std::span<const fields::Field<CalibrationSettings>> calibration_fields() {
  return kCalibrationFields;
}

std::span<const fields::Field<MeasureConfig>> measure_fields() {
  return kMeasureFields;
}

MeasureConfig measure_config(const CalibrationSettings& s, BackendKind backend, uint64_t seed) {
  MeasureConfig mc;
  mc.backend = backend;
  mc.threads = s.threads;
  mc.repeats = s.repeats;
  mc.seed = seed;
  mc.layer_times = false;  // a run's store keeps whole-model latencies only
  mc.speed_probe = false;  // ... and no speed probes
  return mc;
}

Calibration calibrate(std::span<const CalibrationModel> models, const MeasureConfig& config,
                      int rounds, const CalibrationHooks& hooks) {
  Calibration out;
  for (size_t i = 0; i < models.size(); ++i) {
    if (hooks.stop && hooks.stop->load()) break;
    std::optional<double> latency = hooks.known ? hooks.known(i) : std::nullopt;
    if (!latency) {
      if (hooks.measuring) hooks.measuring(i);
      double best = INFINITY;
      Measurement kept;
      for (int r = 0; r < rounds; ++r) {
        const Measurement m = measure_latency(models[i].spec, config);
        if (m.median_ms < best) {
          best = m.median_ms;
          kept = m;
        }
      }
      if (hooks.measured) hooks.measured(i, kept);
      latency = kept.median_ms;
      out.measured++;
    }
    out.features.push_back(model_features(models[i].spec, models[i].space));
    out.latency_ms.push_back(*latency);
  }
  if (int(out.features.size()) >= kMinFitModels) {
    const ModelKind kind = choose_latency_kind(out.features, out.latency_ms, config.seed);
    out.model = fit_latency_model(kind, out.features, out.latency_ms);
  }
  return out;
}

ModelKind choose_latency_kind(std::span<const ModelFeatures> features,
                              std::span<const double> latency_ms, uint64_t seed) {
  ModelKind kind = ModelKind::loglog_global;
  if (features.size() < 20) return kind;
  double best = -1;
  for (ModelKind k : kModelKinds) {
    if (needs_layer_times(k)) continue;  // a run's store keeps whole-model latencies only
    const auto cv = cross_validate(k, features, latency_ms, 5, seed);
    if (cv.scores.within_10pct > best) best = cv.scores.within_10pct, kind = k;
  }
  return kind;
}

}  // namespace iotnas::calib
