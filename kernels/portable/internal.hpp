// Helpers shared by the portable kernels' .cpp files (not part of the kernels' API).
#pragma once

#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/base/error.hpp"
#include "kernels/base/parallel.hpp"
#include "kernels/shapes.hpp"

namespace iotnas::kernels::portable::detail {

// Per-thread scratch buffers, grown on demand and kept for the thread's life. `slot` tells apart
// buffers that one task needs at the same time. Contents are unspecified on return.
float* scratch(int slot, size_t count);

// C[m, n] (row-major, leading dimension ldc) += A[m, k] * B[k, n], single-threaded.
// A is row-major with leading dimension lda, or (a_trans) stored as its transpose [k, m] with
// leading dimension lda; likewise B. Always runs Eigen's GEMM on the calling thread only, with
// blocking that depends on (m, n, k) alone, so each element's summation order is fixed by the
// shape: callers get thread-count independent results by splitting work in fixed pieces.
void gemm_acc(int m, int n, int k, const float* a, int lda, bool a_trans, const float* b, int ldb,
              bool b_trans, float* c, int ldc);

// Runs body(i) for i in [0, count) over the OpenMP threads; serially when `parallel` is false
// (tiny work, where forking threads costs more than it saves). Dynamically scheduled: on a shared
// machine a thread that is preempted for a while does not hold the others up. (Which thread runs
// an item never changes the result: items are fixed by the shape.) The first exception a body
// throws is rethrown here, after the region.
template <typename F>
void parallel_for(int64_t count, bool parallel, F&& body) {
  if (!parallel || count <= 1 || omp_get_max_threads() == 1) {
    for (int64_t i = 0; i < count; ++i) body(i);  // no team of one: it costs ~1 us per call
    return;
  }
  FirstException error;  // an exception must not leave the region (std::terminate)
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < count; ++i) error.run([&] { body(i); });
  error.rethrow();
}

// max(x, 0) with NaN kept. Not std::max(x, 0.f): inside `omp simd` loops g++ 12 puts the
// temporary 0.f that std::max binds by reference in memory and gives up vectorising.
inline float relu(float x) {
  return x < 0.f ? 0.f : x;
}

// Below this many flops (or floats moved, for memory-bound ops) a kernel runs on one thread.
inline constexpr int64_t kParallelMinWork = 1 << 16;

// Output size along one axis for the standard (floor) convolution/pooling formula.
inline int conv_out_size(int in, int k, int stride, int pad) {
  return (in + 2 * pad - k) / stride + 1;
}

inline void check_conv_shape(const ConvShape& s) {
  IOTNAS_ASSERT(s.n >= 1 && s.c_in >= 1 && s.c_out >= 1 && s.groups >= 1 &&
                    s.c_in % s.groups == 0 && s.c_out % s.groups == 0,
                "conv: bad channels/groups");
  IOTNAS_ASSERT(s.kh >= 1 && s.kw >= 1 && s.sh >= 1 && s.sw >= 1 && s.ph >= 0 && s.pw >= 0,
                "conv: bad kernel/stride/padding");
  IOTNAS_ASSERT(s.h_out == conv_out_size(s.h_in, s.kh, s.sh, s.ph) &&
                    s.w_out == conv_out_size(s.w_in, s.kw, s.sw, s.pw) && s.h_out >= 1 &&
                    s.w_out >= 1,
                "conv: h_out/w_out do not follow (in + 2*pad - k) / stride + 1");
}

}  // namespace iotnas::kernels::portable::detail
