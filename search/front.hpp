// Pareto fronts and constraint solving over (model, format) results (DESIGN.md section 5). Pure
// functions on plain records, so search/ needs no code from quant/ or calib/: the caller fills a
// Candidate per (model, format) from the store, the sweep and the latency model.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace iotnas::search {

// One trained model evaluated in one float format T(w,t).
struct Candidate {
  std::string model_id;      // the caller's key for the model (e.g. the store's model id)
  std::string space;         // search space the model came from ("" for none)
  int w = 8, t = 23;         // format; T(8,23) is float32
  double accuracy = NAN;     // fraction in [0, 1]; NaN: unknown (never on a front, never chosen)
  int64_t weight_bytes = 0;  // bit-packed weight memory in this format
  double latency_ms = NAN;   // of the float32 model on the device (formats are emulated); NaN:
                             // unknown, so never meets a latency limit and is on no latency front
  int bits() const { return 1 + w + t; }
};

enum class Cost { weight_bytes, latency_ms };
const char* cost_name(Cost c);  // "weight_bytes", "latency_ms"
double cost_value(const Candidate& c, Cost cost);

// Indices of the Pareto-optimal candidates (maximise accuracy, minimise `cost`), ordered by
// increasing cost (and so strictly increasing accuracy). A candidate is on the front when no other
// has cost <= and accuracy >= with one of them strict. Of candidates with equal cost and equal
// accuracy only the first in input order is kept. Candidates whose accuracy or cost is NaN are
// ignored.
std::vector<int> pareto_front(std::span<const Candidate> candidates, Cost cost);

// Limits of a constraint query. max_weight_bytes >= 0; max_latency_ms > 0 when given.
struct Limits {
  int64_t max_weight_bytes = INT64_MAX;
  std::optional<double> max_latency_ms;
};

// A limit no candidate can meet (together with the other limit), and the smallest value of it
// that some candidate does meet.
struct Violation {
  Cost limit = Cost::weight_bytes;
  double given = 0;     // the limit asked for
  double smallest = 0;  // smallest limit that makes the query feasible (the other limit kept);
                        // NaN when no value does (e.g. no candidate has a known latency)
};

// Why a model lost to the winner.
struct RunnerUp {
  int index = -1;      // into candidates: the model's most accurate feasible entry, or (when it
                       // has none) its most accurate entry
  std::string reason;  // one line, e.g. "weight 12000 B > limit 10000 B in every format"
};

struct Solution {
  bool feasible = false;
  int best = -1;  // into candidates: the most accurate feasible candidate (ties: fewer weight
                  // bytes, lower latency, fewer bits, then input order)
  std::vector<RunnerUp> runners_up;   // other models, best first
  std::vector<Violation> violations;  // when infeasible: the limits to relax (one or both)
  std::string message;                // one line: the answer or why there is none
};

// The most accurate candidate meeting both limits. Runners-up: up to `runners_up` other models
// (one entry each), ordered by the accuracy of the entry shown. Infeasible:
//   - one limit cannot be met by the candidates meeting the other: one violation naming it;
//   - each limit alone can be met but not both together: one violation per limit (relax either);
//   - neither can be met even alone: one violation per limit, both to be relaxed: the weight to
//     the lightest candidate's, the latency to the fastest among the candidates that light.
// No candidate with a known accuracy: infeasible with no violations. Throws iotnas::Error for a
// negative weight limit or a latency limit that is not positive and finite.
Solution solve(std::span<const Candidate> candidates, const Limits& limits, int runners_up = 3);

}  // namespace iotnas::search
