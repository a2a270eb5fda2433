// Samplers and laws files: exactly N models, cycling through the laws, each variable inside its
// law's range; deterministic for a seed whatever the thread count; laws files round-trip and
// damaged ones are clear errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <filesystem>
#include <fstream>

#include "kernels/base/error.hpp"
#include "search/law.hpp"
#include "test_util.hpp"

namespace iotnas::search {
namespace {

std::vector<Law> three_plain_laws() {
  const Space& plain = find_space("plain");
  Law a = uniform_law(plain);
  Law b = uniform_law(plain);
  Law c = uniform_law(plain);
  for (auto& r : b.ranges) r.hi = r.lo;  // the smallest model only
  c.ranges[0] = {5, 9};
  c.ranges[1] = {3, 3};
  c.cost = 0.25;
  c.mu = 3.1;
  c.sigma = 0.2;
  return {a, b, c};
}

TEST(Sampler, DrawsExactlyTheNumberAskedCyclingThroughTheLaws) {
  const Space& plain = find_space("plain");
  const auto laws = three_plain_laws();
  for (int64_t n : {0, 1, 2, 7, 1000, 12345}) {
    SampleOptions o;
    o.seed = 42;
    const auto samples = sample_laws(plain, laws, n, o);
    ASSERT_EQ(int64_t(samples.size()), n);
    for (int64_t i = 0; i < n; ++i) {
      const Sample& s = samples[i];
      ASSERT_EQ(s.law_index, int(i % 3));
      const Law& law = laws[s.law_index];
      for (size_t v = 0; v < s.vars.size(); ++v) {
        ASSERT_GE(s.vars[v], law.ranges[v].lo);
        ASSERT_LE(s.vars[v], law.ranges[v].hi);
        ASSERT_TRUE(plain.vars[v].valid(s.vars[v]));
      }
      ASSERT_GT(s.analytics.params, 0);
      ASSERT_TRUE(s.spec.layers.empty());
    }
  }
}

TEST(Sampler, EveryValueOfARangeIsDrawn) {
  const Space& plain = find_space("plain");
  Law law = uniform_law(plain);
  law.ranges[1] = {3, 7};  // conv1_kh: 3, 5, 7
  law.ranges[0] = {10, 13};
  SampleOptions o;
  o.seed = test::fresh_seed();
  std::map<int, int> kh, ch;
  for (const auto& s : sample_laws(plain, {&law, 1}, 4000, o)) {
    kh[s.vars[1]]++;
    ch[s.vars[0]]++;
  }
  EXPECT_EQ(kh.size(), 3u) << test::seed_note(o.seed);
  EXPECT_EQ(ch.size(), 4u) << test::seed_note(o.seed);
  for (const auto& [v, count] : kh) EXPECT_NEAR(count, 4000 / 3.0, 150) << v;
}

TEST(Sampler, SameSeedSameModelsWhateverTheThreadCount) {
  const Space& space = find_space("densenet");
  const Law law = uniform_law(space);
  SampleOptions o;
  o.seed = 7;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = sample_laws(space, {&law, 1}, 3000, o);
  omp_set_num_threads(std::max(2, threads));
  const auto many = sample_laws(space, {&law, 1}, 3000, o);
  omp_set_num_threads(threads);
  ASSERT_EQ(one.size(), many.size());
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].vars, many[i].vars) << i;
    ASSERT_EQ(one[i].analytics.flops, many[i].analytics.flops);
  }
  o.seed = 8;
  const auto other = sample_laws(space, {&law, 1}, 3000, o);
  int same = 0;
  for (size_t i = 0; i < one.size(); ++i) same += one[i].vars == other[i].vars;
  EXPECT_LT(same, 30);
}

TEST(Sampler, SpecsMatchTheirAnalytics) {
  const Space& space = find_space("inception");
  const Law law = uniform_law(space);
  SampleOptions o;
  o.input = {3, 32, 32};
  o.with_specs = true;
  o.seed = test::fresh_seed();
  for (const auto& s : sample_laws(space, {&law, 1}, 50, o)) {
    ASSERT_FALSE(s.spec.layers.empty());
    EXPECT_EQ(s.spec.name, "inception" + vector_string(s.vars));
    const Analytics a = analyze(s.spec);
    EXPECT_EQ(a.params, s.analytics.params);
    EXPECT_EQ(a.flops, s.analytics.flops);
    EXPECT_EQ(a.peak_activation_bytes, s.analytics.peak_activation_bytes);
  }
}

