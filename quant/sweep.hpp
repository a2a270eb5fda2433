// The precision sweep (DESIGN.md section 4): a trained model evaluated under float formats T(w,t),
// rounding every inference parameter once, the input images, and every activation map an op hands
// to the next. T(8,23) reproduces the float32 evaluation exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/backend.hpp"
#include "engine/model.hpp"
#include "engine/trainer.hpp"
#include "quant/format.hpp"

namespace iotnas::quant {

struct SweepRow {
  FloatFormat format;
  int bits = 0;              // 1 + w + t
  double accuracy = 0;       // fraction in [0, 1]
  int64_t weight_bytes = 0;  // of the inference model (batch norm folded), bit-packed
  double seconds = 0;        // evaluation time of this format
};

struct SweepProgress {
  int done = 0, total = 0;  // formats
  double elapsed_seconds = 0, eta_seconds = 0;
  const SweepRow* row = nullptr;  // the format just finished
};

struct SweepOptions {
  std::vector<FloatFormat> formats;  // empty: all 184, in grid order
  BackendKind backend = BackendKind::portable;
  int threads = 0;           // 0: the OpenMP default
  double tolerance = 0.005;  // for `best`: accuracy at most this far below float32's
  std::function<void(const SweepProgress&)> progress;  // after each format (from one thread)
};

struct SweepResult {
  double float32_accuracy = 0;  // plain float32 evaluation (no rounding at all)
  double float32_seconds = 0;   // its evaluation time
  int64_t images = 0;
  int64_t inference_params = 0;  // parameters of the folded model
  std::vector<SweepRow> rows;    // in options.formats order
  int best = -1;                 // into rows: fewest bits within tolerance (ties: more accurate);
                                 // -1 when none is
  double seconds = 0;            // whole sweep, float32 baseline included
};

// Throws iotnas::Error for an empty set, a set of another shape, a type outside the grid or a
// tolerance outside [0, 1].
SweepResult sweep(const Model& model, const EvalSet& set, const SweepOptions& options);

// Images per micro-batch for a graph: every activation map of a micro-batch (channels counted
// padded to 16 lanes) takes at most 1 MiB, so each is rounded while it is still in cache.
int sweep_micro_batch(const Graph& graph);

// The fewest-bits row within `tolerance` of `reference` (ties: higher accuracy, then larger w);
// -1 when no row is.
int best_format(const std::vector<SweepRow>& rows, double reference, double tolerance);

}  // namespace iotnas::quant
