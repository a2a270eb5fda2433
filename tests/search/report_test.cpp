// What `iotnas search` writes: the distribution CSV (each column's shares sum to 1), the samples
// CSV (one row per model, in-window flags that agree with the metric), laws files that parse back
// to the GA's laws, the quality verdict (which fails when a bar is missed), gnuplot's PNG/SVG when
// gnuplot is installed, and drawing a long run in pieces (SampleOptions::first).
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/util/plot.hpp"
#include "kernels/base/error.hpp"
#include "search/report.hpp"
#include "test_util.hpp"

namespace iotnas::search {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string f; std::getline(in, f, ',');) out.push_back(f);
  return out;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A small but real search of plain: the three windows of the params grid's first decade.
SpaceReport small_report(uint64_t seed) {
  SpaceReport r;
  r.seed = seed;
  r.input = {1, 28, 28};
  SearchConfig c;
  c.seed = seed;
  c.grid = {1e3, 2e3, 5e3, 1e4};
  c.ga.n_init = 40;
  c.ga.n_steps = 200;
  c.ga.clusters = 4;
  c.n_val = 25;
  const Space& plain = find_space("plain");
  r.search = search_space(plain, c);
  r.learned = search_statistics(r.search);
  r.uniform = uniform_statistics(plain, Metric::params, 5000, r.input, 10, seed);
  r.valid = check_uniform_models(plain, 500, r.input, 10, seed);
  return r;
}

TEST(Report, ShortNumbers) {
  EXPECT_EQ(short_number(1e3), "1e3");
  EXPECT_EQ(short_number(2e4), "2e4");
  EXPECT_EQ(short_number(5e6), "5e6");
  EXPECT_EQ(short_number(2.5e4), "25000");
}

TEST(Report, DistributionCsvSharesSumToOne) {
  const SpaceReport r = small_report(test::fresh_seed());
  const auto rows = lines_of(distribution_csv(r.uniform, r.learned));
  ASSERT_GT(rows.size(), 3u);
  EXPECT_EQ(rows[0], "log10_lo,log10_hi,uniform,learned");
  double su = 0, sl = 0, prev_hi = -1;
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto f = split(rows[i]);
    ASSERT_EQ(f.size(), 4u) << rows[i];
    const double lo = std::stod(f[0]), hi = std::stod(f[1]);
    EXPECT_NEAR(hi - lo, r.uniform.bin_width, 1e-9);
    if (prev_hi >= 0) {
      EXPECT_NEAR(lo, prev_hi, 1e-9);  // contiguous bins
    }
    prev_hi = hi;
    su += std::stod(f[2]);
    sl += std::stod(f[3]);
  }
  EXPECT_NEAR(su, 1.0, 1e-4);
  EXPECT_NEAR(sl, 1.0, 1e-4);
  // The learned laws aim at 1e3..1e4: their mass lies lower than the uniform baseline's.
  EXPECT_LT(r.learned.mean, r.uniform.mean - 0.5);
}

TEST(Report, SamplesCsvHasEveryModelAndHonestFlags) {
  const SpaceReport r = small_report(test::fresh_seed());
  const Space& plain = find_space("plain");
  const auto rows = lines_of(samples_csv(plain, r.search));
  size_t total = 0;
  for (const auto& w : r.search.windows) total += w.samples.size();
  ASSERT_EQ(rows.size(), total + 1);
  const auto head = split(rows[0]);
  ASSERT_EQ(head.size(), 3 + plain.vars.size() + 4);
  size_t row = 1;
  for (const auto& w : r.search.windows) {
    for (const auto& s : w.samples) {
      const auto f = split(rows[row++]);
      ASSERT_EQ(f.size(), head.size());
      EXPECT_EQ(std::stoi(f[2]), s.law_index);
      for (size_t v = 0; v < plain.vars.size(); ++v) EXPECT_EQ(std::stoi(f[3 + v]), s.vars[v]);
      const double params = std::stod(f[3 + plain.vars.size()]);
      EXPECT_EQ(params, double(s.analytics.params));
      EXPECT_EQ(f.back(), params >= w.lo && params <= w.hi ? "1" : "0");
    }
  }
}

TEST(Report, VerdictFailsWhenABarIsMissed) {
  SpaceReport r = small_report(test::fresh_seed());
  // The small GA (40 laws, 200 steps) may leave a window under the bar on some seeds: the
  // baseline is made to meet every window bar, so that each change below is what breaks it.
  for (auto& w : r.search.windows) {
    if (w.coverage == Coverage::inside) w.in_window = std::max(w.in_window, 0.9);
  }
  EXPECT_TRUE(judge(r).windows_ok);
  EXPECT_TRUE(judge(r).decades_ok);
  EXPECT_TRUE(judge(r).valid_ok);
  SpaceReport bad = r;
  for (auto& w : bad.search.windows) {
    if (w.coverage == Coverage::inside) w.in_window = 0.49;
  }
  EXPECT_FALSE(judge(bad).windows_ok);
  bad = r;
  bad.valid.invalid = 1;
  EXPECT_FALSE(judge(bad).valid_ok);
  // Move every sample of the 1e3 decade's windows to 1e5 parameters: that decade loses its share.
  bad = r;
  for (auto& w : bad.search.windows) {
    for (auto& s : w.samples) s.analytics.params = 100000;
  }
  EXPECT_FALSE(judge(bad).decades_ok);
  const auto md = report_markdown(bad);
  EXPECT_NE(md.find("NOT MET"), std::string::npos);
  EXPECT_EQ(report_markdown(r).find("NOT MET"), std::string::npos);
  const auto j = report_json(r);
  EXPECT_EQ(j["windows"].size(), 3u);
  EXPECT_EQ(j["windows"][0]["coverage"], "inside");
  EXPECT_EQ(j["validity"]["invalid"], 0);
}

