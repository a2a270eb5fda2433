// Calibration: measurement statistics, latency models on synthetic laws, profiles (round trip,
// resume, bad input), predictions outside the calibrated range.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>

#include "calib/boosted_trees.hpp"
#include "calib/fit.hpp"
#include "calib/latency_model.hpp"
#include "calib/measure.hpp"
#include "calib/profile.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {
namespace {

// A small conv net: conv(c1, k) relu pool conv(c2, 3) [bn] relu [1x1 conv] gap dense.
ModelSpec net(int c1, int k, int c2, bool bn, bool pointwise, Shape input = {1, 28, 28}) {
  ModelSpec s;
  s.name = "net[" + std::to_string(c1) + "," + std::to_string(k) + "," + std::to_string(c2) + "," +
           std::to_string(int(bn)) + "," + std::to_string(int(pointwise)) + "]";
  s.input = input;
  s.layers.push_back(conv("c1", c1, k));
  s.layers.push_back(relu("r1"));
  s.layers.push_back(max_pool("p1", 2));
  s.layers.push_back(conv("c2", c2, 3));
  if (bn) s.layers.push_back(batch_norm("b2"));
  s.layers.push_back(relu("r2"));
  if (pointwise) s.layers.push_back(conv("c3", c2, 1));
  s.layers.push_back(global_avg_pool("gap"));
  s.layers.push_back(dense("fc", 10));
  return s;
}

std::vector<ModelSpec> family(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<ModelSpec> out;
  const int ks[] = {1, 3, 5, 7};
  for (int i = 0; i < n; ++i)
    out.push_back(
        net(1 + int(rng() % 64), ks[rng() % 4], 1 + int(rng() % 96), rng() % 2, rng() % 2));
  return out;
}

std::vector<ModelFeatures> features_of(const std::vector<ModelSpec>& specs) {
  std::vector<ModelFeatures> f;
  for (const auto& s : specs) f.push_back(model_features(s));
  return f;
}

TEST(CalibMeasure, SummaryStatistics) {
  const Measurement m = summarize_times({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(m.mean_ms, 2.5);
  EXPECT_DOUBLE_EQ(m.median_ms, 2.5);
  EXPECT_DOUBLE_EQ(m.min_ms, 1);
  EXPECT_DOUBLE_EQ(m.max_ms, 4);
  EXPECT_DOUBLE_EQ(m.spread, (3.25 - 1.75) / 2.5);
  EXPECT_EQ(m.repeats, 4);
  EXPECT_DOUBLE_EQ(summarize_times({5, 1, 3}).median_ms, 3);
}

TEST(CalibMeasure, TimesATinyModel) {
  MeasureConfig cfg;
  cfg.backend = BackendKind::portable;
  cfg.repeats = 5;
  cfg.warmup_ms = 0;
  const Measurement m = measure_latency(net(4, 3, 8, true, false), cfg);
  EXPECT_EQ(m.repeats, 5);
  EXPECT_GT(m.min_ms, 0);
  EXPECT_LE(m.min_ms, m.median_ms);
  EXPECT_LE(m.median_ms, m.max_ms);
  EXPECT_GE(m.attempts, 1);
  EXPECT_LE(m.attempts, cfg.max_attempts);
  EXPECT_EQ(m.noisy, m.spread > cfg.noise_threshold);
  // Per-layer times: every computing layer of the folded graph (the batch norm folds into c2),
  // named as the model names them, and they attach to the model's layer units.
  ASSERT_FALSE(m.layer_ms.empty());
  for (const char* name : {"c1", "c2", "fc"}) {
    bool found = false;
    for (const auto& [layer, ms] : m.layer_ms) {
      found |= layer == name || layer == std::string("r") + name[1];  // fused relu reports
      EXPECT_GE(ms, 0) << layer;
    }
    EXPECT_TRUE(found) << name;
  }
  ModelFeatures f = model_features(net(4, 3, 8, true, false));
  EXPECT_TRUE(attach_layer_times(f, m.layer_ms));
  for (const auto& u : f.units) EXPECT_TRUE(std::isfinite(u.ms));
  // Times of another model's layers do not attach.
  ModelFeatures other = model_features(net(4, 3, 8, true, true));
  auto foreign = m.layer_ms;
  foreign["not_a_layer"] = 0.001;
  EXPECT_FALSE(attach_layer_times(other, foreign));
  EXPECT_GT(m.probe_ms, 0);  // the speed probe ran just before
  cfg.layer_times = false;
  cfg.speed_probe = false;
  const Measurement bare = measure_latency(net(4, 3, 8, true, false), cfg);
  EXPECT_TRUE(bare.layer_ms.empty());
  EXPECT_EQ(bare.probe_ms, 0);
  EXPECT_GT(time_speed_probe(BackendKind::portable), 0);
}

TEST(CalibMeasure, DeviceDescription) {
  const auto d = describe_device(BackendKind::portable, 3);
  EXPECT_EQ(d["backend"], "portable");
  EXPECT_EQ(d["threads"], 3);
  EXPECT_TRUE(d.contains("cpu"));
  EXPECT_TRUE(d.contains("governor"));
  EXPECT_TRUE(d.contains("iotnas_version"));
  EXPECT_TRUE(d["build"].contains("dnnl"));
  EXPECT_TRUE(same_device_setup(d, d));
  EXPECT_FALSE(same_device_setup(d, describe_device(BackendKind::portable, 1)));
}

TEST(CalibModels, LogLogRecoversASyntheticLaw) {
  const auto specs = family(40, 7);
  const auto x = features_of(specs);
  const double a = -4.2, b = 0.83, c = 0.11;
  std::vector<double> y;
  for (const auto& f : x)
    y.push_back(std::pow(10.0, a + b * std::log10(f.flops) + c * std::log10(f.params)));
  const LatencyModel m = fit_latency_model(ModelKind::loglog_global, x, y);
  ASSERT_EQ(m.global.size(), 3u);
  EXPECT_NEAR(m.global[0], a, 1e-8);
  EXPECT_NEAR(m.global[1], b, 1e-8);
  EXPECT_NEAR(m.global[2], c, 1e-8);
  const CvResult cv = cross_validate(ModelKind::loglog_global, x, y, 5, 3);
  EXPECT_NEAR(cv.scores.r2, 1, 1e-9);
  EXPECT_DOUBLE_EQ(cv.scores.within_10pct, 1);
  EXPECT_LT(cv.scores.mdape, 1e-8);
}

TEST(CalibModels, PerSpaceLogLogRecoversOneLawPerSpace) {
  auto x = features_of(family(60, 11));
  std::vector<double> y;
  for (size_t i = 0; i < x.size(); ++i) {
    const bool first = i % 2 == 0;
    x[i].space = first ? "alpha" : "beta";
    y.push_back(
        std::pow(10.0, (first ? -3.0 : -2.0) + (first ? 0.9 : 0.6) * std::log10(x[i].flops)));
  }
  const LatencyModel m = fit_latency_model(ModelKind::loglog_space, x, y);
  ASSERT_EQ(m.spaces.size(), 2u);
  EXPECT_NEAR(m.spaces.at("alpha")[1], 0.9, 1e-8);
  EXPECT_NEAR(m.spaces.at("beta")[0], -2.0, 1e-8);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(predict_ms(m, x[i]) / y[i], 1, 1e-8);
}

TEST(CalibModels, OperatorModelRecoversPerLayerCosts) {
  const auto x = features_of(family(80, 5));
  const auto& names = operator_feature_names();
  std::vector<double> w(names.size(), 0.0);
  auto set = [&](const std::string& n, double v) {
    for (size_t k = 0; k < names.size(); ++k)
      if (names[k] == n) w[k] = v;
  };
  set("conv.count", 0.004);
  set("conv.flops_M", 0.05);
  set("conv1x1.flops_M", 0.08);
  set("conv1x1.count", 0.002);
  set("pool.in_K", 0.0003);
  set("relu.elems_K", 0.0002);
  set("dense.count", 0.001);
  set("model.count", 0.01);
  std::vector<double> y;
  for (const auto& f : x) {
    double s = 0;
    for (size_t k = 0; k < w.size(); ++k) s += w[k] * f.op_sums[k];
    y.push_back(s);
  }
  const CvResult cv = cross_validate(ModelKind::operator_sum, x, y, 5, 1);
  EXPECT_GT(cv.scores.r2, 0.999);
  EXPECT_DOUBLE_EQ(cv.scores.within_10pct, 1);
  const LatencyModel m = fit_latency_model(ModelKind::operator_sum, x, y);
  for (double v : m.op_weights) EXPECT_GE(v, 0);
  // A layer far larger than any calibrated one warns even when the totals are in range.
  ModelSpec wide = net(4, 3, 8, false, false);
  wide.layers.insert(wide.layers.end() - 1, dense("fc0", 2000));
  const auto wide_warnings = predict(m, model_features(wide)).warnings;
  bool dense_warned = false;
  for (const auto& w : wide_warnings) dense_warned |= w.find("dense.") != std::string::npos;
  EXPECT_TRUE(dense_warned);
  // Ops no model has are reported as unused, and a model with one warns.
  EXPECT_NE(std::find(m.unused_ops.begin(), m.unused_ops.end(), "add"), m.unused_ops.end());
}

// Synthetic per-layer times from a known law: each unit's time depends on its op and shape only.
double law_unit_ms(const LayerUnit& u) {
  const double work = std::exp2(u.log_work);
  return u.op == int(Op::conv2d) ? 2e-4 + (u.kind & 8 ? 3e-9 : 1e-9) * work : 1e-4 + 1e-9 * work;
}
std::vector<double> with_law_times(std::vector<ModelFeatures>& x) {
  std::vector<double> y;
  for (auto& f : x) {
    double sum = 0.003;  // per-model overhead
    for (auto& u : f.units) sum += u.ms = law_unit_ms(u);
    y.push_back(sum);
  }
  return y;
}

TEST(CalibModels, LayerModelsLearnFromLayerTimes) {
  auto x = features_of(family(80, 21));
  const std::vector<double> y = with_law_times(x);
  auto test = features_of(family(30, 22));
  const std::vector<double> want = with_law_times(test);
  for (ModelKind k : {ModelKind::layer_knn, ModelKind::layer_gbm, ModelKind::blend}) {
    const LatencyModel m = fit_latency_model(k, x, y);
    std::vector<double> got;
    for (const auto& f : test) got.push_back(predict_ms(m, f));
    const Scores s = score(want, got);
    EXPECT_GE(s.within_10pct, 0.9) << model_kind_name(k);
    // The fitted model survives JSON.
    const LatencyModel back = latency_model_from_json(latency_model_to_json(m), "test");
    EXPECT_EQ(back.kind, k);
    for (size_t i = 0; i < test.size(); ++i)
      EXPECT_NEAR(predict_ms(back, test[i]), got[i], 1e-9 * got[i]) << model_kind_name(k);
  }
  // Without layer times these kinds cannot fit, and say what to do.
  auto bare = features_of(family(20, 23));
  std::vector<double> ones(bare.size(), 1.0);
  for (ModelKind k : {ModelKind::layer_knn, ModelKind::layer_gbm}) {
    try {
      fit_latency_model(k, bare, ones);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("per-layer times"), std::string::npos) << e.what();
    }
  }
  // A layer of a kind never calibrated (a depthwise convolution) warns.
  ModelSpec dw = net(8, 3, 8, false, false);
  dw.layers[3].groups = 8;  // c2: 8 -> 8 channels, depthwise
  for (ModelKind k : {ModelKind::layer_knn, ModelKind::layer_gbm}) {
    const Prediction p = predict(fit_latency_model(k, x, y), model_features(dw));
    bool warned = false;
    for (const auto& w : p.warnings)
      warned |= w.find("no calibrated layer of the same kind") != std::string::npos;
    EXPECT_TRUE(warned) << model_kind_name(k);
  }
}

// Layers of a model whose data outgrows a cache run at half speed: only a model that sees the
// footprint can learn it. layer_gbm does; operator_sum, blind to it, cannot.
TEST(CalibModels, LayerGbmLearnsAFootprintStep) {
  auto law = [](std::vector<ModelFeatures>& x) {
    std::vector<double> y;
    for (auto& f : x) {
      double sum = 0.002;
      for (auto& u : f.units) {
        const double slow = u.footprint > 18.5 ? 2.0 : 1.0;
        sum += u.ms = slow * (1e-4 + 2e-9 * std::exp2(u.log_work));
      }
      y.push_back(sum);
    }
    return y;
  };
  auto x = features_of(family(150, 31));
  const std::vector<double> y = law(x);
  auto test = features_of(family(40, 32));
  const std::vector<double> want = law(test);
  int slow = 0;
  for (const auto& f : test) slow += f.units[0].footprint > 18.5;
  ASSERT_GT(slow, 5);  // both sides of the step are tested
  ASSERT_LT(slow, 35);
  auto held_out = [&](ModelKind k) {
    const LatencyModel m = fit_latency_model(k, x, y);
    std::vector<double> got;
    for (const auto& f : test) got.push_back(predict_ms(m, f));
    return score(want, got).within_10pct;
  };
  EXPECT_GE(held_out(ModelKind::layer_gbm), 0.9);
  EXPECT_LT(held_out(ModelKind::operator_sum), 0.8);
}

TEST(CalibModels, BoostedTreesFitAStepAndALine) {
  // y = 3 [a > 0.5] + b on a grid of (a, b); c is noise the trees must ignore.
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  auto rows = [&](int n, std::vector<double>& x, std::vector<double>& y) {
    for (int i = 0; i < n; ++i) {
      const double a = u(rng), b = u(rng), c = u(rng);
      x.insert(x.end(), {a, b, c});
      y.push_back(3.0 * (a > 0.5) + b);
    }
  };
  std::vector<double> x, y, tx, ty;
  rows(2000, x, y);
  rows(200, tx, ty);
  BoostedTrees t;
  t.fit(x, 3, y);
  double worst = 0;
  int near = 0;
  for (size_t i = 0; i < ty.size(); ++i) {
    const double e = std::abs(t.predict({&tx[3 * i], 3}) - ty[i]);
    worst = std::max(worst, std::abs(tx[3 * i] - 0.5) > 0.02 ? e : 0.0);
    near += e < 0.1;
  }
  EXPECT_LT(worst, 0.3);  // the step is found (away from its edge)
  EXPECT_GE(near, 180);   // the line is followed
  // Deterministic for a seed; the JSON round trip predicts the same to the last bit.
  BoostedTrees again;
  again.fit(x, 3, y);
  const BoostedTrees back = BoostedTrees::from_json(t.to_json(), 3, "test");
  for (size_t i = 0; i < ty.size(); ++i) {
    EXPECT_EQ(again.predict({&tx[3 * i], 3}), t.predict({&tx[3 * i], 3}));
    EXPECT_EQ(back.predict({&tx[3 * i], 3}), t.predict({&tx[3 * i], 3}));
  }
}

TEST(CalibModels, BoostedTreesBadInput) {
  BoostedTrees t;
  EXPECT_THROW(t.fit({}, 3, {}), Error);
  const std::vector<double> x = {1, 2, NAN}, y = {1};
  EXPECT_THROW(t.fit(x, 3, y), Error);
  const std::vector<double> x2 = {1, 2, 3, 4}, y2 = {1};
  EXPECT_THROW(t.fit(x2, 3, y2), Error);  // 4 values are not rows of 3
  std::vector<double> gx, gy;
  for (int i = 0; i < 50; ++i) gx.push_back(i), gy.push_back(i % 7);
  t.fit(gx, 1, gy);
  nlohmann::json j = t.to_json();
  EXPECT_THROW(BoostedTrees::from_json(j, 2, "m.json"), Error);  // other feature count
  nlohmann::json cyclic = j;
  cyclic["trees"][0][0] = {0, 0.5, 0, 0};  // the root its own child: a walk would never end
  EXPECT_THROW(BoostedTrees::from_json(cyclic, 1, "m.json"), Error);
  nlohmann::json odd = j;
  odd["trees"][0][0] = {1, 2};
  EXPECT_THROW(BoostedTrees::from_json(odd, 1, "m.json"), Error);
  try {
    BoostedTrees::from_json(nlohmann::json::object(), 1, "m.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.json"), std::string::npos) << e.what();
  }
}

TEST(CalibModels, PredictionOutsideTheRangeWarns) {
  const auto specs = family(30, 9);
  auto x = features_of(specs);
  const std::vector<double> y = with_law_times(x);
  for (ModelKind k : kModelKinds) {
    const LatencyModel m = fit_latency_model(k, x, y);
    EXPECT_TRUE(predict(m, x[3]).warnings.empty()) << model_kind_name(k);
    const Prediction big = predict(m, model_features(net(256, 7, 512, false, true)));
    EXPECT_FALSE(big.warnings.empty()) << model_kind_name(k);
    EXPECT_NE(big.warnings[0].find("outside the calibrated range"), std::string::npos);
    EXPECT_GT(big.latency_ms, 0);
  }
}

TEST(CalibModels, ScoresAndNoiseCeiling) {
  const std::vector<double> measured = {1, 2, 4, 8}, predicted = {1.05, 2.5, 4, 7.5};
  const Scores s = score(measured, predicted);
  EXPECT_DOUBLE_EQ(s.within_10pct, 0.75);
  EXPECT_NEAR(s.mdape, (0.05 + 0.0625) / 2, 1e-12);
  EXPECT_LT(s.r2, 1);
  EXPECT_DOUBLE_EQ(
      noise_within_10pct(std::vector<double>{1, 1, 1}, std::vector<double>{1.09, 0.8, 1}), 2.0 / 3);
}

TEST(CalibModels, TooFewPointsAndBadSpec) {
  const auto x = features_of(family(5, 1));
  const std::vector<double> y(5, 1.0);
  try {
    fit_latency_model(ModelKind::loglog_global, x, y);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too few"), std::string::npos) << e.what();
  }
  ModelSpec bad = net(4, 3, 8, false, false);
  bad.layers.push_back(add("sum", {"fc", "c1"}));  // [10,1,1] + [4,28,28]
  EXPECT_THROW(model_features(bad), Error);
}

// A profile of `n` synthetic models with two measurements each.
Profile synthetic_profile(int n) {
  Profile p;
  p.devices.push_back(describe_device(BackendKind::portable, 1));
  p.created = p.updated = "2026-12-01T00:00:00Z";
  for (const auto& s : family(n, 21)) {
    if (p.find(s.name) >= 0) continue;
    ProfileModel m;
    m.id = s.name;
    m.space = "plain";
    m.spec = s;
    const Analytics a = analyze(s);
    m.params = a.params;
    m.inference_params = a.inference_params;
    m.flops = a.flops;
    const double lat = 2e-6 * double(a.flops) + 0.005;
    for (int r = 1; r <= 2; ++r) {
      Measurement x = summarize_times({lat, lat * (r == 1 ? 1.02 : 1.0), lat * 1.01});
      x.round = r;
      x.time = "2026-12-01T00:00:0" + std::to_string(r) + "Z";
      m.measurements.push_back(x);
    }
    p.models.push_back(std::move(m));
  }
  return p;
}

TEST(CalibProfile, RoundTrip) {
  Profile p = synthetic_profile(20);
  const FitReport r = fit_profile(p);
  p.fit = fit_report_json(r, {});
  const std::string text = profile_to_json(p).dump();
  const Profile q = parse_profile(text, "mem");
  EXPECT_EQ(profile_to_json(q).dump(), text);
  ASSERT_EQ(q.models.size(), p.models.size());
  EXPECT_EQ(q.models[0].measurements[1].median_ms, p.models[0].measurements[1].median_ms);
  const LatencyModel m = fitted_model(q, "mem");
  EXPECT_EQ(m.kind, r.best_model.kind);
  const auto f = model_features(p.models[2].spec);
  EXPECT_DOUBLE_EQ(predict_ms(m, f), predict_ms(r.best_model, f));
  // Synthetic latencies linear in FLOPs: the best model is within 10% on every held-out model.
  EXPECT_GT(r.models[size_t(r.best)].scores.within_10pct, 0.95);
  EXPECT_DOUBLE_EQ(r.noise_within_10pct, 1);
  // No layer times (a profile of an earlier version): the layer models are skipped, not failed.
  EXPECT_EQ(r.layer_timed, 0);
  EXPECT_EQ(r.models.size(), 3u);
  EXPECT_EQ(r.skipped, (std::vector<std::string>{"layer_knn", "layer_gbm", "blend"}));

  // With layer times they are fitted, and the times survive the round trip.
  for (auto& m : p.models)
    for (auto& x : m.measurements)
      x.layer_ms = {{"", 0.001},
                    {"r1", 0.5 * x.median_ms},
                    {"c2", 0.3 * x.median_ms},
                    {"fc", 0.2 * x.median_ms}};
  const FitReport rl = fit_profile(p);
  EXPECT_EQ(rl.layer_timed, int(p.models.size()));
  EXPECT_EQ(rl.models.size(), 6u);
  EXPECT_TRUE(rl.skipped.empty());
  const Profile ql = parse_profile(profile_to_json(p).dump(), "mem");
  EXPECT_EQ(ql.models[1].measurements[0].layer_ms, p.models[1].measurements[0].layer_ms);

  // Speed probes: a measurement taken while the machine ran at half speed (probe twice the
  // reference) counts at the reference speed, and the scaled noise ceiling sees through it.
  for (auto& m : p.models) {
    m.measurements[0].probe_ms = 0.02;
    m.measurements[1].probe_ms = 0.04;
    m.measurements[1].median_ms *= 2;
    m.measurements[1].min_ms *= 2;
  }
  EXPECT_DOUBLE_EQ(p.probe_ref(), 0.02);
  const ProfileModel& pm = p.models[0];
  EXPECT_DOUBLE_EQ(ProfileModel::value(pm.measurements[1], false, 0.02),
                   pm.measurements[1].median_ms / 2);
  EXPECT_DOUBLE_EQ(pm.latency_ms(false, 0), pm.measurements[0].median_ms);
  const FitReport rs = fit_profile(p);
  EXPECT_DOUBLE_EQ(rs.probe_ref_ms, 0.02);
  EXPECT_DOUBLE_EQ(rs.noise_within_10pct, 1);
  EXPECT_DOUBLE_EQ(rs.noise_within_10pct_raw, 0);
  FitOptions raw;
  raw.speed_normalize = false;
  EXPECT_EQ(fit_profile(p, raw).probe_ref_ms, 0);
  const Profile qp = parse_profile(profile_to_json(p).dump(), "mem");
  EXPECT_EQ(qp.models[2].measurements[1].probe_ms, 0.04);

  // One probe caught in a hiccup (3x) does not move its measurement: the neighbours' median
  // stands in for it.
  Profile h = p;
  h.models[4].measurements[0].probe_ms = 0.06;
  h.smooth_probes();
  EXPECT_DOUBLE_EQ(h.models[4].measurements[0].probe_local_ms, 0.02);
  EXPECT_DOUBLE_EQ(ProfileModel::value(h.models[4].measurements[0], false, 0.02),
                   h.models[4].measurements[0].median_ms);
  EXPECT_DOUBLE_EQ(fit_profile(h).noise_within_10pct, 1);
}

void expect_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    FAIL() << "no error; expected one mentioning '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(CalibProfile, BadInput) {
  expect_error([] { parse_profile("", "p.json"); }, "is empty");
  expect_error([] { parse_profile("{\"format\": \"iotnas-calib-pro", "p.json"); },
               "not valid JSON");
  nlohmann::json j = profile_to_json(synthetic_profile(12));
  j["format"] = "iotnas-calib-profile/0";
  expect_error([&] { parse_profile(j.dump(), "p.json"); }, "format 'iotnas-calib-profile/0'");
  j["format"] = kProfileFormat;
  j["models"][0]["measurements"][0]["layer_ms"] = {{"c1", -1.0}};
  expect_error([&] { parse_profile(j.dump(), "p.json"); }, "layer_ms of 'c1'");
  j["models"][0]["measurements"][0]["layer_ms"] = "fast";
  expect_error([&] { parse_profile(j.dump(), "p.json"); }, "layer_ms");
  j["models"][0]["measurements"][0].erase("layer_ms");
  j["models"][0]["measurements"][0]["probe_ms"] = -2;
  expect_error([&] { parse_profile(j.dump(), "p.json"); }, "probe_ms");
  j["models"][0]["measurements"][0]["probe_ms"] = "slow";
  expect_error([&] { parse_profile(j.dump(), "p.json"); }, "probe_ms");
  j["models"][0]["measurements"][0].erase("probe_ms");
  j["models"][0].erase("flops");
  expect_error([&] { parse_profile(j.dump(), "p.json"); }, "missing field 'flops'");
  // Too few points to fit.
  expect_error([] { fit_profile(synthetic_profile(6)); }, "needs at least");
  // A model whose spec fails shape inference names the model.
  Profile p = synthetic_profile(12);
  p.models[1].spec.layers.push_back(add("sum", {"fc", "c1"}));
  expect_error([&] { fit_profile(p); }, p.models[1].id);
  // Unfitted profile.
  expect_error([] { fitted_model(synthetic_profile(3), "p.json"); }, "calib fit");
}

