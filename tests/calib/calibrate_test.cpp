// Calibration inside a run: measure what the caller does not know yet, keep the fastest round,
// choose the latency-model kind by cross-validation, fit.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <map>

#include "calib/calibrate.hpp"

namespace iotnas::calib {
namespace {

// conv(c, k) relu gap dense on a small input: milliseconds to time.
ModelSpec tiny(int c, int k) {
  ModelSpec s;
  s.name = "tiny[" + std::to_string(c) + "," + std::to_string(k) + "]";
  s.input = {1, 12, 12};
  s.layers.push_back(conv("c1", c, k));
  s.layers.push_back(relu("r1"));
  s.layers.push_back(global_avg_pool("gap"));
  s.layers.push_back(dense("fc", 10));
  return s;
}

std::vector<CalibrationModel> tiny_models(int n) {
  std::vector<CalibrationModel> out;
  for (int i = 0; i < n; ++i) out.push_back({tiny(2 + 3 * i, 1 + 2 * (i % 3)), "tiny"});
  return out;
}

MeasureConfig quick_config() {
  CalibrationSettings s;
  s.repeats = 3;
  MeasureConfig mc = measure_config(s, BackendKind::portable, 7);
  mc.warmup = 1;
  mc.warmup_ms = 0;
  return mc;
}

TEST(CalibCalibrate, MeasureConfigTakesWholeModelLatenciesOnly) {
  CalibrationSettings s;
  s.threads = 2;
  s.repeats = 4;
  const MeasureConfig mc = measure_config(s, BackendKind::portable, 9);
  EXPECT_EQ(mc.threads, 2);
  EXPECT_EQ(mc.repeats, 4);
  EXPECT_EQ(mc.seed, 9u);
  EXPECT_FALSE(mc.layer_times);
  EXPECT_FALSE(mc.speed_probe);
}

TEST(CalibCalibrate, MeasuresOnlyWhatIsNotKnownAndFits) {
  const auto models = tiny_models(10);
  std::map<size_t, Measurement> got;
  std::vector<size_t> asked;
  CalibrationHooks h;
  h.known = [&](size_t i) -> std::optional<double> {
    asked.push_back(i);
    if (i % 2 == 0) return 0.5 + double(i);
    return std::nullopt;
  };
  h.measured = [&](size_t i, const Measurement& m) { got[i] = m; };
  const Calibration c = calibrate(models, quick_config(), 2, h);
  EXPECT_EQ(c.measured, 5);
  ASSERT_EQ(asked.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(asked[i], i);
  ASSERT_EQ(got.size(), 5u);
  ASSERT_EQ(c.latency_ms.size(), 10u);
  ASSERT_EQ(c.features.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(c.latency_ms[i], 0.5 + double(i));
    } else {
      EXPECT_EQ(c.latency_ms[i], got.at(i).median_ms);
      EXPECT_EQ(got.at(i).repeats, 3);
    }
    EXPECT_EQ(c.features[i].space, "tiny");
  }
  ASSERT_TRUE(c.model);
  EXPECT_EQ(c.model->kind, ModelKind::loglog_global);  // fewer than 20 models
  EXPECT_EQ(c.model->models, 10);
}

TEST(CalibCalibrate, StopsBetweenModelsAndFitsOnlyWithEnoughLatencies) {
  const auto models = tiny_models(10);
  std::atomic<bool> stop{false};
  CalibrationHooks h;
  h.measuring = [&](size_t i) {
    if (i == 2) stop = true;  // model 2 is still measured; model 3 is not
  };
  h.stop = &stop;
  const Calibration c = calibrate(models, quick_config(), 1, h);
  EXPECT_EQ(c.measured, 3);
  EXPECT_EQ(c.latency_ms.size(), 3u);
  EXPECT_FALSE(c.model);  // fewer than kMinFitModels
  const Calibration none = calibrate(models, quick_config(), 1, h);
  EXPECT_EQ(none.measured, 0);
  EXPECT_TRUE(none.latency_ms.empty());
}

TEST(CalibCalibrate, ChoosesTheKindThatPredictsHeldOutModelsBest) {
  // Two spaces that follow two different laws: one log-log law per space predicts every model.
  std::vector<ModelFeatures> x;
  std::vector<double> y;
  for (int i = 0; i < 40; ++i) {
    ModelFeatures f = model_features(tiny(2 + 2 * i, 1 + 2 * (i % 4)));
    const bool first = i % 2 == 0;
    f.space = first ? "alpha" : "beta";
    y.push_back(std::pow(10.0, (first ? -3.0 : -1.0) + (first ? 0.9 : 0.4) * std::log10(f.flops)));
    x.push_back(std::move(f));
  }
  EXPECT_EQ(choose_latency_kind(x, y, 1), ModelKind::loglog_space);
  // Below 20 models there is no choice.
  EXPECT_EQ(choose_latency_kind(std::span(x).first(19), std::span(y).first(19), 1),
            ModelKind::loglog_global);
}

}  // namespace
}  // namespace iotnas::calib