TEST(Sampler, BadInput) {
  const Space& plain = find_space("plain");
  SampleOptions o;
  EXPECT_THROW(sample_laws(plain, {}, 10, o), Error);
  Law bad = uniform_law(plain);
  bad.ranges[0] = {5, 4};
  EXPECT_THROW(sample_laws(plain, {&bad, 1}, 10, o), Error);
  bad = uniform_law(plain);
  bad.ranges.pop_back();
  EXPECT_THROW(sample_laws(plain, {&bad, 1}, 10, o), Error);
  const Law good = uniform_law(plain);
  EXPECT_THROW(sample_laws(plain, {&good, 1}, -1, o), Error);
  o.input = {1, 2, 2};
  EXPECT_THROW(sample_laws(plain, {&good, 1}, 1, o), Error);
}

// ---- laws files --------------------------------------------------------------------------------

LawSet example_set() {
  LawSet set;
  set.space = "plain";
  set.metric = Metric::params;
  set.window_lo = 1000;
  set.window_hi = 2000;
  set.input = Shape{1, 28, 28};
  set.seed = 3;
  set.laws = three_plain_laws();
  return set;
}

TEST(LawsFile, RoundTrip) {
  const LawSet set = example_set();
  const std::string text = laws_to_json(set);
  const LawSet back = parse_laws(text, "mem");
  EXPECT_EQ(back.space, "plain");
  EXPECT_EQ(back.metric, Metric::params);
  EXPECT_EQ(*back.window_lo, 1000);
  EXPECT_EQ(*back.window_hi, 2000);
  EXPECT_EQ(*back.input, (Shape{1, 28, 28}));
  EXPECT_EQ(*back.seed, 3u);
  ASSERT_EQ(back.laws.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.laws[i].ranges, set.laws[i].ranges);
    EXPECT_EQ(std::isnan(back.laws[i].cost), std::isnan(set.laws[i].cost));
  }
  EXPECT_DOUBLE_EQ(back.laws[2].cost, 0.25);
  EXPECT_EQ(laws_to_json(back), text);

  const auto dir =
      std::filesystem::temp_directory_path() / ("iotnas_laws_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "laws.json").string();
  save_laws_file(path, set);
  EXPECT_EQ(laws_to_json(load_laws_file(path)), text);
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename(), "laws.json");  // no temporary file left behind
  }
  std::filesystem::remove_all(dir);
}

TEST(LawsFile, HandWrittenLawsMayBeShort) {
  // The paper's manual workflow: a person writes only the ranges they care about.
  const LawSet set = parse_laws(R"({"space": "resnet", "laws": [
      {"ranges": {"width": [4, 8], "growth": 2}},
      {"ranges": {}}]})",
                                "hand");
  const Space& resnet = find_space("resnet");
  ASSERT_EQ(set.laws.size(), 2u);
  EXPECT_EQ(set.laws[0].ranges[resnet.var_index("width")], (Range{4, 8}));
  EXPECT_EQ(set.laws[0].ranges[resnet.var_index("growth")], (Range{2, 2}));
  EXPECT_EQ(set.laws[0].ranges[resnet.var_index("blocks1")], (Range{1, 9}));
  EXPECT_EQ(set.laws[1].ranges, uniform_law(resnet).ranges);
  EXPECT_TRUE(std::isnan(set.laws[0].cost));
  EXPECT_FALSE(set.metric.has_value());
}

void expect_error(const std::string& text, const std::string& fragment) {
  try {
    parse_laws(text, "laws.json");
    ADD_FAILURE() << "no error for: " << text;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fragment), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find("laws.json"), std::string::npos) << "message: " << msg;
  }
}

