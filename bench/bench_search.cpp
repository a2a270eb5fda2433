// Search (issue 4's performance bars), on Fashion-MNIST's input (1x28x28, 10 classes):
//   BM_analytics/<space>   - draw a vector from the uniform law and compute params, FLOPs and
//                            activation bytes (NetBuilder, no graph), one thread:
//                            models_per_second (bar for plain: >= 100,000 per core)
//   BM_ga/<space>          - one GA search (paper settings: 100 + 900 laws x 10 models, plus the
//                            rescoring) for the window 1e4:2e4 params, one thread (bar <= 0.2 s)
//   BM_windows/<space>     - all 12 windows of the params grid, all threads (bar <= 3 s)
//   BM_uniform/<space>     - one million uniform models with their statistics, all threads
//                            (bar <= 10 s)
// The time per iteration is the figure; counters give rates. On a shared machine run with
//   bench_search --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>
#include <vector>

#include "search/ga.hpp"
#include "search/law.hpp"
#include "search/space.hpp"
#include "search/windows.hpp"

namespace {

using namespace iotnas;
using namespace iotnas::search;

const Shape kInput{1, 28, 28};

void BM_analytics(benchmark::State& state, std::string name) {
  const Space& space = find_space(name);
  const Law law = uniform_law(space);
  NetBuilder scratch;
  std::vector<int> vars(space.vars.size());
  Rng rng(1, 0);
  int64_t sink = 0;
  const int64_t batch = 1000;
  for (auto _ : state) {
    for (int64_t i = 0; i < batch; ++i) {
      draw_vector(space, law, rng, vars);
      const Analytics a = analyze_vars(space, vars, kInput, 10, scratch);
      sink += a.params + a.flops + a.peak_activation_bytes;
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["models_per_second"] =
      benchmark::Counter(double(state.iterations() * batch), benchmark::Counter::kIsRate);
}

void BM_ga(benchmark::State& state, std::string name) {
  const Space& space = find_space(name);
  GaConfig c;
  int64_t evaluated = 0;
  for (auto _ : state) {
    c.seed++;
    const GaResult r = learn_laws(space, {Metric::params, 1e4, 2e4, kInput, 10}, c);
    evaluated += r.evaluated;
    benchmark::DoNotOptimize(r.laws.data());
  }
  state.counters["networks_evaluated"] = double(evaluated) / double(state.iterations());
}

void BM_windows(benchmark::State& state, std::string name) {
  const Space& space = find_space(name);
  SearchConfig c;
  int searched = 0;
  for (auto _ : state) {
    c.seed++;
    const SpaceSearch s = search_space(space, c);
    searched = 0;
    for (const auto& w : s.windows) searched += w.coverage != Coverage::unreachable;
    benchmark::DoNotOptimize(s.windows.data());
  }
  state.counters["windows_searched"] = searched;
  state.counters["threads"] = omp_get_max_threads();
}

void BM_uniform(benchmark::State& state, std::string name) {
  const Space& space = find_space(name);
  const int64_t n = 1000000;
  uint64_t seed = 1;
  for (auto _ : state) {
    const Statistics s = uniform_statistics(space, Metric::params, n, kInput, 10, seed++);
    benchmark::DoNotOptimize(s.mean);
  }
  state.counters["models_per_second"] =
      benchmark::Counter(double(state.iterations() * n), benchmark::Counter::kIsRate);
  state.counters["threads"] = omp_get_max_threads();
}

void register_all() {
  for (const auto& space : spaces()) {
    benchmark::RegisterBenchmark(("BM_analytics/" + space.name).c_str(), BM_analytics, space.name)
        ->Unit(benchmark::kMicrosecond);
  }
  for (const auto& space : spaces()) {
    benchmark::RegisterBenchmark(("BM_ga/" + space.name).c_str(), BM_ga, space.name)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  for (const auto& space : spaces()) {
    benchmark::RegisterBenchmark(("BM_windows/" + space.name).c_str(), BM_windows, space.name)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(1);
  }
  for (const auto& space : spaces()) {
    benchmark::RegisterBenchmark(("BM_uniform/" + space.name).c_str(), BM_uniform, space.name)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
