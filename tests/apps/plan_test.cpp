// The plan of a run: models and units with the store keys that say whether each is done.
#include <gtest/gtest.h>

#include "apps/plan.hpp"
#include "engine/reference_models.hpp"

namespace iotnas::apps {
namespace {

search::Pick pick(const std::string& ref) {
  search::Pick p;
  p.space = "reference";
  p.spec = resolve_model(ref, {1, 28, 28}, 10);
  p.spec_json = spec_to_json(p.spec);
  p.analytics = analyze(p.spec);
  return p;
}

TEST(Plan, UnitsCarryTheStoreKeys) {
  Plan plan;
  const int a = add_model(plan, pick("ref:plain-1k"));
  const int b = add_model(plan, pick("ref:plain-14k"));
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(plan.models[1].model_id, 0);
  plan.candidates = {b, a};
  plan.recipe_json = R"({"epochs":1})";
  plan_measurements(plan, {a});
  plan_runs(plan, "fashion-mnist", 4);
  ASSERT_EQ(plan.units.size(), 5u);
  EXPECT_EQ(plan.units[0].kind, PlanUnit::Kind::measure);
  EXPECT_EQ(plan.units[0].key, model_key(plan.models[0].spec_json));
  const std::string key_b =
      unit_key({"run", plan.models[1].spec_json, "fashion-mnist", R"({"epochs":1})", "4"});
  EXPECT_EQ(run_key(plan.models[1].spec_json, "fashion-mnist", plan.recipe_json, 4), key_b);
  EXPECT_EQ(plan.units[1].kind, PlanUnit::Kind::train);
  EXPECT_EQ(plan.units[1].model, b);
  EXPECT_EQ(plan.units[1].key, key_b);
  EXPECT_EQ(plan.units[2].kind, PlanUnit::Kind::sweep);
  EXPECT_EQ(plan.units[2].key, key_b);
  EXPECT_EQ(plan.units[3].model, a);
  EXPECT_EQ(plan.units[4].kind, PlanUnit::Kind::sweep);
  const ModelRow row = model_row(plan.models[0]);
  EXPECT_EQ(row.name, plan.models[0].spec.name);
  EXPECT_EQ(row.vars_json, "[]");
  EXPECT_EQ(row.spec_json, plan.models[0].spec_json);
}

}  // namespace
}  // namespace iotnas::apps
