// Calibration inside a run (docs/run.md "calibration"): measure a few models on this machine,
// choose the latency-model kind by cross-validation, fit it, and predict the rest. The caller
// keeps the measurements (a run's experiment store) and says through hooks which models it has
// measured before, so a rerun measures only the missing ones.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "calib/latency_model.hpp"
#include "calib/measure.hpp"
#include "engine/spec.hpp"
#include "engine/util/fields.hpp"

namespace iotnas::calib {

// A run's calibration settings.
struct CalibrationSettings {
  std::string profile;  // a device profile (JSON) to use instead of measuring here ("" = measure)
  int models = 50;      // models measured on this machine (<= 50)
  int repeats = 10;     // timed forwards per measurement
  int rounds = 2;       // measurements per model; the fastest is kept
  int threads = 1;      // threads while timing
};

// Ranges of a run config (the profile is checked where it is loaded).
std::span<const fields::Field<CalibrationSettings>> calibration_fields();

// The measuring config of a run's calibration: whole-model latencies only (no layer times, no
// speed probe), weights and inputs from `seed`.
MeasureConfig measure_config(const CalibrationSettings& s, BackendKind backend, uint64_t seed);

struct CalibrationModel {
  ModelSpec spec;
  std::string space;  // search space ("" for none): loglog_space fits per space
};

struct CalibrationHooks {
  // Model i's latency in ms when it was measured before (it is not measured again), else
  // nullopt. Called once per model, in order, right before the model is measured.
  std::function<std::optional<double>(size_t i)> known;
  std::function<void(size_t i)> measuring;                     // model i is about to be measured
  std::function<void(size_t i, const Measurement&)> measured;  // model i's kept measurement
  const std::atomic<bool>* stop = nullptr;  // set: measure no further model; fit on those in hand
};

struct Calibration {
  int measured = 0;                     // models measured by this call
  std::vector<ModelFeatures> features;  // of the models with a latency, in order
  std::vector<double> latency_ms;       // their latencies (median of the kept measurement)
  std::optional<LatencyModel> model;    // fitted when there are kMinFitModels latencies
};

// Measures each model that `known` does not know, `rounds` times, keeping the fastest (least
// median) measurement; then, with kMinFitModels latencies or more, fits the kind that
// choose_latency_kind picks on all of them. Stops measuring when `hooks.stop` is set. Throws
// iotnas::Error when a spec fails to build or a measurement fails.
Calibration calibrate(std::span<const CalibrationModel> models, const MeasureConfig& config,
                      int rounds, const CalibrationHooks& hooks);

// The kind with the most held-out models within +-10 % by 5-fold cross-validation (folds drawn
// with `seed`) among the kinds that need no per-layer times, once there are 20 models; below 20,
// loglog_global. Ties go to the earlier kind of kModelKinds.
ModelKind choose_latency_kind(std::span<const ModelFeatures> features,
                              std::span<const double> latency_ms, uint64_t seed);

}  // namespace iotnas::calib
