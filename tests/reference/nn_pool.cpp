// Reference pooling: each output is a loop over its kh x kw window.
#include <limits>

#include "reference/nn.hpp"

namespace iotnas::ref {
namespace {

size_t in_index(const PoolShape& s, int n, int c, int h, int w) {
  return ((size_t(n) * s.c + c) * s.h_in + h) * s.w_in + w;
}
size_t out_index(const PoolShape& s, int n, int c, int h, int w) {
  return ((size_t(n) * s.c + c) * s.h_out + h) * s.w_out + w;
}

// Calls f(n, c, oh, ow, h, w) for every input position (h, w) inside output (oh, ow)'s window,
// in row-major window order.
template <typename F>
void for_each_window_element(const PoolShape& s, F&& f) {
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int oh = 0; oh < s.h_out; ++oh)
        for (int ow = 0; ow < s.w_out; ++ow)
          for (int i = 0; i < s.kh; ++i)
            for (int j = 0; j < s.kw; ++j) {
              const int h = oh * s.sh - s.ph + i, w = ow * s.sw - s.pw + j;
              if (h < 0 || h >= s.h_in || w < 0 || w >= s.w_in) continue;
              f(n, c, oh, ow, h, w);
            }
}

}  // namespace

MaxPoolResult max_pool_fwd(const PoolShape& s, dspan src) {
  MaxPoolResult r;
  r.dst.assign(size_t(s.dst_size()), -std::numeric_limits<double>::infinity());
  r.argmax.assign(size_t(s.dst_size()), -1);
  for_each_window_element(s, [&](int n, int c, int oh, int ow, int h, int w) {
    const size_t o = out_index(s, n, c, oh, ow);
    const double v = src[in_index(s, n, c, h, w)];
    if (r.argmax[o] < 0 || v > r.dst[o]) {  // strictly greater: the first maximum stays
      r.dst[o] = v;
      r.argmax[o] = h * s.w_in + w;
    }
  });
  return r;
}

std::vector<double> max_pool_bwd(const PoolShape& s, dspan ddst, std::span<const int32_t> argmax) {
  std::vector<double> dsrc(size_t(s.src_size()), 0.0);
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int oh = 0; oh < s.h_out; ++oh)
        for (int ow = 0; ow < s.w_out; ++ow) {
          const size_t o = out_index(s, n, c, oh, ow);
          if (argmax[o] < 0) continue;
          dsrc[in_index(s, n, c, argmax[o] / s.w_in, argmax[o] % s.w_in)] += ddst[o];
        }
  return dsrc;
}

std::vector<double> avg_pool_fwd(const PoolShape& s, dspan src) {
  std::vector<double> dst(size_t(s.dst_size()), 0.0);
  for_each_window_element(s, [&](int n, int c, int oh, int ow, int h, int w) {
    dst[out_index(s, n, c, oh, ow)] += src[in_index(s, n, c, h, w)];
  });
  for (double& d : dst) d /= s.kh * s.kw;
  return dst;
}

std::vector<double> avg_pool_bwd(const PoolShape& s, dspan ddst) {
  std::vector<double> dsrc(size_t(s.src_size()), 0.0);
  for_each_window_element(s, [&](int n, int c, int oh, int ow, int h, int w) {
    dsrc[in_index(s, n, c, h, w)] += ddst[out_index(s, n, c, oh, ow)] / (s.kh * s.kw);
  });
  return dsrc;
}

std::vector<double> global_avg_pool_fwd(int n, int c, int hw, dspan src) {
  std::vector<double> dst(size_t(n) * c, 0.0);
  for (size_t p = 0; p < dst.size(); ++p) {
    for (int i = 0; i < hw; ++i) dst[p] += src[p * hw + i];
    dst[p] /= hw;
  }
  return dst;
}

std::vector<double> global_avg_pool_bwd(int n, int c, int hw, dspan ddst) {
  std::vector<double> dsrc(size_t(n) * c * hw);
  for (size_t p = 0; p < size_t(n) * c; ++p) {
    for (int i = 0; i < hw; ++i) dsrc[p * hw + i] = ddst[p] / hw;
  }
  return dsrc;
}

}  // namespace iotnas::ref
