// Reference elementwise ops, concatenation, dense layer, softmax cross-entropy and the
// finite-difference helper.
#include <algorithm>
#include <cmath>

#include "reference/nn.hpp"

namespace iotnas::ref {

std::vector<double> relu_fwd(dspan src) {
  std::vector<double> dst(src.size());
  for (size_t i = 0; i < src.size(); ++i) dst[i] = src[i] > 0 ? src[i] : 0.0;
  return dst;
}

std::vector<double> relu_bwd(dspan src, dspan ddst) {
  std::vector<double> dsrc(src.size());
  for (size_t i = 0; i < src.size(); ++i) dsrc[i] = src[i] > 0 ? ddst[i] : 0.0;
  return dsrc;
}

std::vector<double> add_fwd(const std::vector<dspan>& srcs) {
  std::vector<double> dst(srcs.at(0).size(), 0.0);
  for (const dspan& x : srcs) {
    for (size_t i = 0; i < dst.size(); ++i) dst[i] += x[i];
  }
  return dst;
}

std::vector<double> concat_fwd(int n, int hw, const std::vector<dspan>& srcs,
                               const std::vector<int>& channels) {
  std::vector<double> dst;
  for (int img = 0; img < n; ++img) {
    for (size_t k = 0; k < srcs.size(); ++k) {
      const size_t len = size_t(channels[k]) * hw;
      for (size_t e = 0; e < len; ++e) dst.push_back(srcs[k][img * len + e]);
    }
  }
  return dst;
}

std::vector<std::vector<double>> concat_bwd(int n, int hw, dspan ddst,
                                            const std::vector<int>& channels) {
  std::vector<std::vector<double>> dsrcs(channels.size());
  size_t at = 0;
  for (int img = 0; img < n; ++img) {
    for (size_t k = 0; k < channels.size(); ++k) {
      for (size_t e = 0; e < size_t(channels[k]) * hw; ++e) dsrcs[k].push_back(ddst[at++]);
    }
  }
  return dsrcs;
}

std::vector<double> dense_fwd(const DenseShape& s, dspan src, dspan wei, dspan bias, bool relu) {
  std::vector<double> dst(size_t(s.n) * s.out);
  for (int r = 0; r < s.n; ++r)
    for (int o = 0; o < s.out; ++o) {
      double sum = bias.empty() ? 0.0 : bias[o];
      for (int i = 0; i < s.in; ++i) sum += wei[size_t(o) * s.in + i] * src[size_t(r) * s.in + i];
      dst[size_t(r) * s.out + o] = relu ? std::max(sum, 0.0) : sum;
    }
  return dst;
}

std::vector<double> dense_bwd_data(const DenseShape& s, dspan ddst, dspan wei) {
  std::vector<double> dsrc(size_t(s.n) * s.in, 0.0);
  for (int r = 0; r < s.n; ++r)
    for (int o = 0; o < s.out; ++o)
      for (int i = 0; i < s.in; ++i)
        dsrc[size_t(r) * s.in + i] += wei[size_t(o) * s.in + i] * ddst[size_t(r) * s.out + o];
  return dsrc;
}

std::vector<double> dense_bwd_weights(const DenseShape& s, dspan src, dspan ddst) {
  std::vector<double> dwei(size_t(s.out) * s.in, 0.0);
  for (int r = 0; r < s.n; ++r)
    for (int o = 0; o < s.out; ++o)
      for (int i = 0; i < s.in; ++i)
        dwei[size_t(o) * s.in + i] += src[size_t(r) * s.in + i] * ddst[size_t(r) * s.out + o];
  return dwei;
}

std::vector<double> dense_bwd_bias(const DenseShape& s, dspan ddst) {
  std::vector<double> dbias(size_t(s.out), 0.0);
  for (int r = 0; r < s.n; ++r)
    for (int o = 0; o < s.out; ++o) dbias[o] += ddst[size_t(r) * s.out + o];
  return dbias;
}

namespace {
// softmax of one row, by the definition exp(z_j) / sum_l exp(z_l), shifted by the row's max
// (which cancels) so that exp cannot overflow.
std::vector<double> softmax_row(const double* z, int k) {
  const double mx = *std::max_element(z, z + k);
  std::vector<double> p(static_cast<size_t>(k));
  double sum = 0;
  for (int j = 0; j < k; ++j) sum += p[j] = std::exp(z[j] - mx);
  for (double& v : p) v /= sum;
  return p;
}
}  // namespace

double softmax_xent(int n, int k, dspan logits, std::span<const int32_t> labels) {
  double total = 0;
  for (int r = 0; r < n; ++r) {
    const double* z = logits.data() + size_t(r) * k;
    const double mx = *std::max_element(z, z + k);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(z[j] - mx);
    total += -(z[labels[r]] - mx - std::log(sum));  // -log softmax[label]
  }
  return total / n;
}

std::vector<double> softmax_xent_grad(int n, int k, dspan logits, std::span<const int32_t> labels) {
  std::vector<double> g(size_t(n) * k);
  for (int r = 0; r < n; ++r) {
    const auto p = softmax_row(logits.data() + size_t(r) * k, k);
    for (int j = 0; j < k; ++j) g[size_t(r) * k + j] = (p[j] - (j == labels[r] ? 1.0 : 0.0)) / n;
  }
  return g;
}

std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& loss,
                                 std::vector<double> x, const std::vector<size_t>& indices,
                                 double h) {
  std::vector<double> g;
  g.reserve(indices.size());
  for (size_t i : indices) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss(x);
    x[i] = keep - h;
    const double down = loss(x);
    x[i] = keep;
    g.push_back((up - down) / (2 * h));
  }
  return g;
}

double dot(dspan a, dspan b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace iotnas::ref