// Every key the profile reader reads: a wrong JSON type or an out-of-range size is an
// iotnas::Error naming the file and the key (these were nlohmann type errors: exit status 70, or
// were silently truncated: a device index of 2^32 read as 0).
TEST(CalibProfile, EveryKeyIsReadStrictly) {
  using nlohmann::json;
  const json good = profile_to_json(synthetic_profile(12));
  ASSERT_NO_THROW(parse_profile(good.dump(), "p.json"));
  const double huge = 1099511627776.0;  // 2^40
  struct Case {
    const char* pointer;  // JSON pointer of the key to change
    json value;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"/format", 5, "\"format\" must be a string"},
      {"/created", 5, "\"created\""},
      {"/updated", json::array(), "\"updated\""},
      {"/settings/input", "x", "settings.input"},
      {"/settings/input", json::array({1, huge, 28}), "settings.input"},
      {"/settings/input", json::array({1, 28}), "settings.input"},
      {"/settings/classes", huge, "settings.classes"},
      {"/settings/classes", "ten", "settings.classes"},
      {"/settings/backend", 1, "settings.backend"},
      {"/settings/warmup_ms", "x", "settings.warmup_ms"},
      {"/settings/threads", 0, "settings.threads"},
      {"/settings/threads", huge, "settings.threads"},
      {"/settings/repeats", 1e9, "settings.repeats"},
      {"/settings/seed", -1, "settings.seed"},
      {"/devices", json::object(), "devices"},
      {"/devices/0", 5, "devices[0]"},
      {"/devices/0/cpu", 5, "devices[0].cpu"},
      {"/devices/0/threads", "one", "devices[0].threads"},
      {"/models", 5, "models"},
      {"/models/0", 5, "models[0]"},
      {"/models/0/id", 5, "models[0].id"},
      {"/models/0/space", 5, "models[0].space"},
      {"/models/0/vars", "x", "models[0].vars"},
      {"/models/0/vars", json::array({1, huge}), "models[0].vars"},
      {"/models/0/params", -1, "models[0].params"},
      {"/models/0/params", "many", "models[0].params"},
      {"/models/0/inference_params", 1.5, "models[0].inference_params"},
      {"/models/0/flops", json::array(), "models[0].flops"},
      {"/models/0/measurements", 5, "models[0].measurements"},
      {"/models/0/measurements/0", 5, "models[0].measurements[0]"},
      {"/models/0/measurements/0/round", huge, "models[0].measurements[0].round"},
      {"/models/0/measurements/0/device", 4294967296.0, "device"},
      {"/models/0/measurements/0/device", 3, "device index 3"},
      {"/models/0/measurements/0/mean_ms", "x", "models[0].measurements[0].mean_ms"},
      {"/models/0/measurements/0/max_ms", -1, "models[0].measurements[0].max_ms"},
      {"/models/0/measurements/0/spread", "x", "models[0].measurements[0].spread"},
      {"/models/0/measurements/0/repeats", 0, "models[0].measurements[0].repeats"},
      {"/models/0/measurements/0/attempts", "x", "models[0].measurements[0].attempts"},
      {"/models/0/measurements/0/noisy", 1, "models[0].measurements[0].noisy"},
      {"/models/0/measurements/0/time", 5, "models[0].measurements[0].time"},
  };
  for (const Case& c : cases) {
    json j = good;
    j[json::json_pointer(c.pointer)] = c.value;
    try {
      parse_profile(j.dump(), "p.json");
      ADD_FAILURE() << c.pointer << " = " << c.value.dump() << ": no error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("p.json"), std::string::npos) << what;
      EXPECT_NE(what.find(c.needle), std::string::npos) << c.pointer << ": " << what;
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.pointer << " = " << c.value.dump() << ": not an input error: " << e.what();
    }
  }
  // Optional keys may be absent; keys the reader does not use are not checked.
  json j = good;
  j["models"][0].erase("space");
  j["models"][0].erase("vars");
  j["models"][0]["measurements"][0].erase("attempts");
  j["devices"][0]["isa"] = 5;
  EXPECT_NO_THROW(parse_profile(j.dump(), "p.json"));
}

