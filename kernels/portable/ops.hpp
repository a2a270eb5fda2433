// Portable CPU kernels: plain C++ with OpenMP (and Eigen for GEMM), NCHW, no ISA intrinsics, so
// the same sources build on x86-64 and on a Raspberry Pi (ARMv8). This is the backend used when
// oneDNN is absent, the one every other backend is compared with in tests, and the source of the
// batch-1 inference kernels.
//
// Contracts for every function here:
//  - pointers are never null unless the comment says "nullable"; src and dst never alias unless
//    the comment says so;
//  - `dst`/`dsrc`/`dwei` are written whole (every element), never read, unless `accumulate` is
//    true, in which case the result is added to what is there;
//  - work is split over OpenMP threads (the caller's omp_get_max_threads()); results do not
//    depend on the thread count (each output element is summed in one fixed order).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/shapes.hpp"

namespace iotnas::kernels::portable {

// ---- convolution: dst[n, co, oh, ow] = bias[co] + sum_{ci in group, i, j}
//      wei[co, ci', i, j] * src[n, ci, oh*sh - ph + i, ow*sw - pw + j]   (zero outside)
// wei: [c_out, c_in/groups, kh, kw]; bias: [c_out], nullable. relu: dst = max(dst, 0).
void conv2d_fwd(const ConvShape& s, const float* src, const float* wei, const float* bias,
                float* dst, bool relu);
// dsrc = d(loss)/d(src) given ddst = d(loss)/d(dst) (of the linear part, before any relu).
void conv2d_bwd_data(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
                     bool accumulate);
// dwei, dbias (nullable) = gradients given src and ddst. Always overwrite.
void conv2d_bwd_weights(const ConvShape& s, const float* src, const float* ddst, float* dwei,
                        float* dbias);

// Variants behind the three convolution ops, each list in order of preference: the op runs the
// first variant that `picks` the shape (the last picks every shape). `supports` says which shapes
// a variant computes correctly (a superset of `picks`): tests and benchmarks walk the same lists
// over every supported shape, so every variant is checked and timed. Same contracts as the ops.
//  - "direct": kernel height and width each in {1, 3, 5, 7}, padding below the kernel size, any
//    stride (backward data: stride 1): vectorised loops over zero-padded, stride-split copies of
//    the input with compile-time kernel sizes and a block of output channels in registers, bias
//    and ReLU fused into the store. The batch-1 latency path; backward data runs it on ddst with
//    the flipped kernel; its weight gradient is for depthwise and thin groups.
//  - "generic": plain loops vectorised along the output row, any shape; the path for depthwise
//    and thin grouped convolutions that "direct" does not take.
//  - "gemm": im2col (per image and group, in a per-thread scratch) + Eigen GEMM, any shape;
//    1x1 stride-1 unpadded convolutions use the input as is.
struct ConvFwdVariant {
  const char* name;
  bool (*supports)(const ConvShape& s);
  bool (*picks)(const ConvShape& s);
  void (*run)(const ConvShape& s, const float* src, const float* wei, const float* bias, float* dst,
              bool relu);
};
struct ConvBwdDataVariant {
  const char* name;
  bool (*supports)(const ConvShape& s);
  bool (*picks)(const ConvShape& s);
  void (*run)(const ConvShape& s, const float* ddst, const float* wei, float* dsrc,
              bool accumulate);
};
struct ConvBwdWeightsVariant {
  const char* name;
  bool (*supports)(const ConvShape& s);
  bool (*picks)(const ConvShape& s);
  void (*run)(const ConvShape& s, const float* src, const float* ddst, float* dwei, float* dbias);
};
std::span<const ConvFwdVariant> conv2d_fwd_variants();
std::span<const ConvBwdDataVariant> conv2d_bwd_data_variants();
std::span<const ConvBwdWeightsVariant> conv2d_bwd_weights_variants();
// The variants the ops run for this shape.
const char* conv2d_fwd_variant_name(const ConvShape& s);
const char* conv2d_bwd_data_variant_name(const ConvShape& s);
const char* conv2d_bwd_weights_variant_name(const ConvShape& s);

// The direct forward variant by name (kernel sides in {1, 3, 5, 7}, pad < kernel, any stride);
// bias and ReLU are fused into the store.
bool conv2d_direct_supports(const ConvShape& s);
void conv2d_fwd_direct(const ConvShape& s, const float* src, const float* wei, const float* bias,
                       float* dst, bool relu);

// ---- pooling. max: padding never wins (it is -inf); ties go to the first element in row-major
// window order. avg: divisor is kh*kw, padding counts as zeros.
// argmax: [dst_size] index of the winning element within its (n, c) plane (h*w_in + w);
// nullable (inference).
void max_pool_fwd(const PoolShape& s, const float* src, float* dst, int32_t* argmax);
void max_pool_bwd(const PoolShape& s, const float* ddst, const int32_t* argmax, float* dsrc,
                  bool accumulate);
void avg_pool_fwd(const PoolShape& s, const float* src, float* dst);
void avg_pool_bwd(const PoolShape& s, const float* ddst, float* dsrc, bool accumulate);

// ---- global average pooling: [n, c, hw] -> [n, c]
void global_avg_pool_fwd(int n, int c, int hw, const float* src, float* dst);
void global_avg_pool_bwd(int n, int c, int hw, const float* ddst, float* dsrc, bool accumulate);

// ---- elementwise over `count` floats. relu_fwd may run in place (src == dst).
void relu_fwd(int64_t count, const float* src, float* dst);
// dsrc = ddst where dst > 0 else 0 (dst is relu's output). dsrc may alias ddst.
void relu_bwd(int64_t count, const float* dst, const float* ddst, float* dsrc, bool accumulate);
// dst = sum of srcs[0..k); dst may alias srcs[0].
void add_fwd(int64_t count, int k, const float* const* srcs, float* dst);

// ---- channel concatenation of k inputs of [n, c_i, hw] into [n, sum c_i, hw].
void concat_fwd(int n, int hw, int k, const float* const* srcs, const int* channels, float* dst);
// Splits ddst back into the k inputs' gradients (each written, or added with accumulate).
void concat_bwd(int n, int hw, int k, const float* ddst, const int* channels, float* const* dsrcs,
                bool accumulate);

// ---- dense: dst[n, o] = bias[o] + sum_i wei[o, i] * src[n, i]; bias nullable.
void dense_fwd(const DenseShape& s, const float* src, const float* wei, const float* bias,
               float* dst, bool relu);
void dense_bwd_data(const DenseShape& s, const float* ddst, const float* wei, float* dsrc,
                    bool accumulate);
void dense_bwd_weights(const DenseShape& s, const float* src, const float* ddst, float* dwei,
                       float* dbias);

// ---- batch norm over [n, c, hw], statistics per channel over n*hw values.
// Training: mean and biased variance of the batch are written to `mean`, `var` ([c]); the
// output is gamma * (x - mean) / sqrt(var + eps) + beta.
void batch_norm_fwd_training(int n, int c, int hw, const float* src, const float* gamma,
                             const float* beta, float eps, float* dst, float* mean, float* var);
// Inference: the same with given (running) mean and var.
void batch_norm_fwd_inference(int n, int c, int hw, const float* src, const float* gamma,
                              const float* beta, const float* mean, const float* var, float eps,
                              float* dst);
// Gradients of the training-mode forward: dsrc, dgamma, dbeta (the last two always overwritten).
void batch_norm_bwd(int n, int c, int hw, const float* src, const float* ddst, const float* gamma,
                    const float* mean, const float* var, float eps, float* dsrc, float* dgamma,
                    float* dbeta, bool accumulate);

// ---- softmax cross-entropy over logits [n, k] with labels [n] in [0, k).
// Returns the mean loss over the batch; writes dlogits = (softmax - onehot) / n (nullable).
// Computed in double per row with the max subtracted, so it is finite for any finite logits.
double softmax_xent(int n, int k, const float* logits, const int32_t* labels, float* dlogits);

}  // namespace iotnas::kernels::portable
