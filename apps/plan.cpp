#include "apps/plan.hpp"

#include <nlohmann/json.hpp>
#include <utility>

namespace iotnas::apps {

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

}  // namespace iotnas::apps
