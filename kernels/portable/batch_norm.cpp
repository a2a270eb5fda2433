// Batch normalisation over [n, c, hw] with per-channel statistics in double: the mean first, then
// the mean squared deviation (two passes, so large offsets do not cancel the variance away).
// Each channel is done by one thread in a fixed order.
#include <cmath>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {
namespace {

bool parallel_bn(int n, int c, int hw) {
  return int64_t(n) * c * hw >= detail::kParallelMinWork && c > 1;
}

// dst = (x - mean) * scale + beta for one channel, the difference taken in double.
void normalize(int n, int c, int hw, int ch, const float* src, double mean, double scale,
               double beta, float* dst) {
  for (int img = 0; img < n; ++img) {
    const int64_t off = (int64_t(img) * c + ch) * hw;
    const float* x = src + off;
    float* y = dst + off;
#pragma omp simd
    for (int i = 0; i < hw; ++i) y[i] = float((double(x[i]) - mean) * scale + beta);
  }
}

}  // namespace

void batch_norm_fwd_training(int n, int c, int hw, const float* src, const float* gamma,
                             const float* beta, float eps, float* dst, float* mean, float* var) {
  const double count = double(n) * hw;
  detail::parallel_for(c, parallel_bn(n, c, hw), [&](int64_t ch) {
    double sum = 0;
    for (int img = 0; img < n; ++img) {
      const float* x = src + (int64_t(img) * c + ch) * hw;
      for (int i = 0; i < hw; ++i) sum += x[i];
    }
    const double m = sum / count;
    double sq = 0;
    for (int img = 0; img < n; ++img) {
      const float* x = src + (int64_t(img) * c + ch) * hw;
      for (int i = 0; i < hw; ++i) {
        const double d = x[i] - m;
        sq += d * d;
      }
    }
    const double v = sq / count;
    mean[ch] = float(m);
    var[ch] = float(v);
    normalize(n, c, hw, int(ch), src, m, gamma[ch] / std::sqrt(v + double(eps)), beta[ch], dst);
  });
}

void batch_norm_fwd_inference(int n, int c, int hw, const float* src, const float* gamma,
                              const float* beta, const float* mean, const float* var, float eps,
                              float* dst) {
  detail::parallel_for(c, parallel_bn(n, c, hw), [&](int64_t ch) {
    normalize(n, c, hw, int(ch), src, mean[ch], gamma[ch] / std::sqrt(double(var[ch]) + eps),
              beta[ch], dst);
  });
}

// With xhat = (x - mean) * inv_std and M = n*hw values per channel:
//   dbeta = sum dy, dgamma = sum dy * xhat,
//   dx = gamma * inv_std * (dy - dbeta/M - xhat * dgamma/M).
void batch_norm_bwd(int n, int c, int hw, const float* src, const float* ddst, const float* gamma,
                    const float* mean, const float* var, float eps, float* dsrc, float* dgamma,
                    float* dbeta, bool accumulate) {
  const double count = double(n) * hw;
  detail::parallel_for(c, parallel_bn(n, c, hw), [&](int64_t ch) {
    const double m = mean[ch], inv_std = 1.0 / std::sqrt(double(var[ch]) + eps);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int img = 0; img < n; ++img) {
      const int64_t off = (int64_t(img) * c + ch) * hw;
      for (int i = 0; i < hw; ++i) {
        const double dy = ddst[off + i];
        sum_dy += dy;
        sum_dy_xhat += dy * (src[off + i] - m) * inv_std;
      }
    }
    dbeta[ch] = float(sum_dy);
    dgamma[ch] = float(sum_dy_xhat);
    const double k = gamma[ch] * inv_std, mean_dy = sum_dy / count,
                 mean_dy_xhat = sum_dy_xhat / count;
    for (int img = 0; img < n; ++img) {
      const int64_t off = (int64_t(img) * c + ch) * hw;
      for (int i = 0; i < hw; ++i) {
        const double xhat = (src[off + i] - m) * inv_std;
        const float g = float(k * (ddst[off + i] - mean_dy - xhat * mean_dy_xhat));
        dsrc[off + i] = accumulate ? dsrc[off + i] + g : g;
      }
    }
  });
}

}  // namespace iotnas::kernels::portable
