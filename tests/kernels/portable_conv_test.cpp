// Portable convolution (every variant in the lists of ops.hpp, and the dispatching ops) against
// the naive reference: exactly on integer-valued data, within float rounding on random data;
// backward by central finite differences of the double reference forward; bit-identical results
// for 1, 2 and 3 OpenMP threads.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/portable/ops.hpp"
#include "portable_helpers.hpp"
#include "reference/nn.hpp"
#include "test_util.hpp"

namespace iotnas::kernels::portable {
namespace {

using test::conv_shape;
using test::describe;
using test::exactly_equal;
using test::fresh_seed;
using test::nan_vector;
using test::random_ints;
using test::random_vector;
using test::seed_note;

// Odd and prime sizes, stride 2, padding, groups and depthwise, kernels 1/3/5/7/2 and
// non-square, batch 1 and > 1, channel counts below, at and above 8 and 16.
// conv_shape(n, c_in, c_out, h, w, kh, kw, sh, sw, ph, pw, groups)
std::vector<ConvShape> conv_cases() {
  return {
      conv_shape(1, 1, 8, 28, 28, 3, 3, 1, 1, 1, 1),      // first layer of the small nets
      conv_shape(3, 3, 5, 7, 7, 3, 3, 1, 1, 1, 1),        // batch 3, primes
      conv_shape(2, 8, 16, 13, 13, 5, 5, 1, 1, 2, 2),     // 8 -> 16, 5x5
      conv_shape(1, 17, 9, 11, 11, 7, 7, 1, 1, 3, 3),     // 17 in, 9 out (8 + 1), 7x7
      conv_shape(5, 4, 4, 9, 9, 1, 1),                    // pointwise, batch 5
      conv_shape(2, 6, 12, 13, 13, 3, 3, 2, 2, 1, 1),     // stride 2
      conv_shape(3, 16, 16, 9, 9, 3, 3, 1, 1, 1, 1, 16),  // depthwise
      conv_shape(2, 8, 16, 10, 10, 3, 3, 2, 2, 1, 1, 8),  // depthwise x2, stride 2
      conv_shape(2, 12, 18, 7, 7, 3, 3, 1, 1, 1, 1, 3),   // 3 groups of 4 -> 6
      conv_shape(1, 3, 7, 13, 17, 1, 7, 1, 1, 0, 3),      // 1x7
      conv_shape(2, 5, 6, 11, 13, 3, 5, 1, 1, 1, 2),      // 3x5
      conv_shape(3, 9, 17, 8, 8, 3, 3),                   // no padding, 17 out (8 + 8 + 1)
      conv_shape(1, 2, 3, 5, 5, 7, 7, 1, 1, 3, 3),        // kernel larger than the input
      conv_shape(2, 4, 8, 12, 12, 2, 2, 2, 2),            // 2x2 stride 2 (no direct)
      conv_shape(1, 32, 20, 7, 7, 3, 3, 1, 1, 1, 1),      // 20 out (8 + 8 + 4), 32 in
      conv_shape(2, 8, 16, 9, 9, 1, 1, 2, 2),             // strided 1x1 shortcut
      conv_shape(1, 3, 4, 15, 15, 5, 5, 2, 2, 2, 2),      // 5x5 stride 2
      conv_shape(1, 2, 3, 9, 10, 3, 3, 1, 2, 1, 1),       // stride 1x2
      conv_shape(4, 24, 13, 6, 5, 3, 3, 1, 1, 0, 1),      // pad 0x1, 13 out (8 + 4 + 1)
      conv_shape(1, 16, 32, 14, 14, 3, 3, 1, 1, 1, 1),    // a layer of the 14K net
      conv_shape(2, 6, 6, 8, 8, 5, 5, 1, 1, 2, 2, 2),     // 2 groups, 5x5
      conv_shape(3, 18, 36, 5, 5, 1, 1, 1, 1, 0, 0, 3),   // grouped pointwise
  };
}

template <typename V>
std::vector<const V*> variants_for(std::span<const V> list, const ConvShape& s) {
  std::vector<const V*> out;
  for (const V& v : list) {
    if (v.supports(s)) out.push_back(&v);
  }
  return out;
}

// Float tolerance for a sum of `terms` products of values in [-1, 1].
double sum_atol(int64_t terms) {
  return 2e-6 * double(terms) + 1e-6;
}

TEST(PortableConv, ForwardExactOnIntegersEveryVariant) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const ConvShape& s : conv_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_ints(s.src_size(), seed + 10 * i);
    const auto wei = random_ints(s.wei_size(), seed + 10 * i + 1);
    const auto bias = random_ints(s.c_out, seed + 10 * i + 2);
    ++i;
    const auto sd = ref::to_double(src), wd = ref::to_double(wei), bd = ref::to_double(bias);
    for (bool relu : {false, true}) {
      SCOPED_TRACE(relu ? "relu" : "no relu");
      const auto want = ref::conv2d_fwd(s, sd, wd, bd, relu);
      for (const ConvFwdVariant* v : variants_for(conv2d_fwd_variants(), s)) {
        SCOPED_TRACE(v->name);
        auto dst = nan_vector(s.dst_size());
        v->run(s, src.data(), wei.data(), bias.data(), dst.data(), relu);
        EXPECT_TRUE(exactly_equal(dst, want));
      }
      auto dst = nan_vector(s.dst_size());
      conv2d_fwd(s, src.data(), wei.data(), bias.data(), dst.data(), relu);
      EXPECT_TRUE(exactly_equal(dst, want)) << "conv2d_fwd";
    }
  }
}

