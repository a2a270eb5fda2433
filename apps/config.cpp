#include "apps/config.hpp"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/data.hpp"
#include "engine/reference_models.hpp"
#include "kernels/base/error.hpp"
#include "search/space.hpp"

namespace iotnas::apps {

namespace {

using nlohmann::json;

// Reads one JSON object's keys, each at most once; finish() rejects keys nobody asked for.
class Reader {
 public:
  Reader(const json& j, std::string where, const std::string& origin)
      : j_(j), where_(std::move(where)), origin_(origin) {
    if (!j.is_object()) fail(origin_, ": ", name(""), " must be a JSON object");
  }

  template <typename T>
  void get(const char* key, T& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return;
    read(key, *it, out);
  }
  const json* sub(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string name(const std::string& key) const {
    if (where_.empty()) return key.empty() ? "the config" : "\"" + key + "\"";
    return "\"" + where_ + (key.empty() ? "" : "." + key) + "\"";
  }
  void finish() const {
    std::string known;
    for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key()))
        fail(origin_, ": unknown key ", name(it.key()), "; known keys here: ", known);
  }
  const std::string& origin() const { return origin_; }

 private:
  [[noreturn]] void type_error(const char* key, const char* want) const {
    fail(origin_, ": ", name(key), " must be ", want);
  }
  void read(const char* key, const json& v, std::string& out) {
    if (!v.is_string()) type_error(key, "a string");
    out = v.get<std::string>();
  }
  void read(const char* key, const json& v, bool& out) {
    if (!v.is_boolean()) type_error(key, "true or false");
    out = v.get<bool>();
  }
  void read(const char* key, const json& v, double& out) {
    if (!v.is_number()) type_error(key, "a number");
    out = v.get<double>();
  }
  void read(const char* key, const json& v, int& out) {
    int64_t x = 0;
    read(key, v, x);
    if (x < INT32_MIN || x > INT32_MAX) type_error(key, "an integer of at most 10 digits");
    out = int(x);
  }
  void read(const char* key, const json& v, int64_t& out) {
    // Integers written as 1e4 are accepted when exact.
    if (v.is_number_integer()) {
      out = v.get<int64_t>();
    } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
               std::fabs(v.get<double>()) < 9e15) {
      out = int64_t(v.get<double>());
    } else {
      type_error(key, "an integer");
    }
  }
  void read(const char* key, const json& v, uint64_t& out) {
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      out = v.get<uint64_t>();
      return;
    }
    read(key, v, x);
    if (x < 0) type_error(key, "a non-negative integer");
    out = uint64_t(x);
  }
  void read(const char* key, const json& v, std::vector<std::string>& out) {
    if (!v.is_array()) type_error(key, "an array of strings");
    out.clear();
    for (const auto& e : v) {
      if (!e.is_string()) type_error(key, "an array of strings");
      out.push_back(e.get<std::string>());
    }
  }

  const json& j_;
  std::string where_;
  const std::string& origin_;
  std::set<std::string> seen_;
};

void apply(const json& doc, RunConfig& c, const std::string& origin) {
  Reader r(doc, "", origin);
  std::string format = kRunConfigFormat;
  r.get("format", format);
  if (format != kRunConfigFormat)
    fail(origin, ": \"format\" is '", format, "'; this iotnas reads '", kRunConfigFormat, "'");
  std::string budget;
  r.get("budget", budget);  // applied by the caller
  r.get("dataset", c.dataset);
  r.get("spaces", c.spaces);
  r.get("formats", c.formats);
  r.get("tolerance", c.tolerance);
  r.get("backend", c.backend);
  r.get("threads", c.threads);
  if (const json* s = r.sub("search")) {
    Reader q(*s, "search", origin);
    q.get("metric", c.search.metric);
    q.get("grid_from", c.search.grid_from);
    q.get("grid_to", c.search.grid_to);
    q.get("n_init", c.search.n_init);
    q.get("n_steps", c.search.n_steps);
    q.get("n_eval", c.search.n_eval);
    q.get("clusters", c.search.clusters);
    q.get("n_rescore", c.search.n_rescore);
    q.get("n_val", c.search.n_val);
    q.finish();
  }
  if (const json* s = r.sub("candidates")) {
    Reader q(*s, "candidates", origin);
    q.get("per_window", c.candidates.per_window);
    q.get("max_flops", c.candidates.max_flops);
    q.get("max_models", c.candidates.max_models);
    q.get("per_constraint", c.candidates.per_constraint);
    q.get("references", c.candidates.references);
    q.finish();
  }
  if (const json* s = r.sub("calibration")) {
    Reader q(*s, "calibration", origin);
    q.get("profile", c.calibration.profile);
    q.get("models", c.calibration.models);
    q.get("repeats", c.calibration.repeats);
    q.get("rounds", c.calibration.rounds);
    q.get("threads", c.calibration.threads);
    q.finish();
  }
  if (const json* s = r.sub("training")) {
    Reader q(*s, "training", origin);
    TrainingSettings& t = c.training;
    q.get("epochs", t.epochs);
    q.get("batch", t.batch);
    q.get("optimizer", t.optimizer);
    q.get("lr", t.lr);
    q.get("momentum", t.momentum);
    q.get("nesterov", t.nesterov);
    q.get("weight_decay", t.weight_decay);
    q.get("schedule", t.schedule);
    q.get("warmup_epochs", t.warmup_epochs);
    q.get("augment", t.augment);
    q.get("train_images", t.train_images);
    q.finish();
  }
  if (const json* s = r.sub("eval")) {
    Reader q(*s, "eval", origin);
    q.get("images", c.eval.images);
    q.get("batch", c.eval.batch);
    q.finish();
  }
  if (const json* s = r.sub("constraints")) {
    if (!s->is_array()) fail(origin, ": \"constraints\" must be an array of objects");
    c.constraints.clear();
    for (size_t i = 0; i < s->size(); ++i) {
      Reader q((*s)[i], "constraints[" + std::to_string(i) + "]", origin);
      Constraint k;
      k.name = "c" + std::to_string(i + 1);
      q.get("name", k.name);
      q.get("max_weight_bytes", k.max_weight_bytes);
      if (const json* l = q.sub("max_latency_ms")) {
        if (!l->is_null()) {
          double v = 0;
          if (!l->is_number())
            fail(origin, ": \"constraints[", i, "].max_latency_ms\" must be a number");
          v = l->get<double>();
          k.max_latency_ms = v;
        }
      }
      q.finish();
      c.constraints.push_back(k);
    }
  }
  if (const json* s = r.sub("seeds")) {
    Reader q(*s, "seeds", origin);
    q.get("search", c.seeds.search);
    q.get("select", c.seeds.select);
    q.get("train", c.seeds.train);
    q.get("calibrate", c.seeds.calibrate);
    q.finish();
  }
  r.finish();
}

