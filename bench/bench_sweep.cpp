// Precision-sweep speed for the plain reference CNNs on the Fashion-MNIST test images:
//  - overhead: evaluation under a format (every parameter, the input and every computed map
//    rounded) / plain float32 evaluation, same engine, same micro-batches; medians of interleaved
//    repetitions;
//  - float32 evaluation images/s and GFLOP/s (forward FLOPs x images / s);
//  - with --full: the time of a whole 184-type sweep over the 10,000 test images.
// One JSON object per model on stdout. Weights are the initialisation (speed does not depend on
// training). Usage: bench_sweep [--models plain-1k,plain-14k,plain-120k] [--reps 5] [--full]
//                               [--types half] [--backend auto] [--threads 0]
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/reference_models.hpp"
#include "kernels/base/error.hpp"
#include "quant/sweep.hpp"

using namespace iotnas;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string models = "plain-1k,plain-14k,plain-120k", types = "half", backend = "auto";
  int reps = 5, threads = 0;
  bool full = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) fail(a, " needs a value");
      return argv[++i];
    };
    if (a == "--models")
      models = next();
    else if (a == "--types")
      types = next();
    else if (a == "--backend")
      backend = next();
    else if (a == "--reps")
      reps = std::stoi(next());
    else if (a == "--threads")
      threads = std::stoi(next());
    else if (a == "--full")
      full = true;
    else
      fail("unknown argument ", a, " (see the comment at the top of bench/bench_sweep.cpp)");
  }
  if (threads > 0) omp_set_num_threads(threads);
  const Dataset data = load_dataset("fashion-mnist");
  const EvalSet set = make_eval_set(data, true);
  for (const std::string& name : split(models)) {
    const Model model = make_model(reference_model(name, data.shape, data.classes), 0);
    const Analytics a = analyze(fold_batch_norm(model).graph);
    quant::SweepOptions o;
    o.backend = parse_backend(backend);
    o.formats = quant::parse_types(types);
    std::vector<double> plain, rounded;
    quant::sweep(model, set, o);  // warm-up: plans, caches
    for (int r = 0; r < reps; ++r) {
      const quant::SweepResult res = quant::sweep(model, set, o);
      plain.push_back(res.float32_seconds);
      double s = 0;
      for (const auto& row : res.rows) s += row.seconds;
      rounded.push_back(s / double(res.rows.size()));
    }
    const double t_plain = median(plain), t_round = median(rounded);
    nlohmann::json j = {{"model", name},
                        {"params", a.params},
                        {"flops", a.flops},
                        {"micro_batch", quant::sweep_micro_batch(fold_batch_norm(model).graph)},
                        {"threads", omp_get_max_threads()},
                        {"backend", backend},
                        {"types", types},
                        {"images", set.size()},
                        {"float32_seconds", t_plain},
                        {"rounded_seconds", t_round},
                        {"overhead", t_round / t_plain},
                        {"float32_images_per_second", double(set.size()) / t_plain},
                        {"float32_gflops", double(a.flops) * double(set.size()) / t_plain / 1e9}};
    if (full) {
      quant::SweepOptions all = o;
      all.formats = {};
      const quant::SweepResult res = quant::sweep(model, set, all);
      j["full_sweep_seconds"] = res.seconds;
      j["full_sweep_gflops"] = double(a.flops) * double(set.size()) * 185.0 / res.seconds / 1e9;
    }
    std::cout << j.dump() << std::endl;
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_sweep: error: %s\n", e.what());
  return 1;
}
