// Device profiles (docs/calibration.md): the models measured on one device, with the device's
// description and, once fitted, the best latency model. A profile is made by `iotnas calib
// measure` on the device and carried to the machine that searches. Measuring is resumable: the
// profile is rewritten atomically as measurements arrive, and a rerun keeps what was measured.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "calib/measure.hpp"
#include "engine/spec.hpp"

namespace iotnas::calib {

inline constexpr const char* kProfileFormat = "iotnas-calib-profile/1";

struct ProfileModel {
  std::string id;         // unique within the profile: the spec's name, e.g. "plain[3,3,...]"
  std::string space;      // search space it was drawn from; empty when none
  std::vector<int> vars;  // its variable vector in that space
  int64_t params = 0;     // trainable parameters
  int64_t inference_params = 0;  // with batch norm folded
  int64_t flops = 0;             // forward, per image
  ModelSpec spec;
  std::vector<Measurement> measurements;  // in the order taken (round 1, round 2, ...)
  // The model's latency: the smallest of its measurements' medians (interference from other
  // work only ever adds time), or of their minima with use_min. With probe_ref > 0, each
  // measurement that has a speed probe is first scaled by probe_ref / its probe_ms (the time at
  // the profile's reference speed). NaN when it has no measurement.
  double latency_ms(bool use_min = false, double probe_ref = 0) const;
  // One measurement's statistic, scaled the same way.
  static double value(const Measurement& m, bool use_min, double probe_ref);
};

// What every measurement of the profile was taken with; a rerun must ask for the same.
struct ProfileSettings {
  Shape input{1, 28, 28};
  int classes = 10;
  std::string backend = "portable";  // by name: a profile is read where its backend may be absent
  // The measuring settings, recorded by their field table (measure_fields()); measure.backend is
  // not recorded (`backend` is).
  MeasureConfig measure;
};

struct Profile {
  ProfileSettings settings;
  std::vector<nlohmann::json> devices;  // describe_device() of each setup that measured
  std::vector<ProfileModel> models;
  nlohmann::json fit;  // written by `iotnas calib fit` (null until then): report + best model
  std::string created, updated;  // UTC ISO 8601

  // Index of the model with this id, or -1.
  int find(std::string_view id) const;
  // Sets every measurement's probe_local_ms: the median speed probe of the kProbeWindow
  // measurements taken before it, itself and the kProbeWindow after (in the order taken).
  void smooth_probes();
  static constexpr int kProbeWindow = 5;
  // The reference speed: the 10th percentile of the measurements' speed-probe times (the
  // machine at its fast), or 0 when no measurement has a probe.
  double probe_ref() const;
};

nlohmann::json profile_to_json(const Profile& p);
// Parses and checks a profile; `origin` names the source in errors. Throws iotnas::Error for
// damaged JSON, another format version, a missing field or a model spec that fails to build.
Profile parse_profile(std::string_view text, const std::string& origin);
Profile load_profile(const std::string& path);
// Atomic (temporary file + rename): a killed process never leaves a half-written profile.
void save_profile(const std::string& path, const Profile& p);

// A model to measure.
struct Candidate {
  std::string space;
  std::vector<int> vars;
  ModelSpec spec;  // its name becomes the model's id
};

struct MeasureProgress {
  int done = 0, total = 0;  // measurements taken in this run / to take in this run
  double eta_seconds = 0;
  const ProfileModel* model = nullptr;
  const Measurement* measurement = nullptr;
};

struct MeasureRun {
  int rounds = 2;  // measurements per model, taken in interleaved passes over all models
  double save_interval_seconds = 5;
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by SIGINT) to stop after the model in hand
};

// Measures every candidate until it has `run.rounds` measurements: pass r measures, in plan
// order, each model with fewer than r. Models already in the profile keep their measurements.
// `save` is called at most every save_interval_seconds and once at the end. Throws iotnas::Error
// when the profile was measured with other settings or on another device setup (name a new
// output), or when a candidate's spec fails to build. Returns false when stopped early.
bool measure_profile(Profile& profile, std::span<const Candidate> plan, const MeasureConfig& cfg,
                     const MeasureRun& run,
                     const std::function<void(const MeasureProgress&)>& progress,
                     const std::function<void()>& save);

// A rerun must measure with the settings the profile was measured with: throws iotnas::Error
// naming the first setting that differs (and suggesting a new --out) when it does not.
void check_same_settings(const Profile& p, const ProfileSettings& wanted,
                         const std::string& origin);

// Settings of a profile for a measuring config (backend by name).
ProfileSettings settings_for(const MeasureConfig& cfg, Shape input, int classes);

}  // namespace iotnas::calib