TEST(PortableConv, ForwardRandomNoBiasEveryVariant) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const ConvShape& s : conv_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(s.src_size(), seed + 10 * i);
    const auto wei = random_vector(s.wei_size(), seed + 10 * i + 1);
    ++i;
    const auto want = ref::conv2d_fwd(s, ref::to_double(src), ref::to_double(wei), {}, false);
    const double atol = sum_atol(int64_t(s.c_in / s.groups) * s.kh * s.kw);
    for (const ConvFwdVariant* v : variants_for(conv2d_fwd_variants(), s)) {
      SCOPED_TRACE(v->name);
      auto dst = nan_vector(s.dst_size());
      v->run(s, src.data(), wei.data(), nullptr, dst.data(), false);
      EXPECT_TRUE(test::all_close(dst, want, 1e-5, atol));
    }
  }
}

TEST(PortableConv, BackwardDataExactOnIntegersEveryVariant) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const ConvShape& s : conv_cases()) {
    SCOPED_TRACE(describe(s));
    const auto ddst = random_ints(s.dst_size(), seed + 10 * i);
    const auto wei = random_ints(s.wei_size(), seed + 10 * i + 1);
    const auto prior = random_ints(s.src_size(), seed + 10 * i + 2);
    ++i;
    const auto want = ref::conv2d_bwd_data(s, ref::to_double(ddst), ref::to_double(wei));
    for (const ConvBwdDataVariant* v : variants_for(conv2d_bwd_data_variants(), s)) {
      SCOPED_TRACE(v->name);
      auto dsrc = nan_vector(s.src_size());
      v->run(s, ddst.data(), wei.data(), dsrc.data(), false);
      EXPECT_TRUE(exactly_equal(dsrc, want));
      dsrc = prior;  // accumulate adds to what is there
      v->run(s, ddst.data(), wei.data(), dsrc.data(), true);
      EXPECT_TRUE(exactly_equal(dsrc, test::plus(prior, want))) << "accumulate";
    }
    auto dsrc = nan_vector(s.src_size());
    conv2d_bwd_data(s, ddst.data(), wei.data(), dsrc.data(), false);
    EXPECT_TRUE(exactly_equal(dsrc, want)) << "conv2d_bwd_data";
  }
}

TEST(PortableConv, BackwardWeightsExactOnIntegersEveryVariant) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  int i = 0;
  for (const ConvShape& s : conv_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_ints(s.src_size(), seed + 10 * i);
    const auto ddst = random_ints(s.dst_size(), seed + 10 * i + 1);
    ++i;
    const auto sd = ref::to_double(src), gd = ref::to_double(ddst);
    const auto want_w = ref::conv2d_bwd_weights(s, sd, gd);
    const auto want_b = ref::conv2d_bwd_bias(s, gd);
    for (const ConvBwdWeightsVariant* v : variants_for(conv2d_bwd_weights_variants(), s)) {
      SCOPED_TRACE(v->name);
      auto dwei = nan_vector(s.wei_size()), dbias = nan_vector(s.c_out);
      v->run(s, src.data(), ddst.data(), dwei.data(), dbias.data());
      EXPECT_TRUE(exactly_equal(dwei, want_w)) << "dwei";
      EXPECT_TRUE(exactly_equal(dbias, want_b)) << "dbias";
      dwei = nan_vector(s.wei_size());
      v->run(s, src.data(), ddst.data(), dwei.data(), nullptr);  // dbias is nullable
      EXPECT_TRUE(exactly_equal(dwei, want_w)) << "dwei without dbias";
    }
    auto dwei = nan_vector(s.wei_size()), dbias = nan_vector(s.c_out);
    conv2d_bwd_weights(s, src.data(), ddst.data(), dwei.data(), dbias.data());
    EXPECT_TRUE(exactly_equal(dwei, want_w)) << "conv2d_bwd_weights";
    EXPECT_TRUE(exactly_equal(dbias, want_b)) << "conv2d_bwd_weights dbias";
  }
}

