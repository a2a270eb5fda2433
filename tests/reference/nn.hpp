// Naive references for the neural-network ops of kernels/ (the contracts in
// kernels/portable/ops.hpp), written from the mathematical definitions for clarity, not speed:
// double inputs, double accumulation, results returned as std::vector<double>. Every backend's
// kernels are compared with these, and backward kernels with finite differences of the forward
// references (numeric_grad).
//
// Tensors are NCHW, row-major, as in kernels/shapes.hpp. Optional inputs (bias) are empty spans.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "kernels/shapes.hpp"

namespace iotnas::ref {

using kernels::ConvShape;
using kernels::DenseShape;
using kernels::PoolShape;

using dspan = std::span<const double>;

std::vector<double> to_double(std::span<const float> x);

// ---- convolution (groups, stride, zero padding)
// dst[n, co, oh, ow] = bias[co] + sum over ci in co's group, i < kh, j < kw of
//   wei[co, ci - group start, i, j] * src[n, ci, oh*sh - ph + i, ow*sw - pw + j] (0 outside),
// then max(., 0) when relu.
std::vector<double> conv2d_fwd(const ConvShape& s, dspan src, dspan wei, dspan bias, bool relu);
// The adjoints of the linear part: dsrc = d(sum ddst*dst)/dsrc, and likewise for wei and bias.
std::vector<double> conv2d_bwd_data(const ConvShape& s, dspan ddst, dspan wei);
std::vector<double> conv2d_bwd_weights(const ConvShape& s, dspan src, dspan ddst);
std::vector<double> conv2d_bwd_bias(const ConvShape& s, dspan ddst);

// ---- pooling. Max: the maximum over the window's positions inside the input (padding never
// wins); argmax is the first maximal position in row-major window order, as h*w_in + w.
struct MaxPoolResult {
  std::vector<double> dst;
  std::vector<int32_t> argmax;
};
MaxPoolResult max_pool_fwd(const PoolShape& s, dspan src);
std::vector<double> max_pool_bwd(const PoolShape& s, dspan ddst, std::span<const int32_t> argmax);
// Avg: the sum over the window's positions inside the input divided by kh*kw (padding counts as
// zeros).
std::vector<double> avg_pool_fwd(const PoolShape& s, dspan src);
std::vector<double> avg_pool_bwd(const PoolShape& s, dspan ddst);
// Global average pooling [n, c, hw] -> [n, c].
std::vector<double> global_avg_pool_fwd(int n, int c, int hw, dspan src);
std::vector<double> global_avg_pool_bwd(int n, int c, int hw, dspan ddst);

// ---- elementwise
std::vector<double> relu_fwd(dspan src);
// ddst where src > 0, else 0.
std::vector<double> relu_bwd(dspan src, dspan ddst);
std::vector<double> add_fwd(const std::vector<dspan>& srcs);

// ---- channel concatenation of [n, c_i, hw] inputs into [n, sum c_i, hw], and its split.
std::vector<double> concat_fwd(int n, int hw, const std::vector<dspan>& srcs,
                               const std::vector<int>& channels);
std::vector<std::vector<double>> concat_bwd(int n, int hw, dspan ddst,
                                            const std::vector<int>& channels);

// ---- dense: dst[n, o] = bias[o] + sum_i wei[o, i] * src[n, i], then max(., 0) when relu.
std::vector<double> dense_fwd(const DenseShape& s, dspan src, dspan wei, dspan bias, bool relu);
std::vector<double> dense_bwd_data(const DenseShape& s, dspan ddst, dspan wei);
std::vector<double> dense_bwd_weights(const DenseShape& s, dspan src, dspan ddst);
std::vector<double> dense_bwd_bias(const DenseShape& s, dspan ddst);

// ---- batch norm over [n, c, hw]: per channel, over its n*hw values,
// mean = sum x / m, var = sum (x - mean)^2 / m (biased), y = gamma (x - mean) / sqrt(var + eps) +
// beta.
struct BatchNormResult {
  std::vector<double> dst, mean, var;
};
BatchNormResult batch_norm_fwd_training(int n, int c, int hw, dspan src, dspan gamma, dspan beta,
                                        double eps);
std::vector<double> batch_norm_fwd_inference(int n, int c, int hw, dspan src, dspan gamma,
                                             dspan beta, dspan mean, dspan var, double eps);

// ---- softmax cross-entropy: mean over rows of -log(softmax(logits)[label]); dlogits is
// (softmax - onehot) / n.
double softmax_xent(int n, int k, dspan logits, std::span<const int32_t> labels);
std::vector<double> softmax_xent_grad(int n, int k, dspan logits, std::span<const int32_t> labels);

// ---- finite differences
// dL/dx[i] for each i in `indices` by central differences with step h: (L(x + h e_i) -
// L(x - h e_i)) / 2h, all in double.
std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& loss,
                                 std::vector<double> x, const std::vector<size_t>& indices,
                                 double h);
// sum_i a[i] * b[i]: the loss sum(dst * R) that the backward tests differentiate.
double dot(dspan a, dspan b);

}  // namespace iotnas::ref
