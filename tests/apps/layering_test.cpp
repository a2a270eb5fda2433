// The layering of docs/architecture.md, checked on every source file: each folder includes only
// the folders below it, engine/util only the error type, and a backend's own headers only its
// own files. A new include that points up fails here with the file and the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace {

namespace fs = std::filesystem;

// What the files of a folder (the longest matching prefix) may include ("iotnas/": the generated
// build configuration).
const std::map<std::string, std::set<std::string>>& rules() {
  static const std::map<std::string, std::set<std::string>> r = {
      {"kernels/base/", {"kernels/base/"}},
      {"kernels/", {"kernels/", "iotnas/"}},
      {"engine/util/", {"engine/util/", "kernels/base/"}},
      {"engine/", {"engine/", "kernels/", "iotnas/"}},
      {"quant/", {"quant/", "engine/", "kernels/", "iotnas/"}},
      {"calib/", {"calib/", "engine/", "kernels/", "iotnas/"}},
      {"search/", {"search/", "engine/", "kernels/", "iotnas/"}},
      {"apps/store/", {"apps/store/", "engine/", "kernels/", "iotnas/"}},
      {"apps/", {"apps/", "quant/", "calib/", "search/", "engine/", "kernels/", "iotnas/"}},
  };
  return r;
}

std::string folder_of(const std::string& rel) {
  std::string best;
  for (const auto& [prefix, allowed] : rules())
    if (rel.rfind(prefix, 0) == 0 && prefix.size() > best.size()) best = prefix;
  return best;
}

TEST(Layering, EveryIncludePointsDown) {
  const fs::path root = IOTNAS_SOURCE_DIR;
  const std::regex include_re(R"re(^\s*#\s*include\s+"([^"]+)")re");
  const std::regex backend_re(R"re(^engine/(dnnl|portable|cuda)/)re");
  int files = 0, includes = 0;
  for (const char* top : {"kernels", "engine", "quant", "calib", "search", "apps"}) {
    for (const auto& e : fs::recursive_directory_iterator(root / top)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".cpp" && ext != ".hpp" && ext != ".cu" && ext != ".cuh"))
        continue;
      const std::string rel = fs::relative(e.path(), root).generic_string();
      const std::string folder = folder_of(rel);
      ASSERT_FALSE(folder.empty()) << rel;
      const auto& allowed = rules().at(folder);
      std::smatch rel_backend;
      std::regex_search(rel, rel_backend, backend_re);
      std::ifstream in(e.path());
      std::string line;
      for (int no = 1; std::getline(in, line); ++no) {
        std::smatch m;
        if (!std::regex_search(line, m, include_re)) continue;
        const std::string inc = m[1];
        if (inc.find('/') == std::string::npos) continue;  // a file next to it
        ++includes;
        bool ok = false;
        for (const auto& a : allowed) ok |= inc.rfind(a, 0) == 0;
        // engine/util is the bottom of engine: allowed from everywhere engine is.
        EXPECT_TRUE(ok) << rel << ":" << no << " includes " << inc << ", outside what " << folder
                        << " may include (docs/architecture.md)";
        // A backend's folder is its own: only its files include its headers.
        std::smatch inc_backend;
        if (std::regex_search(inc, inc_backend, backend_re))
          EXPECT_TRUE(!rel_backend.empty() && rel_backend[1] == inc_backend[1])
              << rel << ":" << no << " includes " << inc
              << ": backends are reached through engine/backend.hpp's registry only";
      }
      ++files;
    }
  }
  EXPECT_GT(files, 100);
  EXPECT_GT(includes, 300);
}

}  // namespace
