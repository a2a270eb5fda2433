// The precision sweep: one single-threaded inference program per OpenMP thread, micro-batches
// small enough that every activation map is at most 1 MiB (rounded by the hook right after the op
// that wrote it, while it is in cache), parameters rounded once per format.
#include "quant/sweep.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>

#include "engine/program.hpp"
#include "kernels/base/error.hpp"
#include "kernels/base/parallel.hpp"
#include "kernels/round/round.hpp"

namespace iotnas::quant {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr int64_t map_budget_bytes = int64_t(1) << 20;  // per activation map and micro-batch
constexpr int max_micro_batch = 256;

// Images per micro-batch: every map (channels padded to 16 lanes, as blocked layouts store them)
// fits in the budget.
}  // namespace

int sweep_micro_batch(const Graph& g) {
  int64_t widest = int64_t(g.input.size()) * 4;
  for (const Node& n : g.nodes) {
    const int64_t c = (int64_t(n.out.c) + 15) / 16 * 16;
    widest = std::max(widest, c * n.out.h * n.out.w * 4);
  }
  return int(std::clamp<int64_t>(map_budget_bytes / widest, 1, max_micro_batch));
}

namespace {

int argmax(const float* v, int k) {
  int best = 0;
  for (int j = 1; j < k; ++j)
    if (v[j] > v[best]) best = j;
  return best;
}

class Runner {
 public:
  Runner(const Model& folded, const EvalSet& set, BackendKind backend, int threads)
      : g_(folded.graph),
        set_(set),
        params_(folded.params),
        state_(folded.state),
        threads_(threads),
        batch_(sweep_micro_batch(folded.graph)) {
    programs_.resize(size_t(threads_));
    // Compiled inside the team, each with one thread (oneDNN picks single-thread kernels).
    FirstException error;
#pragma omp parallel num_threads(threads_)
    {
      omp_set_num_threads(1);
      const int tid = omp_get_thread_num();
      error.run([&] {
        ProgramOptions o;
        o.backend = backend;
        o.batch = batch_;
        o.mode = Mode::infer;
        programs_[size_t(tid)] = compile(g_, o, {params_.data(), nullptr, state_.data()});
      });
    }
    error.rethrow();
  }

  std::vector<float>& params() {
    return params_;
  }
  int micro_batch_size() const {
    return batch_;
  }

  // Accuracy over the set; `format` null: plain float32 (no hook).
  double run(const kernels::RoundParams* format) {
    for (auto& p : programs_) {
      p->params_changed();
      if (format) {
        const kernels::RoundParams rp = *format;
        p->set_hook([rp](int, float* d, int64_t n) { kernels::round_array(d, d, n, rp); },
                    HookScope::computed_maps);
      } else {
        p->set_hook(nullptr);
      }
    }
    const int64_t total = set_.size();
    const int64_t chunks = (total + batch_ - 1) / batch_;
    const int64_t per = set_.shape.size();
    const int k = g_.output().out.c;
    int64_t correct = 0;
    FirstException error;
#pragma omp parallel num_threads(threads_) reduction(+ : correct)
    {
      omp_set_num_threads(1);
      Program& prog = *programs_[size_t(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c) {
        error.run([&] {
          const int64_t at = c * batch_;
          const int n = int(std::min<int64_t>(batch_, total - at));
          prog.forward(set_.images.data() + at * per, n);
          const float* logits = prog.logits();
          for (int i = 0; i < n; ++i)
            correct += argmax(logits + int64_t(i) * k, k) == set_.labels[size_t(at + i)];
        });
      }
    }
    error.rethrow();
    return total ? double(correct) / double(total) : 0.0;
  }

 private:
  const Graph& g_;
  const EvalSet& set_;
  std::vector<float> params_;  // what the programs read: float32 or rounded
  std::vector<float> state_;
  int threads_;
  int batch_;
  std::vector<std::unique_ptr<Program>> programs_;
};

}  // namespace

int best_format(const std::vector<SweepRow>& rows, double reference, double tolerance) {
  int best = -1;
  for (size_t i = 0; i < rows.size(); ++i) {
    const SweepRow& r = rows[i];
    if (!(r.accuracy >= reference - tolerance - 1e-12)) continue;
    if (best < 0) {
      best = int(i);
      continue;
    }
    const SweepRow& b = rows[size_t(best)];
    if (r.bits != b.bits           ? r.bits < b.bits
        : r.accuracy != b.accuracy ? r.accuracy > b.accuracy
                                   : r.format.w > b.format.w)
      best = int(i);
  }
  return best;
}

SweepResult sweep(const Model& model, const EvalSet& set, const SweepOptions& options) {
  if (!(options.tolerance >= 0 && options.tolerance <= 1))
    fail("tolerance ", options.tolerance, " is out of range: give a fraction in [0, 1]");
  if (set.size() == 0) fail("the evaluation set is empty: nothing to sweep");
  if (!(set.shape == model.graph.input))
    fail("the evaluation images do not have the model's input shape");
  std::vector<FloatFormat> formats = options.formats;
  if (formats.empty()) formats.assign(all_formats().begin(), all_formats().end());
  for (FloatFormat f : formats) kernels::check_format(f);
  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();

  const auto t0 = Clock::now();
  const Model folded = fold_batch_norm(model);
  Runner runner(folded, set, options.backend, threads);
  const std::vector<float> exact = folded.params;

  SweepResult result;
  result.images = set.size();
  result.inference_params = int64_t(exact.size());
  const auto t_float = Clock::now();
  result.float32_accuracy = runner.run(nullptr);
  result.float32_seconds = seconds_since(t_float);

  const auto t_formats = Clock::now();
  for (size_t i = 0; i < formats.size(); ++i) {
    const auto t_row = Clock::now();
    const kernels::RoundParams p = kernels::make_round_params(formats[i]);
    kernels::round_array_parallel(exact.data(), runner.params().data(), int64_t(exact.size()), p);
    SweepRow row;
    row.format = formats[i];
    row.bits = 1 + formats[i].w + formats[i].t;
    row.accuracy = runner.run(&p);
    row.weight_bytes = weight_bytes(int64_t(exact.size()), formats[i]);
    row.seconds = seconds_since(t_row);
    result.rows.push_back(row);
    if (options.progress) {
      SweepProgress pr;
      pr.done = int(i + 1);
      pr.total = int(formats.size());
      pr.elapsed_seconds = seconds_since(t0);
      pr.eta_seconds = seconds_since(t_formats) / double(i + 1) * double(formats.size() - i - 1);
      pr.row = &result.rows.back();
      options.progress(pr);
    }
  }
  result.best = best_format(result.rows, result.float32_accuracy, options.tolerance);
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace iotnas::quant
