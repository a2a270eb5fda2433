// Every latency-model kind fitted on fixed synthetic data predicts, cross-validates and saves as
// the code before the one-file-per-family split did (tests/calib/data/latency_golden.json,
// written by that code with IOTNAS_WRITE_LATENCY_GOLDEN=1, release build on an AVX-512 machine).
// Numbers agree to 1e-9 relative: Eigen's least squares round differently with other vector
// widths and optimisation levels (an unoptimised build differs in the last 4 bits), a changed
// model by far more. A deliberate change of a model rewrites the file and says why in its commit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "calib/latency_model.hpp"
#include "engine/util/hash.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {
namespace {

namespace fs = std::filesystem;

// conv(c1, k) relu pool conv(c2, 3) [bn] relu [1x1 conv | depthwise 3x3] gap dense.
ModelSpec golden_net(int c1, int k, int c2, bool bn, int tail) {
  ModelSpec s;
  s.name = "g[" + std::to_string(c1) + "," + std::to_string(k) + "," + std::to_string(c2) + "," +
           std::to_string(int(bn)) + "," + std::to_string(tail) + "]";
  s.input = {1, 28, 28};
  s.layers.push_back(conv("c1", c1, k));
  s.layers.push_back(relu("r1"));
  s.layers.push_back(max_pool("p1", 2));
  s.layers.push_back(conv("c2", c2, 3));
  if (bn) s.layers.push_back(batch_norm("b2"));
  s.layers.push_back(relu("r2"));
  if (tail == 1) s.layers.push_back(conv("c3", c2, 1));
  if (tail == 2) {
    s.layers.push_back(conv("c3", c2, 3));
    s.layers.back().groups = c2;
  }
  s.layers.push_back(global_avg_pool("gap"));
  s.layers.push_back(dense("fc", 10));
  return s;
}

// Uniform in [0, 1) from the generator's raw bits (the standard fixes mt19937_64's output).
double unit_draw(std::mt19937_64& rng) {
  return double(rng() >> 11) * 0x1p-53;
}

// n models of three spaces, with per-layer times of a noisy known law; returns the latencies.
std::vector<double> golden_data(int n, uint64_t seed, std::vector<ModelFeatures>& x) {
  std::mt19937_64 rng(seed);
  const int ks[] = {1, 3, 5, 7};
  const char* spaces[] = {"alpha", "beta", ""};
  std::vector<double> y;
  for (int i = 0; i < n; ++i) {
    const int c1 = 1 + int(rng() % 64), k = ks[rng() % 4], c2 = 1 + int(rng() % 96);
    const bool bn = rng() % 2;
    const int tail = int(rng() % 3);
    ModelFeatures f = model_features(golden_net(c1, k, c2, bn, tail), spaces[i % 3]);
    double sum = 0.003 * (1 + 0.3 * unit_draw(rng));
    for (auto& u : f.units) {
      const double work = std::exp2(u.log_work);
      const double law =
          u.op == int(Op::conv2d) ? 2e-4 + (u.kind & 8 ? 3e-9 : 1e-9) * work : 1e-4 + 1e-9 * work;
      const double slow = u.footprint > 18.5 ? 1.6 : 1.0;
      sum += u.ms = slow * law * (0.8 + 0.4 * unit_draw(rng));
    }
    y.push_back(sum * (0.95 + 0.1 * unit_draw(rng)));
    x.push_back(std::move(f));
  }
  return y;
}

std::string hex(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}
nlohmann::json hex_all(std::span<const double> v) {
  nlohmann::json out = nlohmann::json::array();
  for (double d : v) out.push_back(hex(d));
  return out;
}

// Kinds whose whole saved JSON is kept in the golden file (layer_gbm's trees are large: only
// their hash is kept).
bool keep_full_json(ModelKind k) {
  return k != ModelKind::layer_gbm;
}

// What the golden file records of one kind.
nlohmann::json record(ModelKind kind, std::span<const ModelFeatures> x, std::span<const double> y,
                      std::span<const ModelFeatures> test) {
  const LatencyModel m = fit_latency_model(kind, x, y);
  nlohmann::json r;
  const nlohmann::json saved = latency_model_to_json(m);
  r["json_sha256"] = sha256_hex(saved.dump());
  if (keep_full_json(kind)) r["json"] = saved;
  std::vector<double> predicted;
  nlohmann::json warnings = nlohmann::json::array();
  for (const auto& f : test) {
    const Prediction p = predict(m, f);
    predicted.push_back(p.latency_ms);
    warnings.push_back(p.warnings);
  }
  r["predicted"] = hex_all(predicted);
  r["warnings"] = warnings;
  const CvResult cv = cross_validate(kind, x, y, 5, 3);
  r["cv_predicted"] = hex_all(cv.predicted_ms);
  r["cv_scores"] = {hex(cv.scores.r2), hex(cv.scores.mdape), hex(cv.scores.within_10pct),
                    cv.scores.n};
  return r;
}

// Equal but for rounding: hex-float strings and numbers within `rel` (relative), other values
// (strings, structure) exactly. Reports the first difference as a path.
::testing::AssertionResult close_to(const nlohmann::json& got, const nlohmann::json& want,
                                    const std::string& path = "", double rel = 1e-9,
                                    double abs = 0) {
  const auto number = [](const nlohmann::json& v, double& out) {
    if (v.is_number()) return out = v.get<double>(), true;
    if (!v.is_string()) return false;
    const std::string t = v.get<std::string>();
    if (t.rfind("0x", 0) != 0 && t.rfind("-0x", 0) != 0) return false;
    out = std::strtod(t.c_str(), nullptr);
    return true;
  };
  double a = 0, b = 0;
  if (number(got, a) && number(want, b)) {
    if (a == b || std::abs(a - b) <= abs + rel * std::max(std::abs(a), std::abs(b)))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << path << ": " << a << " vs " << b;
  }
  if (got.type() != want.type() || got.size() != want.size() ||
      (!got.is_structured() && got != want))
    return ::testing::AssertionFailure() << path << ": " << got.dump() << " vs " << want.dump();
  if (got.is_array())
    for (size_t i = 0; i < got.size(); ++i)
      if (auto r = close_to(got[i], want[i], path + "[" + std::to_string(i) + "]", rel, abs); !r)
        return r;
  if (got.is_object())
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (!got.contains(it.key()))
        return ::testing::AssertionFailure() << path << "." << it.key() << " missing";
      if (auto r = close_to(got[it.key()], it.value(), path + "." + it.key(), rel, abs); !r)
        return r;
    }
  return ::testing::AssertionSuccess();
}

