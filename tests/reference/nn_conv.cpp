// Reference convolution: the defining sum, one output (or one adjoint) element at a time.
#include <algorithm>

#include "reference/nn.hpp"

namespace iotnas::ref {
namespace {

// Index helpers for [n, c, h, w] and [co, ci_g, kh, kw].
struct Idx {
  const ConvShape& s;
  size_t src(int n, int c, int h, int w) const {
    return ((size_t(n) * s.c_in + c) * s.h_in + h) * s.w_in + w;
  }
  size_t dst(int n, int c, int h, int w) const {
    return ((size_t(n) * s.c_out + c) * s.h_out + h) * s.w_out + w;
  }
  size_t wei(int co, int ci_g, int i, int j) const {
    return ((size_t(co) * (s.c_in / s.groups) + ci_g) * s.kh + i) * s.kw + j;
  }
};

// Calls f(n, co, oh, ow, ci, ci_g, i, j, ih, iw) for every term of every output whose input
// position (ih, iw) lies inside the input (terms on the zero padding contribute nothing).
template <typename F>
void for_each_term(const ConvShape& s, F&& f) {
  const int cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
  for (int n = 0; n < s.n; ++n)
    for (int co = 0; co < s.c_out; ++co)
      for (int oh = 0; oh < s.h_out; ++oh)
        for (int ow = 0; ow < s.w_out; ++ow)
          for (int ci_g = 0; ci_g < cin_g; ++ci_g)
            for (int i = 0; i < s.kh; ++i)
              for (int j = 0; j < s.kw; ++j) {
                const int ih = oh * s.sh - s.ph + i, iw = ow * s.sw - s.pw + j;
                if (ih < 0 || ih >= s.h_in || iw < 0 || iw >= s.w_in) continue;
                const int ci = (co / cout_g) * cin_g + ci_g;
                f(n, co, oh, ow, ci, ci_g, i, j, ih, iw);
              }
}

}  // namespace

std::vector<double> to_double(std::span<const float> x) {
  return {x.begin(), x.end()};
}

std::vector<double> conv2d_fwd(const ConvShape& s, dspan src, dspan wei, dspan bias, bool relu) {
  const Idx x{s};
  std::vector<double> dst(size_t(s.dst_size()), 0.0);
  for_each_term(
      s, [&](int n, int co, int oh, int ow, int ci, int ci_g, int i, int j, int ih, int iw) {
        dst[x.dst(n, co, oh, ow)] += wei[x.wei(co, ci_g, i, j)] * src[x.src(n, ci, ih, iw)];
      });
  for (int n = 0; n < s.n; ++n)
    for (int co = 0; co < s.c_out; ++co)
      for (int oh = 0; oh < s.h_out; ++oh)
        for (int ow = 0; ow < s.w_out; ++ow) {
          double& d = dst[x.dst(n, co, oh, ow)];
          if (!bias.empty()) d += bias[co];
          if (relu) d = std::max(d, 0.0);
        }
  return dst;
}

std::vector<double> conv2d_bwd_data(const ConvShape& s, dspan ddst, dspan wei) {
  const Idx x{s};
  std::vector<double> dsrc(size_t(s.src_size()), 0.0);
  for_each_term(
      s, [&](int n, int co, int oh, int ow, int ci, int ci_g, int i, int j, int ih, int iw) {
        dsrc[x.src(n, ci, ih, iw)] += wei[x.wei(co, ci_g, i, j)] * ddst[x.dst(n, co, oh, ow)];
      });
  return dsrc;
}

std::vector<double> conv2d_bwd_weights(const ConvShape& s, dspan src, dspan ddst) {
  const Idx x{s};
  std::vector<double> dwei(size_t(s.wei_size()), 0.0);
  for_each_term(
      s, [&](int n, int co, int oh, int ow, int ci, int ci_g, int i, int j, int ih, int iw) {
        dwei[x.wei(co, ci_g, i, j)] += src[x.src(n, ci, ih, iw)] * ddst[x.dst(n, co, oh, ow)];
      });
  return dwei;
}

std::vector<double> conv2d_bwd_bias(const ConvShape& s, dspan ddst) {
  const Idx x{s};
  std::vector<double> dbias(size_t(s.c_out), 0.0);
  for (int n = 0; n < s.n; ++n)
    for (int co = 0; co < s.c_out; ++co)
      for (int oh = 0; oh < s.h_out; ++oh)
        for (int ow = 0; ow < s.w_out; ++ow) dbias[co] += ddst[x.dst(n, co, oh, ow)];
  return dbias;
}

}  // namespace iotnas::ref