TEST(LawsFile, DamagedFilesAreClearErrors) {
  const std::string good = laws_to_json(example_set());
  expect_error(good.substr(0, good.size() / 2), "not valid JSON");
  expect_error("", "not valid JSON");
  expect_error("[1, 2]", "top level must be a JSON object");
  expect_error(R"({"laws": [{"ranges": {}}]})", "missing 'space'");
  expect_error(R"({"space": "vgg", "laws": [{"ranges": {}}]})", "unknown space 'vgg'");
  expect_error(R"({"space": "plain"})", "missing 'laws'");
  expect_error(R"({"space": "plain", "laws": []})", "missing 'laws'");
  expect_error(R"({"space": "plain", "laws": [{"ranges": {"conv9_kh": [1, 3]}}]})",
               "no variable 'conv9_kh'");
  expect_error(R"({"space": "plain", "laws": [{"ranges": {"conv1_kh": [1, 4]}}]})",
               "4 is not a value");
  expect_error(R"({"space": "plain", "laws": [{"ranges": {"conv1_channels": [0, 4]}}]})",
               "0 is not a value");
  expect_error(R"({"space": "plain", "laws": [{"ranges": {"conv1_channels": [9, 4]}}]})",
               "reversed");
  expect_error(R"({"space": "plain", "laws": [{"ranges": {"conv1_channels": [1.5, 4]}}]})",
               "must be an integer");
  expect_error(R"({"space": "plain", "laws": [{"ranges": {"conv1_channels": "4"}}]})",
               "must be [lo, hi]");
  expect_error(R"({"space": "plain", "laws": [{"range": {}}]})", "unknown key 'range'");
  expect_error(R"({"space": "plain", "law": [], "laws": [{"ranges": {}}]})", "unknown key 'law'");
  expect_error(R"({"space": "plain", "metric": "latency", "laws": [{"ranges": {}}]})", "metric");
  expect_error(R"({"space": "plain", "window": [2000, 1000], "laws": [{"ranges": {}}]})",
               "0 < lo < hi");
  expect_error(R"({"space": "plain", "input_shape": [1, 28], "laws": [{"ranges": {}}]})",
               "input_shape");
  expect_error(R"({"space": "plain", "format": "iotnas-laws/9", "laws": [{"ranges": {}}]})",
               "format");
  expect_error(R"({"space": "plain", "laws": [{"cost": "low", "ranges": {}}]})",
               "'cost' must be a number");
  // Sizes are not truncated: 2^64 - 1 used to wrap to -1, 2^40 channels to a valid count.
  expect_error(R"({"space": "plain", "classes": 18446744073709551615, "laws": [{"ranges": {}}]})",
               "classes: out of range");
  expect_error(
      R"({"space": "plain", "input_shape": [1, 28, 18446744073709551615], "laws": [{"ranges": {}}]})",
      "input_shape: out of range");
  expect_error(
      R"({"space": "plain", "laws": [{"ranges": {"conv1_channels": [1, 1099511627780]}}]})",
      "out of range");
  expect_error(R"({"space": "plain", "classes": 100001, "laws": [{"ranges": {}}]})", "classes");
  EXPECT_THROW(load_laws_file("/nonexistent/laws.json"), Error);
}

TEST(LawsFile, AnotherSpacesFileIsAClearError) {
  const LawSet set = parse_laws(laws_to_json(example_set()), "laws.json");
  EXPECT_NO_THROW(check_laws_space(set, find_space(set.space), "laws.json"));
  for (const auto& other : spaces()) {
    if (other.name == set.space) continue;
    try {
      check_laws_space(set, other, "laws.json");
      ADD_FAILURE() << "no error for space " << other.name;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("holds laws for space '" + set.space + "', not '" + other.name + "'"),
                std::string::npos)
          << msg;
    }
  }
}

TEST(LawsFile, OneLinePerRangeInReadingOrder) {
  const std::string text = laws_to_json(example_set());
  EXPECT_LT(text.find("\"format\""), text.find("\"space\""));
  EXPECT_LT(text.find("\"space\""), text.find("\"laws\""));
  EXPECT_NE(text.find("\"conv1_channels\": ["), std::string::npos);
  const size_t at = text.find("\"conv1_channels\": [");
  EXPECT_LT(text.find(']', at), text.find('\n', at));  // [lo, hi] on one line
}

}  // namespace
}  // namespace iotnas::search
