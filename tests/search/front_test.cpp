// Pareto fronts against a brute-force check on random points (with many ties), and constraint
// solving: the most accurate feasible answer, tie-breaks, runners-up, and infeasible queries
// naming the limit to relax and the smallest value that works.
#include <gtest/gtest.h>

#include <random>

#include "kernels/base/error.hpp"
#include "search/front.hpp"
#include "test_util.hpp"

namespace iotnas::search {
namespace {

Candidate cand(std::string id, int w, int t, double acc, int64_t bytes, double lat = NAN) {
  Candidate c;
  c.model_id = std::move(id);
  c.w = w;
  c.t = t;
  c.accuracy = acc;
  c.weight_bytes = bytes;
  c.latency_ms = lat;
  return c;
}

// Brute force: i is on the front when nothing dominates it and no earlier point equals it.
std::vector<int> brute_front(const std::vector<Candidate>& c, Cost cost) {
  std::vector<int> out;
  for (int i = 0; i < int(c.size()); ++i) {
    const double ci = cost_value(c[i], cost), ai = c[i].accuracy;
    if (std::isnan(ci) || std::isnan(ai)) continue;
    bool keep = true;
    for (int j = 0; j < int(c.size()) && keep; ++j) {
      if (j == i) continue;
      const double cj = cost_value(c[j], cost), aj = c[j].accuracy;
      if (std::isnan(cj) || std::isnan(aj)) continue;
      if (cj <= ci && aj >= ai && (cj < ci || aj > ai)) keep = false;
      if (cj == ci && aj == ai && j < i) keep = false;
    }
    if (keep) out.push_back(i);
  }
  std::sort(out.begin(), out.end(),
            [&](int a, int b) { return cost_value(c[a], cost) < cost_value(c[b], cost); });
  return out;
}

TEST(Front, MatchesBruteForceOnRandomPointsWithTies) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 300; ++round) {
    const int n = int(rng() % 60);
    std::vector<Candidate> c;
    // Coarse values make equal costs and equal accuracies common.
    const int levels = 1 + int(rng() % 12);
    for (int i = 0; i < n; ++i) {
      double acc = double(rng() % levels) / levels;
      double lat = double(rng() % levels) * 0.5;
      if (rng() % 20 == 0) acc = NAN;
      if (rng() % 10 == 0) lat = NAN;
      c.push_back(
          cand("m" + std::to_string(i % 7), 8, 23, acc, int64_t(rng() % levels) * 100, lat));
    }
    for (Cost cost : {Cost::weight_bytes, Cost::latency_ms}) {
      const auto got = pareto_front(c, cost);
      ASSERT_EQ(got, brute_front(c, cost))
          << "round " << round << " " << cost_name(cost) << " " << test::seed_note(seed);
      for (size_t k = 1; k < got.size(); ++k) {
        ASSERT_LT(cost_value(c[got[k - 1]], cost), cost_value(c[got[k]], cost));
        ASSERT_LT(c[got[k - 1]].accuracy, c[got[k]].accuracy);
      }
    }
  }
}

TEST(Front, TiesKeepTheFirstAndEmptyInputGivesEmptyFront) {
  EXPECT_TRUE(pareto_front({}, Cost::weight_bytes).empty());
  std::vector<Candidate> c = {cand("a", 8, 23, 0.9, 100), cand("b", 8, 23, 0.9, 100),
                              cand("c", 8, 23, 0.8, 100), cand("d", 8, 23, 0.9, 200),
                              cand("e", 8, 23, 0.95, 300)};
  EXPECT_EQ(pareto_front(c, Cost::weight_bytes), (std::vector<int>{0, 4}));
  // Unknown latencies are on no latency front.
  EXPECT_TRUE(pareto_front(c, Cost::latency_ms).empty());
}

TEST(Solve, MostAccurateFeasibleWithTieBreaksAndRunnersUp) {
  std::vector<Candidate> c = {
      cand("big", 8, 23, 0.95, 40000, 2.0),   // too heavy in float32
      cand("big", 4, 3, 0.93, 8000, 2.0),     // fits
      cand("mid", 8, 23, 0.92, 9000, 1.0),    //
      cand("mid", 5, 10, 0.92, 4500, 1.0),    // same accuracy, fewer bytes: preferred within mid
      cand("slow", 8, 23, 0.99, 1000, 50.0),  // too slow
      cand("tiny", 2, 1, 0.10, 10, 0.1),
  };
  Limits lim;
  lim.max_weight_bytes = 10000;
  lim.max_latency_ms = 5.0;
  const Solution s = solve(c, lim, 5);
  ASSERT_TRUE(s.feasible) << s.message;
  EXPECT_EQ(s.best, 1);
  ASSERT_EQ(s.runners_up.size(), 3u);
  EXPECT_EQ(s.runners_up[0].index, 4);  // slow: most accurate, lost on latency
  EXPECT_NE(s.runners_up[0].reason.find("latency"), std::string::npos) << s.runners_up[0].reason;
  EXPECT_EQ(s.runners_up[1].index, 3);  // mid's best feasible entry
  EXPECT_NE(s.runners_up[1].reason.find("less accurate"), std::string::npos);
  EXPECT_EQ(s.runners_up[2].index, 5);
  // Only the weight limit: the slow model wins.
  EXPECT_EQ(solve(c, {10000, std::nullopt}).best, 4);
  // Equal accuracy across models: fewer bytes wins.
  std::vector<Candidate> tie = {cand("a", 8, 23, 0.9, 200, 1), cand("b", 8, 23, 0.9, 100, 1),
                                cand("c", 8, 23, 0.9, 100, 0.5)};
  EXPECT_EQ(solve(tie, {1000, std::nullopt}).best, 2);
  EXPECT_EQ(solve(tie, {1000, std::nullopt}).runners_up.size(), 2u);
  EXPECT_EQ(solve(tie, {1000, std::nullopt}, 0).runners_up.size(), 0u);
}

