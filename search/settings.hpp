// A run's search and candidate settings (docs/run.md "search", "candidates"), with their field
// tables (engine/util/fields.hpp): JSON keys, ranges and help in one place.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/util/fields.hpp"
#include "search/ga.hpp"
#include "search/windows.hpp"

namespace iotnas::search {

struct SearchSettings {
  std::string metric = "params";  // "params" or "flops": what the windows slide over
  double grid_from = 1e3;         // 1-2-5 grid from..to (powers of ten); consecutive points are
  double grid_to = 1e5;           // the windows
  GaConfig ga;                    // n_init, n_steps, n_eval, clusters, n_rescore are settings
  int n_val = 100;                // models drawn per learned law
};

// How many models become candidates, and which are never candidates.
struct CandidateSettings {
  int per_window = 1;      // models trained per (space, window) for the Pareto wave
  double max_flops = 1e7;  // forward FLOPs per image; larger models are never candidates
  int max_models = 0;      // cap on the Pareto wave (0: no cap)
  // Models chosen per constraint among all in-window samples, by predicted latency and by weight
  // bytes at 8 to 32 bits (never by accuracy).
  int per_constraint = 0;
  // Models trained and swept with the same recipe for comparison ("ref:NAME" or spec files),
  // resolved by the caller. They are never on a front or in an answer.
  std::vector<std::string> references;
};

// metric and the grid are checked by the caller (parse_metric, grid_125); the references too.
std::span<const fields::Field<SearchSettings>> search_fields();
std::span<const fields::Field<CandidateSettings>> candidate_fields();

// The config of search_space for these settings on an input shape, seeded with `seed`. Throws
// iotnas::Error for an unknown metric or a grid that is not of powers of ten.
SearchConfig search_config(const SearchSettings& s, Shape input, int classes, uint64_t seed);

}  // namespace iotnas::search
