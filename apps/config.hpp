// The run config of `iotnas run` (docs/run.md): JSON with strict keys, on top of a budget preset
// (smoke | quick | paper). A config file states only what differs from its preset; every key is
// checked (unknown keys, types, ranges) and every error names the key, the file and the fix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "calib/calibrate.hpp"
#include "engine/trainer.hpp"
#include "quant/format.hpp"
#include "search/settings.hpp"

namespace iotnas::apps {

inline constexpr const char* kRunConfigFormat = "iotnas-run/1";

struct EvalSettings {
  int64_t images = 2000;  // fixed class-balanced subset of the test split (0: all of it)
  int batch = 256;
};

struct Constraint {
  std::string name;                      // for tables; default "c1", "c2", ...
  int64_t max_weight_bytes = 0;          // > 0
  std::optional<double> max_latency_ms;  // > 0 when given
};

struct Seeds {
  uint64_t search = 1;  // GA and sampling
  uint64_t select = 1;  // candidate selection among the samples
  uint64_t train = 1;   // weights and data order
  uint64_t calibrate = 1;
};

// The run config embeds the libraries' settings (search, candidates, calibration, the training
// recipe); each has one field table (engine/util/fields.hpp) that reads, writes and checks it.
struct RunConfig {
  std::string budget = "quick";
  std::string dataset = "fashion-mnist";  // as --data takes it (docs/data.md)
  std::vector<std::string> spaces;        // search spaces, in order
  search::SearchSettings search;
  search::CandidateSettings candidates;
  calib::CalibrationSettings calibration;
  TrainRecipe training;
  std::string formats = "all";  // as --types takes it: "all" or "4:3,half,..."
  double tolerance = 0.005;     // best format: accuracy at most this below float32
  EvalSettings eval;
  std::vector<Constraint> constraints;
  Seeds seeds;
  std::string backend = "auto";  // training and evaluation backend: auto, dnnl, portable
  int threads = 0;               // OpenMP threads (0 = all cores)

  std::vector<quant::FloatFormat> format_list() const { return quant::parse_types(formats); }
};

// The budget presets: "smoke" (a couple of minutes, for tests), "quick" (about 20 minutes on a
// 2-core machine), "paper" (the paper's full protocol, for clusters). Throws iotnas::Error for an
// unknown name.
RunConfig budget_preset(std::string_view budget);
const std::vector<std::string>& budget_names();

// Parses a config document: the preset (the `budget_override` when not empty, else the document's
// "budget", else "quick") with the document's keys applied on top. `origin` names the source in
// errors. Throws iotnas::Error for bad JSON, an unknown key, a wrong type or a value out of range.
RunConfig parse_run_config(std::string_view json_text, const std::string& origin,
                           std::string_view budget_override = "");
// Reads a config file (a missing or unreadable file is an error naming it).
RunConfig load_run_config(const std::string& path, std::string_view budget_override = "");
// Checks ranges and names (spaces, dataset syntax, formats, constraints); throws iotnas::Error.
void validate(const RunConfig& c, const std::string& origin);

// The full config as JSON (every key), as stored in the run directory; parse_run_config of it
// gives the same config back.
nlohmann::json run_config_to_json(const RunConfig& c);

// The training recipe as JSON: the part of the config that determines a trained model (with the
// dataset and seed it keys a training run in the store).
nlohmann::json recipe_json(const RunConfig& c);

}  // namespace iotnas::apps
