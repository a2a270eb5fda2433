#include "calib/calibrate.hpp"

#include <cmath>

#include "kernels/base/error.hpp"

namespace iotnas::calib {

namespace {

using fields::at;
using S = CalibrationSettings;

const std::vector<fields::Field<S>> kCalibrationFields = {
    {.key = "profile",
     .ref = at<&S::profile>,
     .help = "device profile to use instead of measuring here"},
    {.key = "models", .ref = at<&S::models>, .help = "models measured here", .min = 0, .max = 50},
    {.key = "repeats",
     .ref = at<&S::repeats>,
     .help = "timed forwards per measurement",
     .min = 1,
     .max = kMaxRepeats},
    {.key = "rounds",
     .ref = at<&S::rounds>,
     .help = "measurements per model; the fastest is kept",
     .min = 1,
     .max = kMaxRounds},
    {.key = "threads",
     .ref = at<&S::threads>,
     .help = "threads while timing",
     .min = 1,
     .max = kMaxThreads},
};

}  // namespace

std::span<const fields::Field<CalibrationSettings>> calibration_fields() {
  return kCalibrationFields;
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
  if (rounds < 1 || rounds > kMaxRounds)
    fail("calibration rounds ", rounds, " is out of range [1, ", kMaxRounds, "]");
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
