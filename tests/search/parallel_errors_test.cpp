// An error thrown while the search works on OpenMP threads (here: a space whose builder fails for
// some vectors) comes out of the call as that error, never std::terminate.
#include <gtest/gtest.h>
#include <omp.h>

#include "kernels/base/error.hpp"
#include "search/law.hpp"
#include "search/report.hpp"
#include "search/windows.hpp"

namespace iotnas::search {
namespace {

// One conv of `width` channels, global pool, dense; widths 20..40 fail on purpose (the smallest
// and the largest build, so the reachable range is known).
void build_failing(std::span<const int> v, NetBuilder& b) {
  if (v[0] >= 20 && v[0] <= 40) fail("test space: width ", v[0], " fails on purpose");
  b.dense(b.global_avg_pool(b.relu(b.conv(NetBuilder::kInput, v[0], 3, 3))), b.classes());
}

Space failing_space() {
  Space s;
  s.name = "failing";
  s.vars.push_back({"width", 1, 64, 1, "conv channels"});
  s.build = build_failing;
  return s;
}

void expect_test_error(const std::function<void()>& f) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fails on purpose"), std::string::npos) << e.what();
  }
}

class ParallelErrors : public ::testing::Test {
 protected:
  void SetUp() override { omp_set_num_threads(4); }  // a team even on a one-core machine
  void TearDown() override { omp_set_num_threads(threads_); }
  int threads_ = omp_get_max_threads();
};

TEST_F(ParallelErrors, SampleLawsRethrows) {
  const Space s = failing_space();
  SampleOptions o;
  expect_test_error([&] { sample_laws(s, std::vector<Law>{uniform_law(s)}, 2000, o); });
  o.with_specs = true;
  expect_test_error([&] { sample_laws(s, std::vector<Law>{uniform_law(s)}, 2000, o); });
}

TEST_F(ParallelErrors, UniformStatisticsRethrows) {
  expect_test_error([] {
    uniform_statistics(failing_space(), Metric::params, 20000, {1, 28, 28}, 10, 1);
  });
}

TEST_F(ParallelErrors, SearchSpaceRethrowsFromItsWindows) {
  SearchConfig c;
  c.grid = {100, 200, 500, 1000};  // widths ~5..50: the GA draws failing ones
  c.ga.n_init = 20;
  c.ga.n_steps = 20;
  c.ga.clusters = 2;
  c.ga.n_rescore = 0;
  c.ga.tournament = 2;
  c.ga.rescore_top = 1;
  c.n_val = 10;
  expect_test_error([&] { search_space(failing_space(), c); });
}

TEST_F(ParallelErrors, ValidityCheckCountsModelErrors) {
  // A model's own error is a finding of the check (counted), not a failure of the call.
  const ValidityCheck v = check_uniform_models(failing_space(), 640, {1, 28, 28}, 10, 1);
  EXPECT_GT(v.invalid, 0);
  EXPECT_NE(v.first_error.find("fails on purpose"), std::string::npos) << v.first_error;
}

// The sizes that used to run a window out of memory are refused before any work: n_val has
// `iotnas search --n-val`'s range, and a window draws at most kMaxWindowSamples models.
TEST(Windows, SampleCountsAreBoundedBeforeTheSearch) {
  SearchConfig c;
  c.n_val = kMaxNVal + 1;
  EXPECT_THROW(search_space(find_space("plain"), c), Error);
  c.n_val = kMaxNVal;
  c.ga.clusters = 11;
  try {
    search_space(find_space("plain"), c);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_val x clusters"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace iotnas::search
