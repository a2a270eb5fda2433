// Single-threaded Eigen GEMM and per-thread scratch for the portable kernels.
//
// Why not `C.noalias() += A * B` on Eigen::Map: inside an OpenMP region of one thread (a nested
// region, an `if` clause) Eigen parallelises the product itself and then re-computes its cache
// blocking for that thread count, which changes the summation order, and so the bits, with the
// number of threads. Calling the sequential product directly keeps the order fixed by the shape.
// g++ 12 reports Eigen's AVX-512 packing code as maybe-uninitialized (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>

#include "kernels/portable/internal.hpp"

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error "the portable kernels call Eigen 3.4's general_matrix_matrix_product; install Eigen >= 3.4"
#endif

namespace iotnas::kernels::portable::detail {

float* scratch(int slot, size_t count) {
  constexpr int kSlots = 4;
  IOTNAS_ASSERT(slot >= 0 && slot < kSlots, "scratch slot out of range");
  thread_local std::vector<float> buffers[kSlots];
  auto& b = buffers[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}

namespace {

template <int AOrder, int BOrder>
void gemm_run(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
              int ldc) {
  using Index = Eigen::Index;
  using Gemm = Eigen::internal::general_matrix_matrix_product<Index, float, AOrder, false, float,
                                                              BOrder, false, Eigen::RowMajor, 1>;
  Eigen::internal::gemm_blocking_space<Eigen::RowMajor, float, float, Eigen::Dynamic,
                                       Eigen::Dynamic, Eigen::Dynamic>
      blocking(m, n, k, 1, true);
  Gemm::run(m, n, k, a, lda, b, ldb, c, 1, ldc, 1.0f, blocking, nullptr);
}

}  // namespace

void gemm_acc(int m, int n, int k, const float* a, int lda, bool a_trans, const float* b, int ldb,
              bool b_trans, float* c, int ldc) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  // A stored row-major [m, k] is RowMajor; stored as its transpose it is ColMajor [m, k].
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;
  if (!a_trans && !b_trans) return gemm_run<R, R>(m, n, k, a, lda, b, ldb, c, ldc);
  if (!a_trans && b_trans) return gemm_run<R, C>(m, n, k, a, lda, b, ldb, c, ldc);
  if (a_trans && !b_trans) return gemm_run<C, R>(m, n, k, a, lda, b, ldb, c, ldc);
  return gemm_run<C, C>(m, n, k, a, lda, b, ldb, c, ldc);
}

}  // namespace iotnas::kernels::portable::detail
