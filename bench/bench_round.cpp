// Rounding to T(w,t): every row of kernels::round_variants() (ordinary and streaming stores) on a
// cache-resident 16 KiB array and on 256 MiB arrays (DRAM, 8 bytes moved per element), side by
// side with two peers measured in the same run:
//   copy_stream - a streaming-store copy (the DRAM bandwidth a one-pass kernel can reach),
//   f16c        - the hardware's float -> half -> float conversion (vcvtps2ph + vcvtph2ps).
// Counters: bytes_per_second (read + written), items_per_second (elements), elem_per_cycle (at
// the core clock estimated at start-up from a chain of dependent adds; see the context line
// cpu_ghz_estimate). Run with repetitions and random interleaving on a shared machine:
//   bench_round --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true
//               --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/round/round.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
// GCC 12 warns inside its own headers (_mm512_undefined_epi32); a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

using namespace iotnas::kernels;

constexpr int64_t cache_elems = 16 * 1024 / 4;                  // 16 KiB
constexpr int64_t dram_elems = int64_t(256) * 1024 * 1024 / 4;  // 256 MiB

// An aligned float array, first touched by the threads that will use it.
struct Buffer {
  float* ptr = nullptr;
  int64_t n = 0;
  explicit Buffer(int64_t count) : n(count) {
    ptr = static_cast<float*>(std::aligned_alloc(64, size_t(count) * 4));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) ptr[i] = 0.f;
  }
  ~Buffer() {
    std::free(ptr);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

void fill_activations(float* p, int64_t n) {
  std::mt19937 rng(42);
  std::normal_distribution<float> d(0.f, 2.f);
  std::vector<float> block(1 << 16);
  for (auto& x : block) x = d(rng);
  for (int64_t i = 0; i < n; i += int64_t(block.size()))
    std::memcpy(p + i, block.data(), size_t(std::min<int64_t>(int64_t(block.size()), n - i)) * 4);
}

Buffer& dram_src() {
  static Buffer b(dram_elems);
  static const bool filled = (fill_activations(b.ptr, b.n), true);
  (void)filled;
  return b;
}
Buffer& dram_dst() {
  static Buffer b(dram_elems);
  return b;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Core clock in GHz: 8 dependent one-cycle adds per loop trip, timed in this thread's CPU time
// (so time-slicing with other processes does not lower the estimate); the best of 5.
double estimate_ghz() {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    uint64_t x = 0;
    const uint64_t one = 1, trips = 20'000'000;
    const double t0 = thread_cpu_seconds();
    for (uint64_t i = 0; i < trips; ++i) {
#if defined(__x86_64__)
      asm volatile(
          "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
          "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0"
          : "+r"(x)
          : "r"(one));
#elif defined(__aarch64__)
      asm volatile(
          "add %0, %0, %1\n\tadd %0, %0, %1\n\tadd %0, %0, %1\n\tadd %0, %0, %1\n\t"
          "add %0, %0, %1\n\tadd %0, %0, %1\n\tadd %0, %0, %1\n\tadd %0, %0, %1"
          : "+r"(x)
          : "r"(one));
#endif
    }
    const double s = thread_cpu_seconds() - t0;
    best = std::max(best, 8.0 * double(trips) / s / 1e9);
  }
  return best;
}

double ghz() {
  static const double g = estimate_ghz();
  return g;
}

void set_counters(benchmark::State& state, int64_t n) {
  state.SetItemsProcessed(int64_t(state.iterations()) * n);
  state.SetBytesProcessed(int64_t(state.iterations()) * n * 8);
  state.counters["elem_per_cycle"] = benchmark::Counter(
      double(state.iterations()) * double(n) / (ghz() * 1e9), benchmark::Counter::kIsRate);
}

// Runs fn(src, dst, count) on `threads` contiguous slices (64-byte multiples) of [0, n).
template <typename Fn>
void on_threads(int threads, const float* src, float* dst, int64_t n, Fn fn) {
  if (threads == 1) {
    fn(src, dst, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t parts = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t slice = (n / parts + 15) / 16 * 16;
    const int64_t begin = std::min(n, me * slice), end = std::min(n, begin + slice);
    fn(src + begin, dst + begin, end - begin);
  }
}

// ---- the kernels under test -------------------------------------------------------------------

void bm_round_cache(benchmark::State& state, RoundKernel fn, FloatFormat f) {
  Buffer src(cache_elems), dst(cache_elems);
  fill_activations(src.ptr, src.n);
  const RoundParams p = make_round_params(f);
  for (auto _ : state) {
    fn(src.ptr, dst.ptr, src.n, p);
    benchmark::DoNotOptimize(dst.ptr);
    benchmark::ClobberMemory();
  }
  set_counters(state, src.n);
}

void bm_round_dram(benchmark::State& state, RoundKernel fn, FloatFormat f, int threads) {
  const RoundParams p = make_round_params(f);
  const float* src = dram_src().ptr;
  float* dst = dram_dst().ptr;
  for (auto _ : state) {
    on_threads(threads, src, dst, dram_elems,
               [&](const float* s, float* d, int64_t n) { fn(s, d, n, p); });
    benchmark::ClobberMemory();
  }
  set_counters(state, dram_elems);
}

// The public front end for big arrays (OpenMP over all threads, streaming stores).
void bm_round_array_parallel(benchmark::State& state, FloatFormat f) {
  const RoundParams p = make_round_params(f);
  for (auto _ : state) {
    round_array_parallel(dram_src().ptr, dram_dst().ptr, dram_elems, p);
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = omp_get_max_threads();
  set_counters(state, dram_elems);
}

// ---- peers (x86-64 with AVX-512 and F16C) -----------------------------------------------------

#if defined(__x86_64__)
bool have_avx512_f16c() {
  return cpu_features().has_avx512() && cpu_features().f16c;
}

__attribute__((target("avx512f"))) void copy_stream(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 63) != 0; ++i) dst[i] = src[i];
  for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();
}

__attribute__((target("avx512f,f16c"))) inline __m512 half_trip(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// F16C round trip; n a multiple of 16 (both array sizes here are).
template <bool stream>
__attribute__((target("avx512f,f16c"))) void f16c_round(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  if (stream)
    for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 63) != 0; i += 16)
      _mm512_storeu_ps(dst + i, half_trip(_mm512_loadu_ps(src + i)));
  for (; i + 32 <= n; i += 32) {
    const __m512 a = half_trip(_mm512_loadu_ps(src + i));
    const __m512 b = half_trip(_mm512_loadu_ps(src + i + 16));
    if (stream) {
      _mm512_stream_ps(dst + i, a);
      _mm512_stream_ps(dst + i + 16, b);
    } else {
      _mm512_storeu_ps(dst + i, a);
      _mm512_storeu_ps(dst + i + 16, b);
    }
  }
  for (; i < n; i += 16) _mm512_storeu_ps(dst + i, half_trip(_mm512_loadu_ps(src + i)));
  if (stream) _mm_sfence();
}