TEST(Solve, InfeasibleNamesTheLimitAndTheSmallestValueThatWorks) {
  std::vector<Candidate> c = {cand("a", 8, 23, 0.9, 4000, 1.0), cand("a", 4, 3, 0.88, 1000, 1.0),
                              cand("b", 8, 23, 0.8, 800, 3.0), cand("b", 2, 1, 0.3, 200, 3.0)};
  {  // weight alone too small
    const Solution s = solve(c, {100, std::nullopt});
    ASSERT_FALSE(s.feasible);
    ASSERT_EQ(s.violations.size(), 1u);
    EXPECT_EQ(s.violations[0].limit, Cost::weight_bytes);
    EXPECT_EQ(s.violations[0].smallest, 200);
    EXPECT_EQ(s.runners_up.size(), 2u);
    EXPECT_TRUE(solve(c, {200, std::nullopt}).feasible);
  }
  {  // latency alone too small
    const Solution s = solve(c, {100000, 0.5});
    ASSERT_EQ(s.violations.size(), 1u);
    EXPECT_EQ(s.violations[0].limit, Cost::latency_ms);
    EXPECT_EQ(s.violations[0].smallest, 1.0);
  }
  {  // weight limit can only be met by b, latency only by a: relax either
    const Solution s = solve(c, {500, 2.0});
    ASSERT_FALSE(s.feasible);
    ASSERT_EQ(s.violations.size(), 2u);
    EXPECT_EQ(s.violations[0].limit, Cost::weight_bytes);
    EXPECT_EQ(s.violations[0].smallest, 1000);
    EXPECT_EQ(s.violations[1].limit, Cost::latency_ms);
    EXPECT_EQ(s.violations[1].smallest, 3.0);
    EXPECT_TRUE(solve(c, {1000, 2.0}).feasible);
    EXPECT_TRUE(solve(c, {500, 3.0}).feasible);
  }
  {  // neither alone: relax both, to the lightest candidate and its latency
    const Solution s = solve(c, {10, 0.1});
    ASSERT_EQ(s.violations.size(), 2u);
    EXPECT_EQ(s.violations[0].smallest, 200);
    EXPECT_EQ(s.violations[1].smallest, 3.0);
    EXPECT_TRUE(solve(c, {200, 3.0}).feasible);
  }
  {  // unknown latency cannot meet a latency limit
    std::vector<Candidate> u = {cand("a", 8, 23, 0.9, 10)};
    const Solution s = solve(u, {100, 1.0});
    ASSERT_FALSE(s.feasible);
    ASSERT_EQ(s.violations.size(), 1u);
    EXPECT_TRUE(std::isnan(s.violations[0].smallest));
  }
  EXPECT_FALSE(solve({}, {100, std::nullopt}).feasible);
  EXPECT_THROW(solve(c, {-1, std::nullopt}), Error);
  EXPECT_THROW(solve(c, {100, 0.0}), Error);
  EXPECT_THROW(solve(c, {100, NAN}), Error);
}

TEST(Solve, AgreesWithBruteForceOnRandomCandidates) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    std::vector<Candidate> c;
    const int n = 1 + int(rng() % 40);
    for (int i = 0; i < n; ++i)
      c.push_back(cand("m" + std::to_string(rng() % 8), 1 + int(rng() % 8), 1 + int(rng() % 23),
                       double(rng() % 20) / 20, int64_t(rng() % 1000),
                       double(1 + rng() % 50) / 10));
    Limits lim{int64_t(rng() % 1000),
               rng() % 2 ? std::optional<double>(double(1 + rng() % 50) / 10) : std::nullopt};
    const Solution s = solve(c, lim);
    double best = -1;
    for (const auto& x : c)
      if (x.weight_bytes <= lim.max_weight_bytes &&
          (!lim.max_latency_ms || x.latency_ms <= *lim.max_latency_ms))
        best = std::max(best, x.accuracy);
    ASSERT_EQ(s.feasible, best >= 0) << test::seed_note(seed);
    if (s.feasible) {
      ASSERT_EQ(c[s.best].accuracy, best) << test::seed_note(seed);
    } else {
      // Relaxing every violated limit to its `smallest` makes the query feasible.
      Limits relaxed = lim;
      for (const auto& v : s.violations) {
        if (v.limit == Cost::weight_bytes)
          relaxed.max_weight_bytes = int64_t(v.smallest);
        else
          relaxed.max_latency_ms = v.smallest;
      }
      ASSERT_TRUE(solve(c, relaxed).feasible) << test::seed_note(seed);
      if (s.violations.size() == 1) {
        const auto& v = s.violations[0];
        Limits tighter = relaxed;
        if (v.limit == Cost::weight_bytes)
          tighter.max_weight_bytes = int64_t(v.smallest) - 1;
        else
          tighter.max_latency_ms = std::nextafter(v.smallest, 0.0);
        if (tighter.max_weight_bytes >= 0 &&
            (!tighter.max_latency_ms || *tighter.max_latency_ms > 0))
          ASSERT_FALSE(solve(c, tighter).feasible) << test::seed_note(seed);
      }
    }
  }
}

}  // namespace
}  // namespace iotnas::search
