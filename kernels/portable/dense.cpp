// Dense (fully connected) layer forward and backward on Eigen GEMM. The output is cut into fixed
// tiles (by shape only), each a whole-depth GEMM on one thread: the same bits for any thread
// count, including the batch reduction of the weight gradient (the GEMM's depth).
#include <algorithm>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {
namespace {

using detail::gemm_acc;

constexpr int kTileRows = 32, kTileCols = 256;

// Runs body(r0, r1, c0, c1) over the fixed tiles of a rows x cols output.
template <typename F>
void tiles(int rows, int cols, int64_t flops, F&& body) {
  const int tr = (rows + kTileRows - 1) / kTileRows, tc = (cols + kTileCols - 1) / kTileCols;
  detail::parallel_for(int64_t(tr) * tc, flops >= detail::kParallelMinWork, [&](int64_t t) {
    const int r0 = int(t / tc) * kTileRows, c0 = int(t % tc) * kTileCols;
    body(r0, std::min(rows, r0 + kTileRows), c0, std::min(cols, c0 + kTileCols));
  });
}

}  // namespace

void dense_fwd(const DenseShape& s, const float* src, const float* wei, const float* bias,
               float* dst, bool relu) {
  // dst[n, o] = src[n, i] * wei[o, i]^T
  tiles(s.n, s.out, 2 * int64_t(s.n) * s.in * s.out, [&](int r0, int r1, int c0, int c1) {
    for (int r = r0; r < r1; ++r) {
      float* d = dst + int64_t(r) * s.out;
      for (int o = c0; o < c1; ++o) d[o] = bias ? bias[o] : 0.f;
    }
    gemm_acc(r1 - r0, c1 - c0, s.in, src + int64_t(r0) * s.in, s.in, false,
             wei + int64_t(c0) * s.in, s.in, true, dst + int64_t(r0) * s.out + c0, s.out);
    if (relu) {
      for (int r = r0; r < r1; ++r) {
        float* d = dst + int64_t(r) * s.out;
        for (int o = c0; o < c1; ++o) d[o] = detail::relu(d[o]);
      }
    }
  });
}

void dense_bwd_data(const DenseShape& s, const float* ddst, const float* wei, float* dsrc,
                    bool accumulate) {
  // dsrc[n, i] = ddst[n, o] * wei[o, i]
  tiles(s.n, s.in, 2 * int64_t(s.n) * s.in * s.out, [&](int r0, int r1, int c0, int c1) {
    if (!accumulate) {
      for (int r = r0; r < r1; ++r) {
        std::fill(dsrc + int64_t(r) * s.in + c0, dsrc + int64_t(r) * s.in + c1, 0.f);
      }
    }
    gemm_acc(r1 - r0, c1 - c0, s.out, ddst + int64_t(r0) * s.out, s.out, false, wei + c0, s.in,
             false, dsrc + int64_t(r0) * s.in + c0, s.in);
  });
}

void dense_bwd_weights(const DenseShape& s, const float* src, const float* ddst, float* dwei,
                       float* dbias) {
  // dwei[o, i] = ddst[n, o]^T * src[n, i]: depth n, one whole-depth GEMM per tile.
  tiles(s.out, s.in, 2 * int64_t(s.n) * s.in * s.out, [&](int r0, int r1, int c0, int c1) {
    for (int r = r0; r < r1; ++r) {
      std::fill(dwei + int64_t(r) * s.in + c0, dwei + int64_t(r) * s.in + c1, 0.f);
    }
    gemm_acc(r1 - r0, c1 - c0, s.n, ddst + r0, s.out, true, src + c0, s.in, false,
             dwei + int64_t(r0) * s.in + c0, s.in);
  });
  if (dbias) {
    for (int o = 0; o < s.out; ++o) {
      double sum = 0;
      for (int r = 0; r < s.n; ++r) sum += ddst[int64_t(r) * s.out + o];
      dbias[o] = float(sum);
    }
  }
}

}  // namespace iotnas::kernels::portable
