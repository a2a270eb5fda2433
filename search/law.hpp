// Sampling laws (paper §4): per variable a uniform range [lo, hi] inside the absolute bounds.
// A sampler draws exactly the number of models asked for, cycling through a list of laws; it
// never filters or rejects (landing in a window is the laws' merit). Laws files (JSON,
// docs/search.md) carry laws between `iotnas laws`, `iotnas sample` and people.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/graph.hpp"
#include "engine/spec.hpp"
#include "engine/util/rng.hpp"
#include "search/space.hpp"

namespace iotnas::search {

struct Range {
  int lo = 0, hi = 0;  // inclusive, values of the variable (on its step)
  bool operator==(const Range&) const = default;
};

struct Law {
  std::vector<Range> ranges;     // one per variable of the space, in the space's order
  double cost = NAN;             // GA cost in log10 units; NaN when unknown (hand-written)
  double mu = NAN, sigma = NAN;  // mean and standard deviation of log10(metric) the GA estimated
};

// The whole space: every variable over its absolute bounds (the uniform baseline).
Law uniform_law(const Space& space);
// Throws iotnas::Error naming the variable when a range is reversed, outside the bounds or off
// the variable's step, or when the law has the wrong number of ranges.
void check_law(const Space& space, const Law& law);
// One vector drawn from the law: each variable uniform over its values in [lo, hi].
void draw_vector(const Space& space, const Law& law, Rng& rng, std::span<int> out);

// One drawn model.
struct Sample {
  int law_index = 0;      // which law of the list drew it
  std::vector<int> vars;  // the variable vector
  Analytics analytics;    // params, FLOPs, activation bytes (engine's analyze, exactly)
  ModelSpec spec;         // filled when SampleOptions::with_specs (else no layers)
};

struct SampleOptions {
  Shape input{1, 28, 28};
  int classes = 10;
  uint64_t seed = 1;
  bool with_specs = false;  // also build each model's spec (about 10x slower)
  int64_t first = 0;        // index of the first model: lets a long run be drawn in pieces
};

// Draws exactly n models: model i (counted from options.first) comes from laws[i % laws.size()]
// with its own random stream (seed, i), so the result depends neither on the thread count nor on
// how a run is split into pieces. Runs on OpenMP threads.
// Throws iotnas::Error when `laws` is empty or a law does not fit the space.
std::vector<Sample> sample_laws(const Space& space, std::span<const Law> laws, int64_t n,
                                const SampleOptions& options);

// A list of laws as stored in a laws file.
struct LawSet {
  std::string space;                // space name
  std::optional<Metric> metric;     // what the laws were learned for
  std::optional<double> window_lo;  // [window_lo, window_hi] in metric units
  std::optional<double> window_hi;
  std::optional<Shape> input;  // input shape the laws were learned for
  int classes = 10;
  std::optional<uint64_t> seed;  // GA seed, for the record
  std::vector<Law> laws;
};

inline constexpr const char* kLawsFormat = "iotnas-laws/1";

// JSON text of a laws file (pretty-printed, ranges keyed by variable name).
std::string laws_to_json(const LawSet& set);
// Parses and checks a laws file's text against the space it names; `origin` names the source in
// errors. Throws iotnas::Error for a damaged file, an unknown space or variable, or a range
// outside the space's bounds.
LawSet parse_laws(std::string_view text, const std::string& origin);
LawSet load_laws_file(const std::string& path);
// Throws iotnas::Error when `set` (read from `origin`) holds laws of another space than `space`.
void check_laws_space(const LawSet& set, const Space& space, const std::string& origin);
// Writes atomically (temporary file + rename): a failed write leaves no half-written file.
void save_laws_file(const std::string& path, const LawSet& set);

}  // namespace iotnas::search
