#include "search/settings.hpp"

namespace iotnas::search {

namespace {

using fields::at;
using S = SearchSettings;
using C = CandidateSettings;

static_assert(kMaxEval == 100000 && kMaxNVal == 1000000 && kMaxWindowSamples == 10000000,
              "the rules below name these limits");

const std::vector<fields::Field<S>> kSearchFields = {
    {.key = "metric",
     .ref = at<&S::metric>,
     .help = "params or flops: what the windows slide over"},
    {.key = "grid_from", .ref = at<&S::grid_from>, .help = "first point of the 1-2-5 grid"},
    {.key = "grid_to", .ref = at<&S::grid_to>, .help = "last point of the 1-2-5 grid"},
    {.key = "n_init",
     .ref = at<&S::ga, &GaConfig::n_init>,
     .help = "GA initial population",
     .min = 2,
     .max = kMaxInit},
    {.key = "n_steps",
     .ref = at<&S::ga, &GaConfig::n_steps>,
     .help = "GA steps",
     .min = 0,
     .max = kMaxSteps},
    {.key = "n_eval",
     .ref = at<&S::ga, &GaConfig::n_eval>,
     .help = "models drawn to estimate one law",
     .min = 2,
     .max = kMaxEval},
    {.key = "clusters",
     .ref = at<&S::ga, &GaConfig::clusters>,
     .help = "laws kept per window (spectral clusters)",
     .min = 1,
     .also = [](const S& s) { return s.ga.clusters <= s.ga.n_init; },
     .rule = "must be in [1, search.n_init]"},
    {.key = "n_rescore",
     .ref = at<&S::ga, &GaConfig::n_rescore>,
     .help = "models drawn to rescore the best laws (0: none)",
     .min = 0,
     .max = kMaxEval,
     .also = [](const S& s) { return s.ga.n_rescore != 1; },
     .rule = "must be 0 (none) or in [2, 100000]"},
    {.key = "n_val",
     .ref = at<&S::n_val>,
     .help = "models drawn per learned law",
     .min = 1,
     .max = kMaxNVal,
     .also = [](const S& s) { return int64_t(s.n_val) * s.ga.clusters <= kMaxWindowSamples; },
     .rule = "must be in [1, 1000000], with n_val x clusters <= 1e7 models per window"},
};

const std::vector<fields::Field<C>> kCandidateFields = {
    {.key = "per_window",
     .ref = at<&C::per_window>,
     .help = "models per (space, window)",
     .min = 1,
     .max = 1000},
    {.key = "max_flops",
     .ref = at<&C::max_flops>,
     .help = "largest forward FLOPs per image of a candidate",
     .min = 0,
     .min_open = true,
     .rule = "must be positive"},
    {.key = "max_models",
     .ref = at<&C::max_models>,
     .help = "cap on the Pareto wave (0: no cap)",
     .min = 0,
     .rule = "must be >= 0 (0: no cap)"},
    {.key = "per_constraint",
     .ref = at<&C::per_constraint>,
     .help = "models chosen per constraint",
     .min = 0,
     .max = 100},
    {.key = "references",
     .ref = at<&C::references>,
     .help = "models trained for comparison (ref:NAME or spec files)"},
};

}  // namespace

std::span<const fields::Field<SearchSettings>> search_fields() {
  return kSearchFields;
}

std::span<const fields::Field<CandidateSettings>> candidate_fields() {
  return kCandidateFields;
}

SearchConfig search_config(const SearchSettings& s, Shape input, int classes, uint64_t seed) {
  SearchConfig sc;
  sc.metric = parse_metric(s.metric);
  sc.grid = grid_125(s.grid_from, s.grid_to);
  sc.ga = s.ga;
  sc.n_val = s.n_val;
  sc.input = input;
  sc.classes = classes;
  sc.seed = seed;
  return sc;
}

}  // namespace iotnas::search
