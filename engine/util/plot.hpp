// Plots through gnuplot, when it is installed: finding it and running a script. The scripts
// themselves are written by whoever draws (search/report.cpp, calib/fit.cpp, apps/report/).
#pragma once

#include <string>

namespace iotnas {

// The gnuplot executable on PATH, or "" when none is installed.
std::string find_gnuplot();
// Runs `gnuplot script` with `dir` as the working directory, its output discarded (a failure is
// told by the exit status). Returns "" on success, else why it failed, naming the script.
std::string run_gnuplot(const std::string& gnuplot, const std::string& dir,
                        const std::string& script);

}  // namespace iotnas