void check_range(bool ok, const std::string& origin, const char* key, const std::string& what) {
  if (!ok) fail(origin, ": \"", key, "\" ", what);
}

bool power_of_ten(double v) {
  if (!(v > 0) || !std::isfinite(v)) return false;
  const double e = std::round(std::log10(v));
  return std::fabs(std::pow(10.0, e) - v) <= 1e-9 * v;
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
    c.search = {"params", 1e3, 1e4, 20, 40, 5, 2, 0, 10};
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
    c.search = {"params", 1e3, 1e5, 100, 900, 10, 10, 100, 100};
    c.candidates = {1, 1e7, 0, 0, {"ref:plain-1k", "ref:plain-14k", "ref:plain-120k"}};
    c.calibration = {"", 50, 10, 2, 1};
    c.training.epochs = 3;
    c.eval.images = 2000;
    c.constraints = {{"c1", 4096, std::nullopt}, {"c2", 16384, std::nullopt}};
  } else if (budget == "paper") {
    // The paper's protocol: every space, windows over 1e3..1e7, GA n_init 100 / n_steps 900 /
    // n_eval 10 / k 10, 100 models per law, the whole test split.
    c.spaces = {"plain", "resnet", "inception", "densenet", "mobilenet"};
    c.search = {"params", 1e3, 1e7, 100, 900, 10, 10, 100, 100};
    c.candidates = {3, 1e9, 0, 3, {"ref:plain-1k", "ref:plain-14k", "ref:plain-120k"}};
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
  check_range(c.search.n_init >= 2, origin, "search.n_init", "must be at least 2");
  check_range(c.search.n_steps >= 0, origin, "search.n_steps", "must be >= 0");
  check_range(c.search.n_eval >= 2, origin, "search.n_eval", "must be at least 2");
  check_range(c.search.clusters >= 1 && c.search.clusters <= c.search.n_init, origin,
              "search.clusters", "must be in [1, search.n_init]");
  check_range(c.search.n_rescore >= 0, origin, "search.n_rescore", "must be >= 0");
  check_range(c.search.n_val >= 1, origin, "search.n_val", "must be at least 1");
  check_range(c.candidates.per_window >= 1 && c.candidates.per_window <= 1000, origin,
              "candidates.per_window", "must be in [1, 1000]");
  check_range(c.candidates.max_flops > 0, origin, "candidates.max_flops", "must be positive");
  check_range(c.candidates.per_constraint >= 0 && c.candidates.per_constraint <= 100, origin,
              "candidates.per_constraint", "must be in [0, 100]");
  for (const auto& ref : c.candidates.references)
    checked("candidates.references", [&] { (void)resolve_model(ref); });
  check_range(c.candidates.max_models >= 0, origin, "candidates.max_models",
              "must be >= 0 (0: no cap)");
  check_range(c.calibration.models >= 0 && c.calibration.models <= 50, origin, "calibration.models",
              "must be in [0, 50]");
  check_range(c.calibration.repeats >= 1, origin, "calibration.repeats", "must be at least 1");
  check_range(c.calibration.rounds >= 1, origin, "calibration.rounds", "must be at least 1");
  check_range(c.calibration.threads >= 1 && c.calibration.threads <= 1024, origin,
              "calibration.threads", "must be in [1, 1024]");
  const TrainingSettings& t = c.training;
  check_range(t.epochs >= 1 && t.epochs <= 10000, origin, "training.epochs",
              "must be in [1, 10000]");
  check_range(t.batch >= 1 && t.batch <= 65536, origin, "training.batch", "must be in [1, 65536]");
  check_range(t.lr > 0 && std::isfinite(t.lr), origin, "training.lr", "must be positive");
  check_range(t.optimizer == "sgd" || t.optimizer == "adam", origin, "training.optimizer",
              "must be sgd or adam");
  check_range(t.schedule == "cosine" || t.schedule == "constant", origin, "training.schedule",
              "must be cosine or constant");
  check_range(t.momentum >= 0 && t.momentum < 1, origin, "training.momentum", "must be in [0, 1)");
  check_range(t.weight_decay >= 0, origin, "training.weight_decay", "must be >= 0");
  check_range(t.warmup_epochs >= 0 && t.warmup_epochs <= t.epochs, origin, "training.warmup_epochs",
              "must be in [0, training.epochs]");
  check_range(t.augment == "auto" || t.augment == "on" || t.augment == "off", origin,
              "training.augment", "must be auto, on or off");
  check_range(t.train_images >= 0, origin, "training.train_images", "must be >= 0 (0: all)");
  checked("formats", [&] { (void)c.format_list(); });
  check_range(c.tolerance >= 0 && c.tolerance < 1, origin, "tolerance", "must be in [0, 1)");
  check_range(c.eval.images >= 0, origin, "eval.images", "must be >= 0 (0: the whole test split)");
  check_range(c.eval.batch >= 1 && c.eval.batch <= 65536, origin, "eval.batch",
              "must be in [1, 65536]");
  check_range(c.backend == "auto" || c.backend == "dnnl" || c.backend == "portable", origin,
              "backend", "must be auto, dnnl or portable");
  check_range(c.threads >= 0 && c.threads <= 1024, origin, "threads",
              "must be in [0, 1024] (0: all cores)");
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
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail(origin, ": not valid JSON (", e.what(), ")");
  }
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
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read run config ", path, "; check the path (docs/run.md shows the format)");
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) fail("cannot read run config ", path);
  return parse_run_config(s.str(), path, budget_override);
}