void bm_copy_stream(benchmark::State& state, int threads) {
  if (!cpu_features().has_avx512()) return state.SkipWithError("needs AVX-512");
  for (auto _ : state) {
    on_threads(threads, dram_src().ptr, dram_dst().ptr, dram_elems, copy_stream);
    benchmark::ClobberMemory();
  }
  set_counters(state, dram_elems);
}

void bm_f16c_cache(benchmark::State& state) {
  if (!have_avx512_f16c()) return state.SkipWithError("needs AVX-512 and F16C");
  Buffer src(cache_elems), dst(cache_elems);
  fill_activations(src.ptr, src.n);
  for (auto _ : state) {
    f16c_round<false>(src.ptr, dst.ptr, src.n);
    benchmark::DoNotOptimize(dst.ptr);
    benchmark::ClobberMemory();
  }
  set_counters(state, src.n);
}

template <bool stream>
void bm_f16c_dram(benchmark::State& state, int threads) {
  if (!have_avx512_f16c()) return state.SkipWithError("needs AVX-512 and F16C");
  for (auto _ : state) {
    on_threads(threads, dram_src().ptr, dram_dst().ptr, dram_elems, f16c_round<stream>);
    benchmark::ClobberMemory();
  }
  set_counters(state, dram_elems);
}
#endif

void register_all() {
  benchmark::AddCustomContext("cpu_ghz_estimate", std::to_string(ghz()));
  benchmark::AddCustomContext("round_dispatch", round_variant().name);
  // half: F16C in the AVX kernels. T(4,3): the integer kernel, with a few activations in its
  // subnormal range (|x| < 2^-6). T(2,3): most activations are subnormal (|x| < 1), the full path.
  const std::pair<const char*, FloatFormat> formats[] = {
      {"half", format_half}, {"T(4,3)", FloatFormat{4, 3}}, {"T(2,3)", FloatFormat{2, 3}}};
  const FloatFormat fp8{4, 3};
  for (const RoundVariant& v : round_variants()) {
    if (!v.supported()) continue;
    const std::string name = v.name;
    for (const auto& [label, f] : formats)
      benchmark::RegisterBenchmark(("round_cache_16KiB/" + name + "/" + label).c_str(),
                                   bm_round_cache, v.fn, f);
    benchmark::RegisterBenchmark(("round_dram_256MiB/" + name + "/T(4,3)/threads:1").c_str(),
                                 bm_round_dram, v.fn, fp8, 1)
        ->UseRealTime();
    if (v.stream_fn == v.fn) continue;
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(
          ("round_dram_256MiB/" + name + "_stream/T(4,3)/threads:" + std::to_string(threads))
              .c_str(),
          bm_round_dram, v.stream_fn, fp8, threads)
          ->UseRealTime();
    benchmark::RegisterBenchmark(("round_dram_256MiB/" + name + "_stream/half/threads:1").c_str(),
                                 bm_round_dram, v.stream_fn, format_half, 1)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("round_dram_256MiB/round_array_parallel/T(4,3)",
                               bm_round_array_parallel, fp8)
      ->UseRealTime();
#if defined(__x86_64__)
  benchmark::RegisterBenchmark("peer_cache_16KiB/f16c", bm_f16c_cache);
  benchmark::RegisterBenchmark("peer_dram_256MiB/f16c/threads:1", bm_f16c_dram<false>, 1)
      ->UseRealTime();
  for (int threads : {1, 2}) {
    const std::string t = "/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(("peer_dram_256MiB/f16c_stream" + t).c_str(), bm_f16c_dram<true>,
                                 threads)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("peer_dram_256MiB/copy_stream" + t).c_str(), bm_copy_stream,
                                 threads)
        ->UseRealTime();
  }
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
