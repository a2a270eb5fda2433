// Results of a run directory as the answers see them: every (model, format) accuracy in the store
// joined with the model's analytics and float32 latency on one device, the fronts over them
// (DESIGN.md section 5), constraint answers, CSV, and the report (DIR/report.md + report.html with
// gnuplot plots when gnuplot is installed).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "apps/store/store.hpp"
#include "search/front.hpp"

namespace iotnas::apps {

// What a candidate stands for in the store.
struct CandidateInfo {
  int64_t run_id = 0, model_id = 0;
  std::string name;              // the model's name
  int64_t params = 0;            // trainable parameters
  int64_t inference_params = 0;  // batch norm folded (what weight_bytes counts)
  int64_t flops = 0;
  double latency_ms_measured = NAN;   // float32, batch 1, on `device`; NaN: none
  double latency_ms_predicted = NAN;  //
  bool best_format = false;           // the sweep's best format of this run
};

// The store's space name of models trained only for comparison (config candidates.references).
inline constexpr const char* kReferenceSpace = "reference";

struct Results {
  std::string device;    // whose latencies fill latency_ms ("" when none)
  std::string eval_key;  // the evaluation set the accuracies come from
  // candidates[i] and info[i] describe one (training run, format); model_id in candidates is the
  // store's model id as text; latency_ms is the measured latency when there is one, else the
  // prediction.
  std::vector<search::Candidate> candidates;
  std::vector<CandidateInfo> info;
  // The same for the reference models (space kReferenceSpace): beside the fronts, never on them.
  std::vector<search::Candidate> references;
  std::vector<CandidateInfo> reference_info;
};

// Latencies from a device profile instead of the store (iotnas solve --profile).
struct ProfileLatencies {
  std::string device;  // a one-line description of the profile's device
  // By model name: measured (the profile's own models) and predicted (its fitted model).
  std::function<double(const ModelRow&)> measured, predicted;
};
ProfileLatencies profile_latencies(const std::string& profile_path);

// Reads every accuracy of the store's main evaluation set (the one with the most rows). Latencies
// come from `profile` when given, else from the store for `device` ("" = meta "device" or the
// store's only/first device). Throws iotnas::Error when the store has no accuracies.
Results load_results(Store& store, const std::string& device = "",
                     const ProfileLatencies* profile = nullptr);

struct NamedFront {
  std::string name;  // "memory:float32", "memory:half", "memory:T(4,3)", "memory:best",
                     // "latency:DEVICE"
  std::string title;
  search::Cost cost = search::Cost::weight_bytes;
  std::vector<int> points;  // into Results::candidates, by increasing cost
};

// The standard fronts: memory-accuracy for float32, half, T(4,3) and each run's best format, and
// latency-accuracy of the float32 models (when latencies are known).
std::vector<NamedFront> compute_fronts(const Results& r);
// Replaces the store's fronts with these (one transaction).
void store_fronts(Store& store, const Results& r, const std::vector<NamedFront>& fronts);
// CSV: front,position,model_id,space,name,params,w,t,accuracy,weight_bytes,latency_ms.
std::string fronts_csv(const Results& r, const std::vector<NamedFront>& fronts);
// A plain-text table of one front for the terminal.
std::string front_table(const Results& r, const NamedFront& f);

// A published or trained reference point beside the fronts: its float32 accuracy and weight bytes,
// and the best accuracy of the run's fronts within the same weight bytes.
struct ReferencePoint {
  std::string source;  // "this run" (a reference model trained with the run's recipe) or the
                       // benchmark table it is quoted from
  std::string name;
  int64_t params = 0;
  int64_t weight_bytes = 0;    // float32: 4 bytes per inference parameter
  double accuracy = NAN;       // fraction
  bool in_scope = true;        // table rows: states a parameter count <= 1e5 (the bar)
  double front_float32 = NAN;  // best float32 candidate accuracy with weight bytes <= weight_bytes
  double front_any = NAN;      // best candidate accuracy in any format within the same bytes
};
// The run's reference models plus, for Fashion-MNIST, the rows of the dataset's benchmark table
// (/usr/share/doc/dataset-fashion-mnist/README.md.gz) that state a parameter count.
std::vector<ReferencePoint> reference_points(const Results& r, const std::string& dataset);
// CSV: source,name,params,weight_bytes,accuracy,in_scope,front_float32,front_any.
std::string reference_points_csv(const std::vector<ReferencePoint>& points);

// The answer to a constraint query as `iotnas solve --json` prints it (keys in docs/run.md).
nlohmann::json solution_json(const Results& r, const search::Solution& s);
// The same as lines for a person.
std::string solution_text(const Results& r, const search::Solution& s);

struct ReportOptions {
  bool plots = true;  // run gnuplot when it is on the PATH
};
// Writes DIR/report.md, DIR/report.html, DIR/fronts.csv and (with gnuplot) DIR/plots/*.svg|png,
// each atomically. Returns the paths written.
std::vector<std::string> write_report(Store& store, const std::string& dir,
                                      const ReportOptions& options = {});

// True when `gnuplot` is on the PATH.
bool have_gnuplot();

}  // namespace iotnas::apps