// A saved latency model is read as strictly: indices are not truncated (a tree feature of 2^40
// was read as feature 0), and a model that gives no finite latency predicts none (NaN), never
// "inf ms".
TEST(CalibProfile, SavedLatencyModelsAreCheckedAndNeverPredictInfinity) {
  using nlohmann::json;
  const json node = json::array({1099511627776LL, 0.5, 1, 2});  // feature 2^40
  const json trees = {
      {"base", 0.0}, {"features", 3}, {"trees", json::array({json::array({node, {0.1}, {0.2}})})}};
  expect_error([&] { BoostedTrees::from_json(trees, 3, "p.json"); }, "feature 1099511627776");
  json ok = trees;
  ok["trees"][0][0][0] = 2;
  EXPECT_NO_THROW(BoostedTrees::from_json(ok, 3, "p.json"));
  ok["features"] = 4294967299LL;  // 2^32 + 3
  expect_error([&] { BoostedTrees::from_json(ok, 3, "p.json"); }, "features");
  ok["features"] = 3;
  ok["trees"][0][0][2] = 4294967297LL;  // a child of 2^32 + 1
  expect_error([&] { BoostedTrees::from_json(ok, 3, "p.json"); }, "children");

  json knn = {
      {"kind", "layer_knn"},
      {"models", 10},
      {"range", {{"params", {1, 2}}, {"flops", {1, 2}}}},
      {"layers", json::array({json::array({4294967296LL, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0.1})})},
      {"slopes", json::array()},
      {"a_ms", 0.0},
      {"b", 1.0}};
  expect_error([&] { latency_model_from_json(knn, "p.json"); }, "op or kind");

  json loglog = {{"kind", "loglog_global"},
                 {"models", 10},
                 {"range", {{"params", {1, 2}}, {"flops", {1, 2}}}},
                 {"global", {0.0, 400.0, 0.0}}};  // 10^(400 log10 FLOPs): overflows
  const LatencyModel m = latency_model_from_json(loglog, "p.json");
  const ModelFeatures f = model_features(synthetic_profile(1).models[0].spec);
  EXPECT_TRUE(std::isnan(predict_ms(m, f)));
  EXPECT_TRUE(std::isnan(predict(m, f).latency_ms));
  loglog["global"] = {0.0, 1.0, 0.0};
  EXPECT_TRUE(std::isfinite(predict_ms(latency_model_from_json(loglog, "p.json"), f)));
}