TEST(CalibLatencyGolden, EveryKindPredictsAndSavesAsBefore) {
  std::vector<ModelFeatures> x, test;
  const std::vector<double> y = golden_data(72, 41, x);
  (void)golden_data(24, 42, test);
  // Outside the calibrated range: every warning path of predict().
  test.push_back(model_features(golden_net(256, 7, 512, true, 1), "gamma"));
  nlohmann::json got = nlohmann::json::object();
  for (ModelKind k : kModelKinds) got[model_kind_name(k)] = record(k, x, y, test);

  const fs::path golden = fs::path(IOTNAS_SOURCE_DIR) / "tests/calib/data/latency_golden.json";
  if (std::getenv("IOTNAS_WRITE_LATENCY_GOLDEN")) {
    fs::create_directories(golden.parent_path());
    std::ofstream(golden) << got.dump(1) << "\n";
    GTEST_SKIP() << "wrote " << golden;
  }
  std::ifstream f(golden);
  ASSERT_TRUE(f) << "missing " << golden;
  const nlohmann::json want = nlohmann::json::parse(f);
  ASSERT_EQ(want.size(), std::size(kModelKinds));
  for (ModelKind k : kModelKinds) {
    const std::string name = model_kind_name(k);
    ASSERT_TRUE(want.contains(name)) << name;
    const nlohmann::json& w = want[name];
    const nlohmann::json& g = got[name];
    // layer_gbm's saved trees are kept as a hash only (too large to store); its predictions and
    // scores stand for them, within 10 % (scores within 0.02): its trees turn last-bit
    // differences of their targets into other split choices (the unoptimised sanitizer build
    // predicts up to 0.7 % apart, the portable build's median error is 0.067 against 0.071).
    const bool trees = k == ModelKind::layer_gbm;
    const double rel = trees ? 0.1 : 1e-9, abs = trees ? 0.02 : 0;
    for (const char* key : {"predicted", "warnings", "cv_predicted", "cv_scores"})
      EXPECT_TRUE(close_to(g[key], w[key], name + "." + key, rel, abs));
    if (!w.contains("json")) continue;
    EXPECT_TRUE(close_to(g["json"], w["json"], name + ".json"));
    // A model saved by the earlier code loads, saves to the same JSON and predicts the same bits.
    const LatencyModel old = latency_model_from_json(w["json"], "golden " + name);
    EXPECT_EQ(old.kind, k);
    EXPECT_EQ(latency_model_to_json(old).dump(), w["json"].dump()) << name;
    std::vector<double> predicted;
    for (const auto& t : test) predicted.push_back(predict_ms(old, t));
    EXPECT_TRUE(
        close_to(hex_all(predicted), w["predicted"], name + " (loaded).predicted", rel, abs));
  }
}

// Every kind survives its JSON: the reloaded model saves the same text and predicts the same bits.
TEST(CalibLatencyGolden, EveryKindRoundTripsThroughJson) {
  std::vector<ModelFeatures> x, test;
  const std::vector<double> y = golden_data(48, 43, x);
  (void)golden_data(12, 44, test);
  for (ModelKind k : kModelKinds) {
    const LatencyModel m = fit_latency_model(k, x, y);
    const nlohmann::json saved = latency_model_to_json(m);
    const LatencyModel back = latency_model_from_json(saved, "test");
    EXPECT_EQ(back.kind, k);
    EXPECT_EQ(parse_model_kind(model_kind_name(k)), k);
    EXPECT_EQ(latency_model_to_json(back).dump(), saved.dump()) << model_kind_name(k);
    for (const auto& t : test)
      EXPECT_EQ(hex(predict_ms(back, t)), hex(predict_ms(m, t))) << model_kind_name(k);
  }
  try {
    parse_model_kind("loglog");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown latency model 'loglog'; known: loglog_global, loglog_space, operator_sum, "
              "layer_knn, layer_gbm, blend");
  }
}

}  // namespace
}  // namespace iotnas::calib
