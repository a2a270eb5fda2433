#include "apps/config.hpp"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/data.hpp"
#include "engine/graph.hpp"
#include "engine/reference_models.hpp"
#include "engine/util/fields.hpp"
#include "engine/util/json.hpp"
#include "kernels/base/error.hpp"
#include "search/space.hpp"

namespace iotnas::apps {

namespace {

using nlohmann::json;

using fields::at;

const std::vector<fields::Field<RunConfig>> kRunFields = {
    {.key = "dataset", .ref = at<&RunConfig::dataset>, .help = "as --data takes it"},
    {.key = "spaces", .ref = at<&RunConfig::spaces>, .help = "search spaces, in order"},
    {.key = "formats", .ref = at<&RunConfig::formats>, .help = "all, or as --types takes it"},
    {.key = "tolerance",
     .ref = at<&RunConfig::tolerance>,
     .help = "best format: accuracy at most this below float32",
     .min = 0,
     .max = 1,
     .max_open = true},
    {.key = "backend",
     .ref = at<&RunConfig::backend>,
     .help = "training and evaluation backend",
     .choices = {"auto", "dnnl", "portable"}},
    {.key = "threads",
     .ref = at<&RunConfig::threads>,
     .help = "OpenMP threads (0: all cores)",
     .min = 0,
     .max = 1024,
     .rule = "must be in [0, 1024] (0: all cores)"},
};

const std::vector<fields::Field<EvalSettings>> kEvalFields = {
    {.key = "images",
     .ref = at<&EvalSettings::images>,
     .help = "class-balanced test subset (0: the whole test split)",
     .min = 0,
     .max = double(kMaxSplitImages),
     .rule = "must be in [0, 2147483647] (0 or more than the split holds: the whole test split)"},
    {.key = "batch",
     .ref = at<&EvalSettings::batch>,
     .help = "evaluation batch",
     .min = 1,
     .max = 65536},
};

const std::vector<fields::Field<Seeds>> kSeedFields = {
    {.key = "search", .ref = at<&Seeds::search>, .help = "GA and sampling"},
    {.key = "select", .ref = at<&Seeds::select>, .help = "candidate selection"},
    {.key = "train", .ref = at<&Seeds::train>, .help = "weights and data order"},
    {.key = "calibrate", .ref = at<&Seeds::calibrate>, .help = "calibration"},
};

// Reads the object at `key` (when present) into `s` through its field table.
template <class S>
void read_section(fields::Reader& r, const char* key, std::span<const fields::Field<S>> table,
                  S& s) {
  if (const json* j = r.sub(key)) {
    fields::Reader q(*j, key, r.origin());
    fields::read(q, table, s);
    q.finish();
  }
}

void apply(const json& doc, RunConfig& c, const std::string& origin) {
  fields::Reader r(doc, "", origin);
  std::string format = kRunConfigFormat;
  r.get("format", format);
  if (format != kRunConfigFormat)
    fail(origin, ": \"format\" is '", format, "'; this iotnas reads '", kRunConfigFormat, "'");
  std::string budget;
  r.get("budget", budget);  // applied by the caller
  fields::read<RunConfig>(r, kRunFields, c);
  read_section(r, "search", search::search_fields(), c.search);
  read_section(r, "candidates", search::candidate_fields(), c.candidates);
  read_section(r, "calibration", calib::calibration_fields(), c.calibration);
  read_section(r, "training", recipe_fields(), c.training);
  read_section<EvalSettings>(r, "eval", kEvalFields, c.eval);
  if (const json* s = r.sub("constraints")) {
    if (!s->is_array()) fail(origin, ": \"constraints\" must be an array of objects");
    c.constraints.clear();
    for (size_t i = 0; i < s->size(); ++i) {
      fields::Reader q((*s)[i], "constraints[" + std::to_string(i) + "]", origin);
      Constraint k;
      k.name = "c" + std::to_string(i + 1);
      q.get("name", k.name);
      q.get("max_weight_bytes", k.max_weight_bytes);
      if (const json* l = q.sub("max_latency_ms")) {
        if (!l->is_null()) {
          if (!l->is_number())
            fail(origin, ": \"constraints[", i, "].max_latency_ms\" must be a number");
          k.max_latency_ms = l->get<double>();
        }
      }
      q.finish();
      c.constraints.push_back(k);
    }
  }
  read_section<Seeds>(r, "seeds", kSeedFields, c.seeds);
  r.finish();
}

void check_range(bool ok, const std::string& origin, const char* key, const std::string& what) {
  if (!ok) fail(origin, ": \"", key, "\" ", what);
}

// A reference model must take the dataset's images and output one score per class: refused here,
// before anything runs, rather than failing its training later.
void check_reference(const std::string& ref, const std::string& dataset, const DatasetInfo& data) {
  const Graph g = build_graph(resolve_model(ref, data.shape, data.classes));
  if (!(g.input == data.shape))
    fail("model '", ref, "' takes input ", to_string(g.input), " but dataset '", dataset,
         "' has images ", to_string(data.shape));
  const Shape out = g.output().out;
  if (out.c != data.classes || out.h != 1 || out.w != 1)
    fail("model '", ref, "' outputs ", out.c, " classes (", to_string(out), ") but dataset '",
         dataset, "' has ", data.classes, "; its last layer must output [", data.classes,
         ", 1, 1]");
}

bool power_of_ten(double v) {
  if (!(v > 0) || !std::isfinite(v)) return false;
  const double e = std::round(std::log10(v));
  return std::fabs(std::pow(10.0, e) - v) <= 1e-9 * v;
}

// Windows over parameters from 1e3 to grid_to, with these GA settings.
search::SearchSettings search_preset(double grid_to, int n_init, int n_steps, int n_eval,
                                     int clusters, int n_rescore, int n_val) {
  search::SearchSettings s;
  s.grid_to = grid_to;
  s.ga.n_init = n_init;
  s.ga.n_steps = n_steps;
  s.ga.n_eval = n_eval;
  s.ga.clusters = clusters;
  s.ga.n_rescore = n_rescore;
  s.n_val = n_val;
  return s;
}

}  // namespace

const std::vector<std::string>& budget_names() {
  static const std::vector<std::string> names = {"smoke", "quick", "paper"};
  return names;
}

RunConfig budget_preset(std::string_view budget) {
  RunConfig c;
  c.budget = std::string(budget);
  if (budget == "smoke") {
    // Seconds per stage: a few tiny models, one short epoch on a subset, a small eval subset.
    c.spaces = {"plain", "mobilenet", "resnet"};
    c.search = search_preset(1e4, 20, 40, 5, 2, 0, 10);
    c.candidates = {1, 1e6, 4, 1, {"ref:plain-1k"}};
    c.calibration = {"", 8, 3, 1, 1};
    c.training.epochs = 1;
    c.training.batch = 32;  // 63 steps: enough to leave chance level on Fashion-MNIST
    c.training.train_images = 2000;
    c.eval.images = 500;
    c.constraints = {{"c1", 2000, std::nullopt}};
  } else if (budget == "quick") {
    // About 20 minutes on a 2-core machine: three spaces, windows over 1e3..1e5 parameters, one
    // model per (space, window), three epochs, 184 formats on 2,000 test images.
    c.spaces = {"plain", "mobilenet", "resnet"};
    c.search = search_preset(1e5, 100, 900, 10, 10, 100, 100);
    c.candidates = {1, 1e7, 0, 0, {"ref:plain-1k", "ref:plain-14k", "ref:plain-120k"}};
    c.calibration = {"", 50, 10, 2, 1};
    c.training.epochs = 3;
    c.eval.images = 2000;
    c.constraints = {{"c1", 4096, std::nullopt}, {"c2", 16384, std::nullopt}};
  } else if (budget == "paper") {
    // The paper's protocol at its scale (over 3,000 trained models; a cluster's work, see
    // docs/cluster.md): every space, windows over 1e3..1e7, GA n_init 100 / n_steps 900 /
    // n_eval 10 / k 10, 300 validation samples per law of which up to 64 in-window models per
    // (space, window) are trained, 30 epochs, the whole test split.
    c.spaces = {"plain", "resnet", "inception", "densenet", "mobilenet"};
    c.search = search_preset(1e7, 100, 900, 10, 10, 100, 300);
    c.candidates = {64, 1e9, 0, 3, {"ref:plain-1k", "ref:plain-14k", "ref:plain-120k"}};
    c.calibration = {"", 50, 10, 2, 1};
    c.training.epochs = 30;
    c.eval.images = 0;
    c.constraints = {
        {"c1", 4096, std::nullopt}, {"c2", 16384, std::nullopt}, {"c3", 65536, std::nullopt}};
  } else {
    fail("unknown budget '", budget, "'; use smoke, quick or paper");
  }
  return c;
}

void validate(const RunConfig& c, const std::string& origin) {
  // Library errors name the value and the accepted ones; prefix the file and the key.
  const auto checked = [&](const char* key, const auto& check) {
    try {
      check();
    } catch (const Error& e) {
      fail(origin, ": \"", key, "\": ", e.what());
    }
  };
  checked("dataset", [&] { (void)dataset_info(c.dataset); });
  check_range(!c.spaces.empty(), origin, "spaces", "is empty; name at least one search space");
  std::set<std::string> seen;
  for (const auto& s : c.spaces) {
    checked("spaces", [&] { (void)search::find_space(s); });
    if (!seen.insert(s).second) fail(origin, ": \"spaces\" lists '", s, "' twice");
  }
  checked("search.metric", [&] { (void)search::parse_metric(c.search.metric); });
  check_range(power_of_ten(c.search.grid_from) && power_of_ten(c.search.grid_to) &&
                  c.search.grid_from < c.search.grid_to,
              origin, "search.grid_from/grid_to",
              "must be powers of ten with grid_from < grid_to (e.g. 1e3 and 1e5)");
  fields::validate(search::search_fields(), c.search, origin, "search");
  checked("search", [&] { search::check_ga_config(c.search.ga); });  // the GA's own rules
  fields::validate(search::candidate_fields(), c.candidates, origin, "candidates");
  const DatasetInfo data = dataset_info(c.dataset);
  for (const auto& ref : c.candidates.references)
    checked("candidates.references", [&] { check_reference(ref, c.dataset, data); });
  fields::validate(calib::calibration_fields(), c.calibration, origin, "calibration");
  fields::validate(recipe_fields(), c.training, origin, "training");
  checked("formats", [&] { (void)c.format_list(); });
  fields::validate<EvalSettings>(kEvalFields, c.eval, origin, "eval");
  fields::validate<RunConfig>(kRunFields, c, origin, "");
  std::set<std::string> names;
  for (const Constraint& k : c.constraints) {
    if (!names.insert(k.name).second)
      fail(origin, ": two constraints are named '", k.name, "'; give each its own name");
    if (k.max_weight_bytes <= 0)
      fail(origin, ": constraint '", k.name,
           "': max_weight_bytes must be a positive number of "
           "bytes");
    if (k.max_latency_ms && !(*k.max_latency_ms > 0 && std::isfinite(*k.max_latency_ms)))
      fail(origin, ": constraint '", k.name,
           "': max_latency_ms must be a positive number of "
           "milliseconds");
  }
}

RunConfig parse_run_config(std::string_view text, const std::string& origin,
                           std::string_view budget_override) {
  const json doc = parse_json_strict(text, origin, "a run config is described in docs/run.md");
  if (!doc.is_object()) fail(origin, ": a run config must be a JSON object");
  std::string budget = "quick";
  if (auto it = doc.find("budget"); it != doc.end()) {
    if (!it->is_string()) fail(origin, ": \"budget\" must be a string: smoke, quick or paper");
    budget = it->get<std::string>();
  }
  if (!budget_override.empty()) budget = std::string(budget_override);
  RunConfig c;
  try {
    c = budget_preset(budget);
  } catch (const Error& e) {
    fail(origin, ": ", e.what());
  }
  apply(doc, c, origin);
  validate(c, origin);
  return c;
}

RunConfig load_run_config(const std::string& path, std::string_view budget_override) {
  return parse_run_config(read_text_file(path, "run config"), path, budget_override);
}

nlohmann::json run_config_to_json(const RunConfig& c) {
  json j = fields::to_json<RunConfig>(kRunFields, c);
  j["format"] = kRunConfigFormat;
  j["budget"] = c.budget;
  j["search"] = fields::to_json(search::search_fields(), c.search);
  j["candidates"] = fields::to_json(search::candidate_fields(), c.candidates);
  j["calibration"] = fields::to_json(calib::calibration_fields(), c.calibration);
  j["training"] = recipe_json(c);
  j["eval"] = fields::to_json<EvalSettings>(kEvalFields, c.eval);
  j["constraints"] = json::array();
  for (const Constraint& k : c.constraints) {
    json o = {{"name", k.name}, {"max_weight_bytes", k.max_weight_bytes}};
    if (k.max_latency_ms) o["max_latency_ms"] = *k.max_latency_ms;
    j["constraints"].push_back(o);
  }
  j["seeds"] = fields::to_json<Seeds>(kSeedFields, c.seeds);
  return j;
}

nlohmann::json recipe_json(const RunConfig& c) {
  return fields::to_json(recipe_fields(), c.training);
}

}  // namespace iotnas::apps