TEST(CalibProfile, MeasureResumesAndKeepsMeasurements) {
  MeasureConfig cfg;
  cfg.backend = BackendKind::portable;
  cfg.repeats = 3;
  cfg.warmup = 1;
  cfg.warmup_ms = 0;
  std::vector<Candidate> plan;
  for (int c : {2, 3, 4}) plan.push_back({"plain", {c}, net(c, 3, c, false, false)});
  Profile p;
  p.settings = settings_for(cfg, {1, 28, 28}, 10);
  MeasureRun run;
  run.rounds = 1;
  int saves = 0, calls = 0;
  ASSERT_TRUE(measure_profile(
      p, plan, cfg, run, [&](const MeasureProgress&) { ++calls; }, [&] { ++saves; }));
  EXPECT_EQ(calls, 3);
  EXPECT_GE(saves, 1);
  const double first = p.models[0].measurements[0].median_ms;
  // Through JSON, as a rerun would see it; then the second round only.
  Profile q = parse_profile(profile_to_json(p).dump(), "mem");
  check_same_settings(q, settings_for(cfg, {1, 28, 28}, 10), "mem");
  run.rounds = 2;
  calls = 0;
  ASSERT_TRUE(measure_profile(q, plan, cfg, run, [&](const MeasureProgress&) { ++calls; }, {}));
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(q.models[0].measurements.size(), 2u);
  EXPECT_EQ(q.models[0].measurements[0].median_ms, first);
  EXPECT_EQ(q.models[0].measurements[1].round, 2);
  EXPECT_EQ(q.devices.size(), 1u);
  // Nothing left to do.
  calls = 0;
  measure_profile(q, plan, cfg, run, [&](const MeasureProgress&) { ++calls; }, {});
  EXPECT_EQ(calls, 0);
  // A stop request before the first model stops at once.
  std::atomic<bool> stop{true};
  run.rounds = 3;
  run.stop = &stop;
  EXPECT_FALSE(measure_profile(q, plan, cfg, run, {}, {}));
  // Other settings: refused.
  MeasureConfig other = cfg;
  other.repeats = 7;
  expect_error(
      [&] {
        check_same_settings(q, settings_for(other, {1, 28, 28}, 10), "mem");
      },
      "repeats");
  // Another device setup: refused.
  other = cfg;
  other.threads = 2;
  run.stop = nullptr;
  expect_error([&] { measure_profile(q, plan, other, run, {}, {}); }, "another --out");
}

}  // namespace
}  // namespace iotnas::calib
