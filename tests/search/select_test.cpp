// Candidate selection from a search's samples: the Pareto wave per window, the picks per
// constraint, the calibration's models, and the models `iotnas calib measure` samples.
#include <gtest/gtest.h>

#include <set>

#include "kernels/base/error.hpp"
#include "search/select.hpp"

namespace iotnas::search {
namespace {

const Shape kInput{1, 28, 28};

// Three windows (1e3 .. 1e4 parameters) of two spaces, with a small GA.
const std::vector<SpaceSearch>& searches() {
  static const std::vector<SpaceSearch> s = [] {
    std::vector<SpaceSearch> out;
    for (const char* name : {"plain", "mobilenet"}) {
      SearchConfig sc;
      sc.grid = grid_125(1e3, 1e4);
      sc.ga.n_init = 20;
      sc.ga.n_steps = 40;
      sc.ga.n_eval = 5;
      sc.ga.clusters = 2;
      sc.ga.n_rescore = 0;
      sc.n_val = 10;
      sc.seed = 3;
      out.push_back(search_space(find_space(name), sc));
    }
    return out;
  }();
  return s;
}

TEST(Select, PerWindowPicksInWindowModelsWindowsOuterSpacesInner) {
  CandidateSettings cs;
  cs.per_window = 2;
  cs.max_flops = 1e7;
  std::set<std::string> seen;
  const auto picks = select_per_window(searches(), Metric::params, cs, kInput, 10, seen);
  ASSERT_FALSE(picks.empty());
  EXPECT_EQ(seen.size(), picks.size());
  std::set<std::string> specs;
  double window_lo = 0;
  for (const Pick& p : picks) {
    EXPECT_TRUE(specs.insert(p.spec_json).second) << p.spec.name;
    EXPECT_EQ(p.spec_json, spec_to_json(p.spec));
    EXPECT_EQ(p.analytics.params, analyze(p.spec).params);
    EXPECT_LE(double(p.analytics.flops), cs.max_flops);
    // The window of each pick: windows never go back to a smaller one.
    const auto& ws = searches()[p.space == "plain" ? 0 : 1].windows;
    double lo = -1;
    for (const auto& w : ws)
      if (double(p.analytics.params) >= w.lo && double(p.analytics.params) <= w.hi) {
        lo = w.lo;
        break;
      }
    ASSERT_GE(lo, 0) << p.spec.name << " is in no window";
    EXPECT_GE(lo, window_lo) << p.spec.name;
    window_lo = std::max(window_lo, lo);
  }
  // Deterministic, and a model in `seen` is not picked again.
  std::set<std::string> seen2;
  EXPECT_EQ(select_per_window(searches(), Metric::params, cs, kInput, 10, seen2).size(),
            picks.size());
  EXPECT_TRUE(select_per_window(searches(), Metric::params, cs, kInput, 10, seen2).empty());
}

TEST(Select, MaxModelsCutsTheEndButEveryPickIsSeen) {
  CandidateSettings cs;
  std::set<std::string> all_seen, seen;
  const auto all = select_per_window(searches(), Metric::params, cs, kInput, 10, all_seen);
  ASSERT_GE(all.size(), 3u);
  cs.max_models = 2;
  const auto capped = select_per_window(searches(), Metric::params, cs, kInput, 10, seen);
  ASSERT_EQ(capped.size(), 2u);
  EXPECT_EQ(capped[0].spec_json, all[0].spec_json);
  EXPECT_EQ(capped[1].spec_json, all[1].spec_json);
  EXPECT_EQ(seen, all_seen);
  // A FLOP cap below every model leaves nothing.
  cs.max_flops = 1;
  std::set<std::string> none;
  EXPECT_TRUE(select_per_window(searches(), Metric::params, cs, kInput, 10, none).empty());
}

TEST(Select, ConstraintPicksFitTheBytesAndThePredictedLatency) {
  CandidateSettings cs;
  cs.per_constraint = 3;
  const int64_t bytes = 8000;
  std::set<std::string> picked;
  const auto s = select_for_constraint(searches(), bytes, std::nullopt, cs, kInput, 10, picked, {});
  ASSERT_EQ(s.chosen, 3);
  EXPECT_GE(s.fitting, 3u);
  EXPECT_FALSE(s.latency_judged);
  ASSERT_EQ(s.added.size(), 3u);
  for (size_t i = 0; i < s.added.size(); ++i) {
    const Pick& p = s.added[i];
    EXPECT_GE(p.analytics.inference_params * 4, bytes) << p.spec.name;
    EXPECT_LE(p.analytics.inference_params, bytes) << p.spec.name;
    EXPECT_TRUE(picked.count(p.spec_json));
    if (i > 0) {
      EXPECT_GE(p.analytics.inference_params, s.added[i - 1].analytics.inference_params);
    }
  }
  // The same picks again are already candidates.
  const auto again = select_for_constraint(searches(), bytes, 1.0, cs, kInput, 10, picked, {});
  EXPECT_EQ(again.chosen, 3);
  EXPECT_TRUE(again.added.empty());
  EXPECT_FALSE(again.latency_judged);  // no predictor
  // A predictor judges the latency limit: models predicted above it do not fit.
  std::set<std::string> fresh;
  const auto slow =
      select_for_constraint(searches(), bytes, 0.5, cs, kInput, 10, fresh, [](const Pick& p) {
        EXPECT_FALSE(p.spec.layers.empty());
        return p.analytics.inference_params > 4000 ? 1.0 : 0.1;
      });
  EXPECT_TRUE(slow.latency_judged);
  EXPECT_LT(slow.fitting, s.fitting);
  for (const Pick& p : slow.added) EXPECT_LE(p.analytics.inference_params, 4000);
}

TEST(Select, CalibrationMeasuresCandidatesFirstThenUnseenSamples) {
  CandidateSettings cs;
  std::set<std::string> seen;
  const auto picks = select_per_window(searches(), Metric::params, cs, kInput, 10, seen);
  ASSERT_GE(picks.size(), 2u);
  std::set<std::string> seen_before = seen;
  auto chosen = select_for_calibration(picks, searches(), 20, 1e7, kInput, 10, seen);
  ASSERT_EQ(chosen.size(), 20u);
  for (size_t i = 0; i < picks.size(); ++i) EXPECT_EQ(chosen[i].spec_json, picks[i].spec_json);
  std::set<std::string> specs;
  for (size_t i = picks.size(); i < chosen.size(); ++i) {
    EXPECT_FALSE(seen_before.count(chosen[i].spec_json)) << chosen[i].spec.name;
    EXPECT_TRUE(seen.count(chosen[i].spec_json));
    EXPECT_TRUE(specs.insert(chosen[i].spec_json).second);
  }
  // Fewer models than candidates: the first candidates only.
  chosen = select_for_calibration(picks, searches(), 1, 1e7, kInput, 10, seen);
  ASSERT_EQ(chosen.size(), 1u);
  EXPECT_EQ(chosen[0].spec_json, picks[0].spec_json);
  EXPECT_TRUE(select_for_calibration(picks, searches(), 0, 1e7, kInput, 10, seen).empty());
}

TEST(Select, SampleAcrossWindowsIsDeterministicAndSpreadOverSpaces) {
  const std::vector<const Space*> spaces = {&find_space("plain"), &find_space("resnet")};
  const auto a = sample_across_windows(spaces, 12, 1e3, 1e4, kInput, 10, 5);
  const auto b = sample_across_windows(spaces, 12, 1e3, 1e4, kInput, 10, 5);
  ASSERT_EQ(a.size(), 12u);
  std::set<std::string> names, used_spaces;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].spec.name, b[i].spec.name);
    EXPECT_TRUE(names.insert(a[i].spec.name).second);
    EXPECT_EQ(a[i].analytics.params, analyze(a[i].spec).params);
    used_spaces.insert(a[i].space);
  }
  EXPECT_EQ(used_spaces.size(), 2u);
  EXPECT_THROW(sample_across_windows(spaces, 4, 1e9, 1e10, kInput, 10, 5), Error);
}

}  // namespace
}  // namespace iotnas::search
