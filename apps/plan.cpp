#include "apps/plan.hpp"

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <stdexcept>
#include <utility>

#include "engine/util/files.hpp"
#include "engine/util/hash.hpp"
#include "engine/util/json.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

using nlohmann::json;

const char* kind_name(PlanUnit::Kind k) {
  switch (k) {
    case PlanUnit::Kind::measure:
      return "measure";
    case PlanUnit::Kind::train:
      return "train";
    case PlanUnit::Kind::sweep:
      return "sweep";
  }
  return "?";
}

PlanUnit::Kind parse_kind(const std::string& s, const std::string& origin) {
  if (s == "measure") return PlanUnit::Kind::measure;
  if (s == "train") return PlanUnit::Kind::train;
  if (s == "sweep") return PlanUnit::Kind::sweep;
  fail(origin, ": unknown unit kind '", printable(s), "' (measure, train or sweep)");
}

// The part of a plan document that its hash covers.
json hashed_part(const Plan& plan, const RunConfig& config) {
  json c = run_config_to_json(config);
  c.erase("threads");  // how fast, not what: a rerun may use other threads
  json models = json::array();
  for (const auto& m : plan.models)
    models.push_back({{"space", m.space}, {"vars", m.vars}, {"spec", m.spec_json}});
  json units = json::array();
  for (const auto& u : plan.units)
    units.push_back({{"kind", kind_name(u.kind)}, {"model", u.model}, {"key", u.key}});
  json formats = json::array();
  for (const auto f : plan.formats) formats.push_back(quant::format_name(f));
  return {{"format", kPlanFormat},
          {"config", c},
          {"models", models},
          {"candidates", plan.candidates},
          {"recipe", plan.recipe_json},
          {"eval_key", plan.eval_key},
          {"formats", formats},
          {"units", units},
          {"train_images", plan.train_images},
          {"eval_images", plan.eval_images}};
}

}  // namespace

int add_model(Plan& plan, search::Pick pick) {
  PlanModel m;
  static_cast<search::Pick&>(m) = std::move(pick);
  plan.models.push_back(std::move(m));
  return int(plan.models.size()) - 1;
}

std::string run_key(const std::string& spec_json, const std::string& dataset,
                    const std::string& recipe_json, uint64_t seed) {
  return unit_key({"run", spec_json, dataset, recipe_json, std::to_string(seed)});
}

void plan_measurements(Plan& plan, const std::vector<int>& models) {
  for (int i : models)
    plan.units.push_back({PlanUnit::Kind::measure, i, model_key(plan.models[size_t(i)].spec_json)});
}

void plan_runs(Plan& plan, const std::string& dataset, uint64_t seed) {
  for (int i : plan.candidates) {
    const std::string key =
        run_key(plan.models[size_t(i)].spec_json, dataset, plan.recipe_json, seed);
    plan.units.push_back({PlanUnit::Kind::train, i, key});
    plan.units.push_back({PlanUnit::Kind::sweep, i, key});
  }
}

ModelRow model_row(const search::Pick& p) {
  ModelRow m;
  m.space = p.space;
  m.name = p.spec.name;
  m.vars_json = nlohmann::json(p.vars).dump();
  m.spec_json = p.spec_json;
  m.analytics = p.analytics;
  return m;
}

std::string plan_hash(const Plan& plan, const RunConfig& config) {
  return sha256_hex(hashed_part(plan, config).dump());
}

nlohmann::json plan_to_json(const PlanDoc& doc) {
  json j = hashed_part(doc.plan, doc.config);
  j["config"] = run_config_to_json(doc.config);
  j["hash"] = plan_hash(doc.plan, doc.config);
  j["iotnas_version"] = IOTNAS_VERSION;
  double cost = 0;
  for (int i = 0; i < item_count(doc.plan); ++i) cost += item_cost(doc.plan, doc.config, i);
  j["estimate"] = {{"items", item_count(doc.plan)},
                   {"units", doc.plan.units.size()},
                   {"multiply_accumulates", cost}};
  return j;
}

