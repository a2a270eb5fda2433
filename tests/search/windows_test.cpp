// Sliding windows: the grid, reachability, and the quality bars (>= 50 % of samples in
// every window inside the reachable range; >= 10 % per reachable decade).
#include <gtest/gtest.h>
#include <omp.h>

#include "kernels/base/error.hpp"
#include "search/windows.hpp"
#include "test_util.hpp"

namespace iotnas::search {
namespace {

TEST(Windows, Grids) {
  const auto g = grid_125(1e3, 1e7);
  ASSERT_EQ(g.size(), 13u);
  const double want[] = {1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7};
  for (size_t i = 0; i < 13; ++i) EXPECT_DOUBLE_EQ(g[i], want[i]);
  EXPECT_EQ(default_grid(Metric::flops).front(), 1e5);
  EXPECT_EQ(default_grid(Metric::flops).back(), 1e9);
  EXPECT_THROW(grid_125(1e3, 3e4), Error);
  EXPECT_THROW(grid_125(1e4, 1e3), Error);
}

TEST(Windows, Coverage) {
  const Reach r{500, 1.5e6};
  EXPECT_EQ(window_coverage(r, 1e3, 2e3), Coverage::inside);
  EXPECT_EQ(window_coverage(r, 1e6, 2e6), Coverage::partial);
  EXPECT_EQ(window_coverage(r, 2e6, 5e6), Coverage::unreachable);
  EXPECT_EQ(window_coverage(r, 100, 200), Coverage::unreachable);
}

TEST(Windows, CheckWindowNamesTheReachableRange) {
  const Space& plain = find_space("plain");
  const Reach r = reachable_range(plain, Metric::params, {1, 28, 28}, 10);
  EXPECT_NO_THROW(check_window(plain, r, Metric::params, 1e3, 2e3));
  EXPECT_THROW(check_window(plain, r, Metric::params, 2e3, 1e3), Error);
  EXPECT_THROW(check_window(plain, r, Metric::params, 2e3, 2e3), Error);
  try {
    check_window(plain, r, Metric::params, 1e8, 2e8);
    ADD_FAILURE();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot reach"), std::string::npos) << msg;
    EXPECT_NE(msg.find("26 to 1.61358e+06"), std::string::npos) << msg;
  }
}

void expect_quality_bars(const SpaceSearch& s) {
  int inside = 0;
  for (const auto& w : s.windows) {
    if (w.coverage == Coverage::unreachable) {
      EXPECT_TRUE(w.samples.empty());
      continue;
    }
    EXPECT_EQ(w.ga.laws.size(), 10u);
    EXPECT_EQ(w.samples.size(), 1000u);
    if (w.coverage == Coverage::inside) {
      ++inside;
      EXPECT_GE(w.in_window, 0.5) << s.space << " " << metric_name(s.metric) << " window [" << w.lo
                                  << ", " << w.hi << "]";
    }
  }
  EXPECT_GT(inside, 0);
  for (const auto& d : decade_shares(s)) {
    if (d.reachable && d.lo >= 1e3 && d.hi <= 1e7) {
      EXPECT_GE(d.share, 0.10) << s.space << " decade [" << d.lo << ", " << d.hi << ")";
    }
  }
}

TEST(Windows, PlainMeetsTheQualityBars) {
  SearchConfig c;
  c.seed = 1;
  const SpaceSearch s = search_space(find_space("plain"), c);
  ASSERT_EQ(s.windows.size(), 12u);
  EXPECT_LE(s.reach.min, 1e3);
  EXPECT_GE(s.reach.max, 1e6);
  expect_quality_bars(s);
  int64_t total = 0;
  for (const auto& w : s.windows) total += int64_t(w.samples.size());
  EXPECT_EQ(total, 10000);  // 10 of 12 windows reachable on 28x28x1
}

#ifdef NDEBUG
TEST(Windows, EverySpaceMeetsTheQualityBars) {
  for (const auto& space : spaces()) {
    for (Metric m : {Metric::params, Metric::flops}) {
      SearchConfig c;
      c.metric = m;
      c.seed = 1;
      expect_quality_bars(search_space(space, c));
    }
  }
}
#endif

TEST(Windows, SearchIsReproducibleWhateverTheThreadCount) {
  SearchConfig c;
  c.seed = 9;
  c.ga.n_steps = 200;
  c.grid = {1e4, 2e4, 5e4, 1e5};
  const Space& space = find_space("mobilenet");
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const SpaceSearch a = search_space(space, c);
  omp_set_num_threads(std::max(2, threads));
  const SpaceSearch b = search_space(space, c);
  omp_set_num_threads(threads);
  ASSERT_EQ(a.windows.size(), 3u);
  for (size_t w = 0; w < 3; ++w) {
    ASSERT_EQ(a.windows[w].samples.size(), b.windows[w].samples.size());
    for (size_t i = 0; i < a.windows[w].samples.size(); ++i) {
      ASSERT_EQ(a.windows[w].samples[i].vars, b.windows[w].samples[i].vars);
    }
    EXPECT_EQ(a.windows[w].in_window, b.windows[w].in_window);
  }
}

TEST(Statistics, UniformBaseline) {
  const Space& plain = find_space("plain");
  const Statistics s = uniform_statistics(plain, Metric::params, 20000, {1, 28, 28}, 10, 3);
  EXPECT_EQ(s.count, 20000);
  int64_t sum = 0;
  for (auto c : s.histogram) sum += c;
  EXPECT_EQ(sum, 20000);
  sum = 0;
  for (auto c : s.per_decade) sum += c;
  EXPECT_EQ(sum, 20000);
  // Uniform sampling is skewed to large models: the paper's Fig. 1 (mean ~ 10^4.9).
  EXPECT_GT(s.mean, 4.5);
  EXPECT_LT(s.mean, 5.2);
  EXPECT_GE(s.min, std::log10(26.0) - 1e-9);
  EXPECT_LE(s.max, std::log10(1613578.0) + 1e-9);
  const Statistics again = uniform_statistics(plain, Metric::params, 20000, {1, 28, 28}, 10, 3);
  EXPECT_EQ(again.mean, s.mean);
  EXPECT_EQ(again.histogram, s.histogram);
}

}  // namespace
}  // namespace iotnas::search