TEST(Report, FilesRoundTripAndPlotsWhenGnuplotIsThere) {
  const uint64_t seed = test::fresh_seed();
  const SpaceReport r = small_report(seed);
  const fs::path dir = fs::temp_directory_path() / ("iotnas_report_test_" + std::to_string(seed));
  fs::remove_all(dir);
  const std::string gnuplot = find_gnuplot();
  const WrittenFiles files = write_space_files(r, dir.string(), gnuplot);
  // Three reachable windows -> three laws files; their laws are the GA's.
  int laws_files = 0;
  for (const auto& w : r.search.windows) {
    if (w.coverage == Coverage::unreachable) continue;
    ++laws_files;
    const fs::path p =
        dir / ("laws-params-" + short_number(w.lo) + "-" + short_number(w.hi) + ".json");
    ASSERT_TRUE(fs::exists(p)) << p;
    const LawSet set = load_laws_file(p.string());
    EXPECT_EQ(set.space, "plain");
    EXPECT_EQ(*set.window_lo, w.lo);
    EXPECT_EQ(*set.window_hi, w.hi);
    ASSERT_EQ(set.laws.size(), w.ga.laws.size());
    for (size_t i = 0; i < set.laws.size(); ++i) EXPECT_EQ(set.laws[i].ranges, w.ga.laws[i].ranges);
  }
  EXPECT_EQ(laws_files, 3);
  EXPECT_TRUE(fs::exists(dir / "samples-params.csv"));
  EXPECT_TRUE(fs::exists(dir / "distribution-params.csv"));
  EXPECT_TRUE(fs::exists(dir / "distribution-params.gp"));
  if (gnuplot.empty()) {
    EXPECT_NE(files.plot_note.find("not installed"), std::string::npos);
  } else {
    EXPECT_EQ(files.plot_note, "");
    const std::string png = read_all(dir / "distribution-params.png");
    ASSERT_GT(png.size(), 1000u);
    EXPECT_EQ(png.substr(1, 3), "PNG");
    const std::string svg = read_all(dir / "distribution-params.svg");
    EXPECT_NE(svg.find("<svg"), std::string::npos);
    // A broken script is reported, not ignored.
    std::ofstream(dir / "broken.gp") << "plot 'no-such-file.csv' using 1:2\n";
    EXPECT_NE(run_gnuplot(gnuplot, dir.string(), "broken.gp"), "");
  }
  for (const auto& p : files.paths) EXPECT_TRUE(fs::exists(p)) << p;
  fs::remove_all(dir);

  // Windows out of reach (plain tops out at 1.6e6 parameters) get no laws file.
  SpaceReport far = r;
  SearchConfig c;
  c.grid = {2e6, 5e6, 1e7};
  far.search = search_space(find_space("plain"), c);
  ASSERT_EQ(far.search.windows.size(), 2u);
  far.learned = search_statistics(far.search);
  const WrittenFiles none = write_space_files(far, dir.string(), "");
  for (const auto& p : none.paths) EXPECT_EQ(p.find("laws-"), std::string::npos) << p;
  EXPECT_TRUE(fs::exists(dir / "samples-params.csv"));
  EXPECT_NE(report_markdown(far).find("unreachable (skipped)"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Report, UniformModelsAreValid) {
  for (const auto& space : spaces()) {
    const ValidityCheck v = check_uniform_models(space, 300, {3, 32, 32}, 10, test::fresh_seed());
    EXPECT_EQ(v.checked, 300);
    EXPECT_EQ(v.invalid, 0) << v.first_error;
  }
}

TEST(Sampler, PiecesGiveTheSameModelsAsOneRun) {
  const Space& space = find_space("resnet");
  Law law = uniform_law(space);
  std::vector<Law> laws = {law, law, law};
  laws[1].ranges[0].hi = laws[1].ranges[0].lo;
  SampleOptions o;
  o.seed = test::fresh_seed();
  const auto whole = sample_laws(space, laws, 1000, o);
  std::vector<Sample> pieces;
  for (o.first = 0; o.first < 1000; o.first += 333) {
    auto part = sample_laws(space, laws, std::min<int64_t>(333, 1000 - o.first), o);
    pieces.insert(pieces.end(), part.begin(), part.end());
  }
  ASSERT_EQ(pieces.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(pieces[i].law_index, whole[i].law_index) << i;
    EXPECT_EQ(pieces[i].vars, whole[i].vars) << i;
  }
  o.first = -1;
  EXPECT_THROW(sample_laws(space, laws, 1, o), Error);
}

}  // namespace
}  // namespace iotnas::search
