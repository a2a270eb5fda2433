// Batch-1 inference latency of one model on this machine (DESIGN.md §6), and the description of
// the device it was measured on. The model runs in inference mode with batch norm folded; its
// program is compiled once per measurement (never inside the timed loop), warmed up, then timed
// `repeats` times with steady_clock.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "engine/spec.hpp"
#include "engine/util/fields.hpp"

namespace iotnas::calib {

// The ranges of the measuring sizes (check_measure_config, the `calib measure` flags, a profile's
// settings and the run config's "calibration" share them).
inline constexpr int kMaxThreads = 1024;       // threads
inline constexpr int kMaxWarmup = 100000;      // warmup (forwards)
inline constexpr double kMaxWarmupMs = 60000;  // warmup_ms
inline constexpr int kMaxRepeats = 100000;     // repeats
inline constexpr int kMaxAttempts = 100;       // max_attempts
inline constexpr int kMaxRounds = 100;         // measurements per model (`--rounds`)

struct MeasureConfig {
  BackendKind backend = BackendKind::portable;
  int threads = 1;               // OpenMP threads while timing (set and restored)
  int warmup = 3;                // untimed forwards first (at least; see warmup_ms)
  double warmup_ms = 5;          // ... and keep warming up until this much time has passed
  int repeats = 10;              // timed forwards
  double noise_threshold = 0.1;  // a measurement with spread above this is noisy
  int max_attempts = 3;          // a noisy measurement is repeated up to this many times in all
  uint64_t seed = 1;             // weights and input (latency does not depend on the values)
  // After the timed forwards, `repeats` more with a hook that reads the clock after every layer:
  // the per-layer times the layer_knn latency model learns from (latency_model.hpp).
  bool layer_times = true;
  // Right before the model, time a fixed probe model (ref:plain-14k, batch 1): the machine's speed
  // at that moment. Shared machines (VMs) run whole stretches of seconds 1.3-1.5x slower; a
  // profile divides that out (Profile::probe_ref, docs/calibration.md).
  bool speed_probe = true;
};
// Throws iotnas::Error naming the field when a value is out of range.
void check_measure_config(const MeasureConfig& c);
// The field table of the settings a profile records (JSON keys, ranges, `calib measure` flags).
std::span<const fields::Field<MeasureConfig>> measure_fields();

// One measurement of one model: statistics over `repeats` timed forwards, in milliseconds.
struct Measurement {
  double mean_ms = 0, median_ms = 0, min_ms = 0, max_ms = 0;
  double spread = 0;   // interquartile range / median of the timed forwards (kept attempt)
  int repeats = 0;     // timed forwards
  int attempts = 1;    // 1 + repetitions caused by noise; the least-spread attempt is kept
  bool noisy = false;  // spread still above the threshold after max_attempts
  int round = 0;       // which interleaved pass over the models took it (1, 2, ...)
  int device = 0;      // index into the profile's devices
  std::string time;    // UTC, ISO 8601, when it was taken
  // Per layer of the folded inference graph (by layer name; "" is the input copy): the median
  // over the layer-timed forwards of the time from the previous layer's end to this one's. A
  // layer computed together with its relu reports under the relu's name; layers that compute
  // nothing (views) are absent. Empty when layer times were not taken.
  std::map<std::string, double> layer_ms;
  double probe_ms = 0;  // median time of the speed probe taken just before; 0: not taken
  // Not saved: the median probe_ms of the measurements taken around this one (see
  // Profile::smooth_probes), steadier than one probe of 10 forwards; 0 when not computed.
  double probe_local_ms = 0;
};

// The speed probe alone: median of 10 timed batch-1 forwards of ref:plain-14k (compiled once per
// backend and kept), after 3 untimed ones, in the calling thread's OpenMP setting.
double time_speed_probe(BackendKind backend);

// Builds the model (random weights from cfg.seed), folds batch norm, compiles an inference
// program for batch 1 and times it. Throws iotnas::Error when the spec fails shape inference or
// the backend cannot run here.
Measurement measure_latency(const ModelSpec& spec, const MeasureConfig& cfg);

// Statistics of timed forwards (milliseconds); exposed for tests.
Measurement summarize_times(std::vector<double> times_ms);

// What a measurement was taken on: CPU model, cores, frequency governor and maximum frequency
// where readable, OS, iotnas version and build options, backend (with version) and threads.
nlohmann::json describe_device(BackendKind backend, int threads);
// Two descriptions name the same device setup when CPU model, cores, architecture, backend,
// threads and build options agree (governor, host name and version may differ).
bool same_device_setup(const nlohmann::json& a, const nlohmann::json& b);
// One line for messages: "AMD EPYC ..., dnnl 2.6.3, 1 thread".
std::string device_summary(const nlohmann::json& device);

std::string utc_now_iso();

}  // namespace iotnas::calib
