// What `iotnas search` writes (docs/search.md): per space, the laws of every window (laws files),
// the drawn models (CSV), the distribution of log10(metric) for the uniform baseline and for the
// learned laws (CSV, and PNG/SVG through gnuplot when it is installed: the paper's Fig. 1 and
// Fig. 4), and a report with the quality figures (Markdown for people, JSON for scripts).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "search/windows.hpp"

namespace iotnas::search {

// Models drawn uniformly from the whole space, each built as a spec and checked by engine's
// shape inference (build_graph); the analytic fast path is compared with analyze() too.
struct ValidityCheck {
  int64_t checked = 0;
  int64_t invalid = 0;      // build_graph threw, or the analytics disagreed
  std::string first_error;  // "<space>[vars]: message" of the first invalid model, "" if none
};
ValidityCheck check_uniform_models(const Space& space, int64_t n, Shape input, int classes,
                                   uint64_t seed);

// One space's search with the figures the report needs.
struct SpaceReport {
  SpaceSearch search;
  Statistics uniform;   // log10(metric) of uniform samples (the baseline)
  Statistics learned;   // log10(metric) of every sample of every window
  ValidityCheck valid;  // uniform models checked by shape inference
  uint64_t seed = 0;
  Shape input;
  int classes = 10;
};

// The quality bars of issue 4, judged on a report: every window inside the reachable range has
// at least half its samples inside it, and every reachable decade between 1e3 and 1e7 (params)
// or 1e5 and 1e9 (FLOPs) holds at least 10 % of the samples; every checked model is valid.
struct Verdict {
  bool windows_ok = true, decades_ok = true, valid_ok = true;
  bool ok() const { return windows_ok && decades_ok && valid_ok; }
};
Verdict judge(const SpaceReport& r);

// CSV of the two distributions over bins of log10(metric): log10_lo,log10_hi,uniform,learned
// (share of each set's models per bin); rows from the lowest to the highest non-empty bin.
std::string distribution_csv(const Statistics& uniform, const Statistics& learned);
// CSV of every sample: window_lo,window_hi,law_index,<variables...>,params,flops,
// peak_activation_bytes,in_window.
std::string samples_csv(const Space& space, const SpaceSearch& search);
// A gnuplot script drawing `csv` (a distribution_csv file in the script's folder) to
// `stem`.png and `stem`.svg.
std::string gnuplot_script(const SpaceReport& r, const std::string& csv, const std::string& stem);

nlohmann::json report_json(const SpaceReport& r);
// A Markdown section for one space: reachable range, per-window and per-decade tables, baseline.
std::string report_markdown(const SpaceReport& r);

struct WrittenFiles {
  std::vector<std::string> paths;  // every file written, in order
  std::string plot_note;           // why no PNG/SVG was made, "" when they were
};
// Writes one space's files into `dir` (created if needed): laws-<metric>-<lo>-<hi>.json per
// searched window, samples-<metric>.csv, distribution-<metric>.csv/.gp (+ .png/.svg when
// `gnuplot` is not empty). Each file is written atomically.
WrittenFiles write_space_files(const SpaceReport& r, const std::string& dir,
                               const std::string& gnuplot);

// "1e3", "2e4", "5e6": a 1-2-5 grid point as file names and tables show it.
std::string short_number(double v);

}  // namespace iotnas::search