// L = sum(conv(src, wei, bias) * R): its gradients by central differences (double reference)
// at random elements, against every variant's backward on random float data.
TEST(PortableConv, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  constexpr double kStep = 1e-2;
  int i = 0;
  for (const ConvShape& s : conv_cases()) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(s.src_size(), seed + 10 * i);
    const auto wei = random_vector(s.wei_size(), seed + 10 * i + 1);
    const auto bias = random_vector(s.c_out, seed + 10 * i + 2);
    const auto r = random_vector(s.dst_size(), seed + 10 * i + 3);
    const uint64_t pick = seed + 10 * i + 4;
    ++i;
    const auto sd = ref::to_double(src), wd = ref::to_double(wei), bd = ref::to_double(bias),
               rd = ref::to_double(r);
    // Each probe costs two reference forwards: fewer on the big shapes (the exact tests above
    // compare every element of every variant's backward with the reference adjoint anyway).
    const size_t probes = s.flops() > 1000000 ? 4 : 12;
    const auto idx_src = test::random_indices(sd.size(), probes, pick);
    const auto idx_wei = test::random_indices(wd.size(), probes, pick + 1);
    const auto idx_bias = test::random_indices(bd.size(), probes, pick + 2);
    const auto fd_src = ref::numeric_grad(
        [&](const std::vector<double>& x) {
          return ref::dot(ref::conv2d_fwd(s, x, wd, bd, false), rd);
        },
        sd, idx_src, kStep);
    const auto fd_wei = ref::numeric_grad(
        [&](const std::vector<double>& x) {
          return ref::dot(ref::conv2d_fwd(s, sd, x, bd, false), rd);
        },
        wd, idx_wei, kStep);
    const auto fd_bias = ref::numeric_grad(
        [&](const std::vector<double>& x) {
          return ref::dot(ref::conv2d_fwd(s, sd, wd, x, false), rd);
        },
        bd, idx_bias, kStep);

    const double atol_data = sum_atol(int64_t(s.c_out / s.groups) * s.kh * s.kw);
    const double atol_wei = sum_atol(int64_t(s.n) * s.h_out * s.w_out);
    for (const ConvBwdDataVariant* v : variants_for(conv2d_bwd_data_variants(), s)) {
      SCOPED_TRACE(v->name);
      auto dsrc = nan_vector(s.src_size());
      v->run(s, r.data(), wei.data(), dsrc.data(), false);
      EXPECT_TRUE(test::all_close(test::gather(dsrc, idx_src), fd_src, 1e-4, atol_data)) << "dsrc";
    }
    for (const ConvBwdWeightsVariant* v : variants_for(conv2d_bwd_weights_variants(), s)) {
      SCOPED_TRACE(v->name);
      auto dwei = nan_vector(s.wei_size()), dbias = nan_vector(s.c_out);
      v->run(s, src.data(), r.data(), dwei.data(), dbias.data());
      EXPECT_TRUE(test::all_close(test::gather(dwei, idx_wei), fd_wei, 1e-4, atol_wei)) << "dwei";
      EXPECT_TRUE(test::all_close(test::gather(dbias, idx_bias), fd_bias, 1e-4, atol_wei))
          << "dbias";
    }
  }
}

