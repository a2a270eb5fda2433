// Problem descriptions shared by every backend's kernels. All tensors are float32; activations
// are [N, C, H, W] row-major (NCHW) unless a backend documents its own layout.
#pragma once

#include <cstdint>

namespace iotnas::kernels {

struct ConvShape {
  int n = 1;  // batch
  int c_in = 1, h_in = 1, w_in = 1;
  int c_out = 1, h_out = 1, w_out = 1;
  int kh = 1, kw = 1;  // kernel
  int sh = 1, sw = 1;  // stride
  int ph = 0, pw = 0;  // zero padding, both sides
  int groups = 1;      // c_in and c_out are multiples of groups
  int64_t src_size() const { return int64_t(n) * c_in * h_in * w_in; }
  int64_t dst_size() const { return int64_t(n) * c_out * h_out * w_out; }
  int64_t wei_size() const { return int64_t(c_out) * (c_in / groups) * kh * kw; }
  int64_t flops() const { return 2 * dst_size() * (c_in / groups) * kh * kw; }
};

struct PoolShape {
  int n = 1, c = 1;
  int h_in = 1, w_in = 1, h_out = 1, w_out = 1;
  int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  int64_t src_size() const { return int64_t(n) * c * h_in * w_in; }
  int64_t dst_size() const { return int64_t(n) * c * h_out * w_out; }
};

struct DenseShape {
  int n = 1;    // batch
  int in = 1;   // input features (the input's C*H*W)
  int out = 1;  // units
};

}  // namespace iotnas::kernels