PlanDoc plan_from_json(const nlohmann::json& j, const std::string& origin) {
  PlanDoc d;
  try {
    if (!j.is_object() || j.value("format", "") != kPlanFormat)
      fail(origin, ": not an iotnas plan (\"format\": \"", kPlanFormat,
           "\" expected); `iotnas run --plan-only --out DIR` writes one");
    d.config = parse_run_config(j.at("config").dump(), origin + " config");
    Plan& p = d.plan;
    for (const auto& m : j.at("models")) {
      search::Pick pick;
      pick.space = m.at("space").get<std::string>();
      pick.vars = m.at("vars").get<std::vector<int>>();
      pick.spec_json = m.at("spec").get<std::string>();
      pick.spec = parse_spec(pick.spec_json, origin + " model " + std::to_string(p.models.size()));
      pick.analytics = analyze(pick.spec);
      add_model(p, std::move(pick));
    }
    const int n = int(p.models.size());
    p.candidates = j.at("candidates").get<std::vector<int>>();
    for (const auto& u : j.at("units")) {
      const PlanUnit unit{parse_kind(u.at("kind").get<std::string>(), origin),
                          u.at("model").get<int>(), u.at("key").get<std::string>()};
      if (unit.model < 0 || unit.model >= n) fail(origin, ": a unit names model ", unit.model);
      p.units.push_back(unit);
    }
    for (int i : p.candidates)
      if (i < 0 || i >= n) fail(origin, ": candidate ", i, " is not one of the ", n, " models");
    p.recipe_json = j.at("recipe").get<std::string>();
    p.eval_key = j.at("eval_key").get<std::string>();
    for (const auto& f : j.at("formats"))
      p.formats.push_back(quant::parse_format(f.get<std::string>()));
    p.train_images = j.at("train_images").get<int64_t>();
    p.eval_images = j.at("eval_images").get<int64_t>();
    p.hash = plan_hash(p, d.config);
    if (j.at("hash").get<std::string>() != p.hash)
      fail(origin,
           ": its hash does not match its content (edited or damaged); write it again with "
           "`iotnas run --plan-only`");
    if (item_count(p) != int(p.candidates.size()))
      fail(origin, ": every candidate needs a train and a sweep unit");
  } catch (const json::exception& e) {
    fail(origin, ": not a valid plan (", e.what(),
         "); write it again with `iotnas run --plan-only`");
  }
  return d;
}

void write_plan(const std::string& dir, const PlanDoc& doc) {
  write_file_atomic((std::filesystem::path(dir) / kPlanFile).string(),
                    plan_to_json(doc).dump(1) + "\n");
}

std::optional<PlanDoc> read_plan(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kPlanFile).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  const json j = parse_json_strict(read_text_file(path, "plan"), path,
                                   "a plan is written by `iotnas run --plan-only`");
  return plan_from_json(j, path);
}

int item_count(const Plan& plan) {
  int n = 0;
  for (const auto& u : plan.units) n += u.kind == PlanUnit::Kind::train;
  return n;
}

const std::string& item_key(const Plan& plan, int item) {
  int n = 0;
  for (const auto& u : plan.units)
    if (u.kind == PlanUnit::Kind::train && n++ == item) return u.key;
  throw std::out_of_range("plan item " + std::to_string(item) + " out of range");
}

double item_cost(const Plan& plan, const RunConfig& config, int item) {
  const double flops = double(plan.models[size_t(plan.candidates[size_t(item)])].analytics.flops);
  const double train = 3.0 * double(plan.train_images) * config.training.epochs;
  const double sweep = double(plan.eval_images) * double(plan.formats.size());
  return flops / 2 * (train + sweep);
}

std::vector<int> shard_items(const Plan& plan, const RunConfig& config, int shard, int shards) {
  const int n = item_count(plan);
  std::vector<int> order(static_cast<size_t>(n), 0);
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> cost(static_cast<size_t>(n), 0.0);
  for (int i = 0; i < n; ++i) cost[size_t(i)] = item_cost(plan, config, i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return cost[a] > cost[b]; });
  std::vector<double> load(size_t(shards), 0);
  std::vector<int> mine;
  for (int i : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    load[size_t(least)] += cost[size_t(i)];
    if (least == shard) mine.push_back(i);
  }
  std::sort(mine.begin(), mine.end());
  return mine;
}

}  // namespace iotnas::apps