nlohmann::json run_config_to_json(const RunConfig& c) {
  json j;
  j["format"] = kRunConfigFormat;
  j["budget"] = c.budget;
  j["dataset"] = c.dataset;
  j["spaces"] = c.spaces;
  j["search"] = {{"metric", c.search.metric},     {"grid_from", c.search.grid_from},
                 {"grid_to", c.search.grid_to},   {"n_init", c.search.n_init},
                 {"n_steps", c.search.n_steps},   {"n_eval", c.search.n_eval},
                 {"clusters", c.search.clusters}, {"n_rescore", c.search.n_rescore},
                 {"n_val", c.search.n_val}};
  j["candidates"] = {{"per_window", c.candidates.per_window},
                     {"max_flops", c.candidates.max_flops},
                     {"max_models", c.candidates.max_models},
                     {"per_constraint", c.candidates.per_constraint},
                     {"references", c.candidates.references}};
  j["calibration"] = {{"profile", c.calibration.profile},
                      {"models", c.calibration.models},
                      {"repeats", c.calibration.repeats},
                      {"rounds", c.calibration.rounds},
                      {"threads", c.calibration.threads}};
  j["training"] = recipe_json(c);
  j["formats"] = c.formats;
  j["tolerance"] = c.tolerance;
  j["eval"] = {{"images", c.eval.images}, {"batch", c.eval.batch}};
  j["constraints"] = json::array();
  for (const Constraint& k : c.constraints) {
    json o = {{"name", k.name}, {"max_weight_bytes", k.max_weight_bytes}};
    if (k.max_latency_ms) o["max_latency_ms"] = *k.max_latency_ms;
    j["constraints"].push_back(o);
  }
  j["seeds"] = {{"search", c.seeds.search},
                {"select", c.seeds.select},
                {"train", c.seeds.train},
                {"calibrate", c.seeds.calibrate}};
  j["backend"] = c.backend;
  j["threads"] = c.threads;
  return j;
}

nlohmann::json recipe_json(const RunConfig& c) {
  const TrainingSettings& t = c.training;
  return {{"epochs", t.epochs},
          {"batch", t.batch},
          {"optimizer", t.optimizer},
          {"lr", t.lr},
          {"momentum", t.momentum},
          {"nesterov", t.nesterov},
          {"weight_decay", t.weight_decay},
          {"schedule", t.schedule},
          {"warmup_epochs", t.warmup_epochs},
          {"augment", t.augment},
          {"train_images", t.train_images}};
}

}  // namespace iotnas::apps
