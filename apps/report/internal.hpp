// What the files of apps/report/ share; not part of the public API (apps/report.hpp).
//   gather.cpp   the store into Results; fronts, reference points and their CSV
//   answers.cpp  answers for the terminal: front tables, constraint solutions (text and JSON)
//   render.cpp   write_report: the report's blocks rendered to Markdown and HTML
//   plots.cpp    gnuplot plots of the fronts
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "apps/report.hpp"

namespace iotnas::apps::detail {

// One number through a printf format `f`, e.g. fmt("%.2f", v).
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Writes data and a gnuplot script for a plot of several fronts, renders SVG and PNG. Returns the
// SVG path relative to dir, or "" when gnuplot failed.
std::string plot_fronts(const std::string& dir, const std::string& name, const std::string& title,
                        const std::string& xlabel, const Results& r,
                        const std::vector<const NamedFront*>& fronts, bool background);

}  // namespace iotnas::apps::detail
