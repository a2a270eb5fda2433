// Softmax cross-entropy over logits [n, k], in double per row with the row's max subtracted.
#include <cmath>
#include <vector>

#include "kernels/portable/internal.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas::kernels::portable {

double softmax_xent(int n, int k, const float* logits, const int32_t* labels, float* dlogits) {
  IOTNAS_ASSERT(n >= 1 && k >= 1, "softmax_xent: empty batch or no classes");
  std::vector<double> row_loss(static_cast<size_t>(n));
  detail::parallel_for(n, int64_t(n) * k >= detail::kParallelMinWork, [&](int64_t r) {
    const float* z = logits + r * k;
    const int32_t label = labels[r];
    IOTNAS_ASSERT(label >= 0 && label < k, "softmax_xent: label out of [0, k)");
    double mx = z[0];
    for (int j = 1; j < k; ++j) mx = std::max(mx, double(z[j]));
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(double(z[j]) - mx);
    const double log_sum = std::log(sum);
    row_loss[r] = log_sum - (double(z[label]) - mx);
    if (dlogits) {
      float* g = dlogits + r * k;
      for (int j = 0; j < k; ++j) {
        const double p = std::exp(double(z[j]) - mx - log_sum);
        g[j] = float((p - (j == label ? 1.0 : 0.0)) / n);
      }
    }
  });
  double total = 0;
  for (int r = 0; r < n; ++r) total += row_loss[r];
  return total / n;
}

}  // namespace iotnas::kernels::portable