// The same bits for 1, 2 and 3 threads, for every variant and direction; batches large enough
// that the weight gradient is reduced over several chunks.
TEST(PortableConv, SameBitsForAnyThreadCount) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  std::vector<ConvShape> cases = {
      conv_shape(1, 16, 32, 14, 14, 3, 3, 1, 1, 1, 1),
      conv_shape(13, 6, 12, 9, 9, 3, 3, 1, 1, 1, 1),
      conv_shape(11, 8, 16, 10, 10, 3, 3, 2, 2, 1, 1),
      conv_shape(9, 16, 16, 7, 7, 3, 3, 1, 1, 1, 1, 16),
      conv_shape(10, 12, 20, 6, 6, 1, 1),
      conv_shape(2, 40, 24, 12, 12, 5, 5, 1, 1, 2, 2),
  };
  int i = 0;
  for (const ConvShape& s : cases) {
    SCOPED_TRACE(describe(s));
    const auto src = random_vector(s.src_size(), seed + 10 * i);
    const auto wei = random_vector(s.wei_size(), seed + 10 * i + 1);
    const auto bias = random_vector(s.c_out, seed + 10 * i + 2);
    const auto ddst = random_vector(s.dst_size(), seed + 10 * i + 3);
    ++i;
    struct Out {
      std::vector<float> dst, dsrc, dwei, dbias;
    };
    auto run_all = [&](int threads, const auto& fwd, const auto& bwd_data, const auto& bwd_wei) {
      test::ThreadCount tc(threads);
      Out o{nan_vector(s.dst_size()), nan_vector(s.src_size()), nan_vector(s.wei_size()),
            nan_vector(s.c_out)};
      if (fwd) fwd->run(s, src.data(), wei.data(), bias.data(), o.dst.data(), true);
      if (bwd_data) bwd_data->run(s, ddst.data(), wei.data(), o.dsrc.data(), false);
      if (bwd_wei) bwd_wei->run(s, src.data(), ddst.data(), o.dwei.data(), o.dbias.data());
      return o;
    };
    const ConvBwdDataVariant* no_data = nullptr;
    const ConvBwdWeightsVariant* no_wei = nullptr;
    const ConvFwdVariant* no_fwd = nullptr;
    for (const ConvFwdVariant* v : variants_for(conv2d_fwd_variants(), s)) {
      SCOPED_TRACE(std::string("fwd ") + v->name);
      const Out one = run_all(1, v, no_data, no_wei);
      for (int t : {2, 3})
        EXPECT_TRUE(test::bitwise_equal(run_all(t, v, no_data, no_wei).dst, one.dst));
    }
    for (const ConvBwdDataVariant* v : variants_for(conv2d_bwd_data_variants(), s)) {
      SCOPED_TRACE(std::string("bwd data ") + v->name);
      const Out one = run_all(1, no_fwd, v, no_wei);
      for (int t : {2, 3})
        EXPECT_TRUE(test::bitwise_equal(run_all(t, no_fwd, v, no_wei).dsrc, one.dsrc));
    }
    for (const ConvBwdWeightsVariant* v : variants_for(conv2d_bwd_weights_variants(), s)) {
      SCOPED_TRACE(std::string("bwd weights ") + v->name);
      const Out one = run_all(1, no_fwd, no_data, v);
      for (int t : {2, 3}) {
        const Out many = run_all(t, no_fwd, no_data, v);
        EXPECT_TRUE(test::bitwise_equal(many.dwei, one.dwei)) << t << " threads";
        EXPECT_TRUE(test::bitwise_equal(many.dbias, one.dbias)) << t << " threads";
      }
    }
  }
}

TEST(PortableConv, DispatchPicksTheExpectedVariant) {
  struct Want {
    ConvShape s;
    const char *fwd, *bwd_data, *bwd_weights;
  };
  const Want wants[] = {
      // 3x3 stride 1: direct, except the weight gradient of a dense convolution.
      {conv_shape(1, 16, 32, 14, 14, 3, 3, 1, 1, 1, 1), "direct", "direct", "gemm"},
      // a first layer: the flipped convolution for dsrc would have 1 output channel.
      {conv_shape(8, 1, 16, 28, 28, 3, 3, 1, 1, 1, 1), "direct", "gemm", "gemm"},
      // stride 2: direct forward only.
      {conv_shape(2, 16, 32, 14, 14, 3, 3, 2, 2, 1, 1), "direct", "gemm", "gemm"},
      // depthwise, stride 1 and 2.
      {conv_shape(2, 8, 8, 10, 10, 3, 3, 1, 1, 1, 1, 8), "direct", "direct", "direct"},
      {conv_shape(2, 8, 8, 10, 10, 3, 3, 2, 2, 1, 1, 8), "direct", "generic", "direct"},
      // kernel sides outside {1, 3, 5, 7}.
      {conv_shape(2, 8, 16, 12, 12, 2, 2, 2, 2), "gemm", "gemm", "gemm"},
      {conv_shape(2, 8, 8, 12, 12, 2, 2, 2, 2, 0, 0, 8), "generic", "generic", "generic"},
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(describe(w.s));
    EXPECT_STREQ(conv2d_fwd_variant_name(w.s), w.fwd);
    EXPECT_STREQ(conv2d_bwd_data_variant_name(w.s), w.bwd_data);
    EXPECT_STREQ(conv2d_bwd_weights_variant_name(w.s), w.bwd_weights);
  }
  // Every list ends with a variant that takes any shape.
  EXPECT_STREQ(conv2d_fwd_variants().back().name, "gemm");
  EXPECT_STREQ(conv2d_bwd_data_variants().back().name, "gemm");
  EXPECT_STREQ(conv2d_bwd_weights_variants().back().name, "gemm");
}

}  // namespace
}  // namespace iotnas::kernels::portable
