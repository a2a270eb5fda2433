// Reference batch normalisation: statistics by their definitions, per channel.
#include <cmath>

#include "reference/nn.hpp"

namespace iotnas::ref {
namespace {

size_t index(int c, int hw, int img, int ch, int i) {
  return (size_t(img) * c + ch) * hw + i;
}

}  // namespace

BatchNormResult batch_norm_fwd_training(int n, int c, int hw, dspan src, dspan gamma, dspan beta,
                                        double eps) {
  BatchNormResult r;
  r.mean.assign(size_t(c), 0.0);
  r.var.assign(size_t(c), 0.0);
  const double m = double(n) * hw;
  for (int ch = 0; ch < c; ++ch) {
    for (int img = 0; img < n; ++img)
      for (int i = 0; i < hw; ++i) r.mean[ch] += src[index(c, hw, img, ch, i)];
    r.mean[ch] /= m;
    for (int img = 0; img < n; ++img)
      for (int i = 0; i < hw; ++i) {
        const double d = src[index(c, hw, img, ch, i)] - r.mean[ch];
        r.var[ch] += d * d;
      }
    r.var[ch] /= m;
  }
  r.dst = batch_norm_fwd_inference(n, c, hw, src, gamma, beta, r.mean, r.var, eps);
  return r;
}

std::vector<double> batch_norm_fwd_inference(int n, int c, int hw, dspan src, dspan gamma,
                                             dspan beta, dspan mean, dspan var, double eps) {
  std::vector<double> dst(size_t(n) * c * hw);
  for (int img = 0; img < n; ++img)
    for (int ch = 0; ch < c; ++ch)
      for (int i = 0; i < hw; ++i) {
        const size_t e = index(c, hw, img, ch, i);
        dst[e] = gamma[ch] * (src[e] - mean[ch]) / std::sqrt(var[ch] + eps) + beta[ch];
      }
  return dst;
}

}  // namespace iotnas::ref
