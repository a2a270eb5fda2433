// Feeds files to a fuzz target without libFuzzer: the crash corpus as regression tests (ctest
// runs tests/fuzz/crashes/<target> and tests/fuzz/corpus/<target> through every target), and any
// file by hand.
//   iotnas_fuzz_replay --list
//   iotnas_fuzz_replay TARGET FILE_OR_DIR...   (a directory: every file in it, sorted)
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_target.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  using iotnas::fuzz::Target;
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const Target& t : iotnas::fuzz::targets()) std::printf("%s\n", t.name);
    return 0;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TARGET FILE_OR_DIR... | --list\n", argv[0]);
    return 2;
  }
  const Target* target = iotnas::fuzz::find_target(argv[1]);
  if (!target) {
    std::fprintf(stderr, "unknown fuzz target '%s' (--list names them)\n", argv[1]);
    return 2;
  }
  std::vector<fs::path> files;
  for (int i = 2; i < argc; ++i) {
    const fs::path p(argv[i]);
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else if (fs::is_regular_file(p)) {
      files.push_back(p);
    } else if (!fs::exists(p)) {
      std::printf("%s: absent, nothing to run\n", p.c_str());
    }
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    std::printf("%s %s (%zu bytes): ", target->name, f.c_str(), bytes.size());
    std::fflush(stdout);
    const std::string refusal = iotnas::fuzz::run_one(*target, bytes);
    std::printf("%s%.300s\n", refusal.empty() ? "accepted" : "refused: ", refusal.c_str());
  }
  std::printf("%s: %zu inputs, no finding\n", target->name, files.size());
  return 0;
}
