// Choosing models from a search's samples by their analytic properties and predicted latency,
// never by accuracy (docs/run.md "Selection"): the Pareto wave per window, the picks per
// constraint, the models a calibration measures, and the models `iotnas calib measure` samples.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/graph.hpp"
#include "engine/spec.hpp"
#include "search/settings.hpp"
#include "search/windows.hpp"

namespace iotnas::search {

// A chosen model.
struct Pick {
  std::string space;
  std::vector<int> vars;
  ModelSpec spec;
  std::string spec_json;  // spec_to_json(spec); empty where the selection had no need of it
  Analytics analytics;
};

// The Pareto wave: for each window (outer) and space (inner), `per_window` in-window samples under
// the FLOP cap, spread evenly by size over the window's samples; a model already in `seen` (spec
// JSON) is skipped, and every pick's spec JSON joins `seen`, also those that `max_models` then
// cuts from the end of the list (so a cap keeps the spread over sizes).
std::vector<Pick> select_per_window(std::span<const SpaceSearch> searches, Metric metric,
                                    const CandidateSettings& settings, Shape input, int classes,
                                    std::set<std::string>& seen);

// The models one constraint adds: among every in-window sample under the FLOP cap whose
// inference parameters lie in [B/4, B] (B = max_weight_bytes: the weights fit B somewhere between
// 32 and 8 bits) and whose predicted latency meets max_latency_ms, `per_constraint` spread evenly
// by size; those whose spec JSON is in `picked` are left out, the others join it. Without
// `predict` the latency limit is not judged. `predict` sees picks whose spec_json is empty.
struct ConstraintPicks {
  std::vector<Pick> added;      // not yet candidates
  int chosen = 0;               // picks spread over the fitting samples (before leaving out)
  size_t fitting = 0;           // samples that fit the constraint
  bool latency_judged = false;  // a latency limit was judged by `predict`
};
ConstraintPicks select_for_constraint(std::span<const SpaceSearch> searches,
                                      int64_t max_weight_bytes,
                                      std::optional<double> max_latency_ms,
                                      const CandidateSettings& settings, Shape input, int classes,
                                      std::set<std::string>& picked,
                                      const std::function<double(const Pick&)>& predict);

// The models a calibration measures, `models` at most: the first candidates, then the samples of
// every window in turn (sample j of each window of each space, j = 0, 1, ...) under the FLOP cap
// and not yet in `seen` (spec JSON; they join it). Returns candidates then samples.
std::vector<Pick> select_for_calibration(std::span<const Pick> candidates,
                                         std::span<const SpaceSearch> searches, int models,
                                         double max_flops, Shape input, int classes,
                                         std::set<std::string>& seen);

// Models spread over `spaces` and over [lo, hi] parameters for `iotnas calib measure`: one cell
// per (window of the 1-2-5 grid between lo and hi, space that reaches it), the n models dealt
// evenly over the cells; in each cell the sampling laws the genetic algorithm learns for that
// window draw the models (a uniform draw where the GA cannot run: `note` says why). No spec name
// twice; in-window models first. Deterministic in `seed`. Throws iotnas::Error when no space
// reaches [lo, hi]. The picks carry spec, vars and analytics (no spec JSON).
std::vector<Pick> sample_across_windows(std::span<const Space* const> spaces, int n, double lo,
                                        double hi, Shape input, int classes, uint64_t seed,
                                        const std::function<void(const std::string&)>& note = {});

}  // namespace iotnas::search
