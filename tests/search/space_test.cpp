// Search spaces: every vector inside the bounds builds a valid model (shape inference succeeds)
// for Fashion-MNIST and CIFAR-10 inputs, the fast analytic path equals engine's analyze() exactly,
// the reference models are members, and the metrics never decrease when a variable grows.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <string>

#include "engine/graph.hpp"
#include "engine/reference_models.hpp"
#include "kernels/base/error.hpp"
#include "search/law.hpp"
#include "search/space.hpp"
#include "test_util.hpp"

namespace iotnas::search {
namespace {

const Shape kMnist{1, 28, 28};
const Shape kCifar{3, 32, 32};

#ifdef NDEBUG
constexpr int64_t kValiditySamples = 50000;  // per space and input shape: 100,000 per space
#else
constexpr int64_t kValiditySamples = 1000;  // debug/sanitizer builds are ~30x slower
#endif

::testing::AssertionResult same_analytics(const Analytics& got, const Analytics& want) {
  if (got.params == want.params && got.inference_params == want.inference_params &&
      got.flops == want.flops && got.peak_activation_bytes == want.peak_activation_bytes &&
      got.total_activation_bytes == want.total_activation_bytes &&
      got.num_layers == want.num_layers) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "params " << got.params << " vs " << want.params << ", inference params "
         << got.inference_params << " vs " << want.inference_params << ", flops " << got.flops
         << " vs " << want.flops << ", peak bytes " << got.peak_activation_bytes << " vs "
         << want.peak_activation_bytes << ", total bytes " << got.total_activation_bytes << " vs "
         << want.total_activation_bytes << ", layers " << got.num_layers << " vs "
         << want.num_layers;
}

// Every uniformly drawn vector builds a spec that engine's build_graph accepts, and the fast
// analytic path agrees with analyze(build_graph(spec)) on every field.
void check_all_valid(const Space& space, Shape input, int64_t n, uint64_t seed) {
  const Law law = uniform_law(space);
  std::atomic<int64_t> bad{0};
  std::string first_error;
#pragma omp parallel
  {
    NetBuilder scratch;
    std::vector<int> vars(space.vars.size());
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) {
      Rng rng(seed, uint64_t(i));
      if (i == 0) {
        vars = space.min_vector();
      } else if (i == 1) {
        vars = space.max_vector();
      } else {
        draw_vector(space, law, rng, vars);
      }
      std::string error;
      try {
        const Analytics fast = analyze_vars(space, vars, input, 10, scratch);
        const Analytics full = analyze(build_graph(build_spec(space, vars, input, 10)));
        auto same = same_analytics(fast, full);
        if (!same) error = same.message();
      } catch (const std::exception& e) {
        error = e.what();
      }
      if (!error.empty() && bad.fetch_add(1) == 0) {
#pragma omp critical
        first_error = space.name + vector_string(vars) + " on " + to_string(input) + ": " + error;
      }
    }
  }
  EXPECT_EQ(bad.load(), 0) << first_error << " (" << test::seed_note(seed) << ")";
}

class EverySpace : public ::testing::TestWithParam<std::string> {
 protected:
  const Space& space() const { return find_space(GetParam()); }
};

TEST_P(EverySpace, AllSamplesAreValidModelsFashionMnist) {
  check_all_valid(space(), kMnist, kValiditySamples, test::fresh_seed());
}

TEST_P(EverySpace, AllSamplesAreValidModelsCifar10) {
  check_all_valid(space(), kCifar, kValiditySamples, test::fresh_seed());
}

TEST_P(EverySpace, AllSamplesAreValidModelsOnTheSmallestInput) {
  check_all_valid(space(), {2, kMinInputSide, kMinInputSide}, kValiditySamples / 10,
                  test::fresh_seed());
}

TEST_P(EverySpace, SpecsSurviveAJsonRoundTrip) {
  const uint64_t seed = test::fresh_seed();
  Rng rng(seed);
  std::vector<int> vars(space().vars.size());
  for (int i = 0; i < 20; ++i) {
    draw_vector(space(), uniform_law(space()), rng, vars);
    const ModelSpec spec = build_spec(space(), vars, kCifar, 10);
    const ModelSpec back = parse_spec(spec_to_json(spec), "round trip");
    EXPECT_TRUE(same_analytics(analyze(back), analyze(spec))) << test::seed_note(seed);
  }
}

TEST_P(EverySpace, ReferencesAreMembers) {
  ASSERT_FALSE(space().references.empty());
  for (const Reference& r : space().references) {
    EXPECT_NO_THROW(space().check_vector(r.vars)) << r.name;
  }
}

TEST_P(EverySpace, MetricsNeverDecreaseWhenAVariableGrows) {
  const uint64_t seed = test::fresh_seed();
  Rng rng(seed);
  const Law law = uniform_law(space());
  std::vector<int> vars(space().vars.size());
  for (int trial = 0; trial < 2000; ++trial) {
    draw_vector(space(), law, rng, vars);
    const Analytics base = analyze_vars(space(), vars, kMnist, 10);
    for (size_t v = 0; v < vars.size(); ++v) {
      const Variable& x = space().vars[v];
      if (vars[v] + x.step > x.max) continue;
      std::vector<int> up = vars;
      up[v] += x.step;
      const Analytics a = analyze_vars(space(), up, kMnist, 10);
      ASSERT_GE(a.params, base.params)
          << x.name << " at " << vector_string(vars) << " " << test::seed_note(seed);
      ASSERT_GE(a.flops, base.flops)
          << x.name << " at " << vector_string(vars) << " " << test::seed_note(seed);
    }
  }
}

TEST_P(EverySpace, ReachableRangeBoundsEverySample) {
  for (Shape input : {kMnist, kCifar}) {
    for (Metric m : {Metric::params, Metric::flops}) {
      const Reach reach = reachable_range(space(), m, input, 10);
      SampleOptions o;
      o.input = input;
      o.seed = test::fresh_seed();
      const Law law = uniform_law(space());
      for (const Sample& s : sample_laws(space(), {&law, 1}, 5000, o)) {
        ASSERT_GE(metric_value(s.analytics, m), reach.min);
        ASSERT_LE(metric_value(s.analytics, m), reach.max);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Search, EverySpace,
                         ::testing::Values("plain", "resnet", "inception", "densenet", "mobilenet"),
                         [](const auto& info) { return info.param; });

// ---- reference models written out independently of the space builders -----------------------

const Reference& reference(const Space& space, const std::string& name) {
  for (const auto& r : space.references) {
    if (r.name == name) return r;
  }
  throw std::runtime_error("no reference " + name);
}

void expect_member(const std::string& space_name, const std::string& ref, const ModelSpec& want) {
  const Space& space = find_space(space_name);
  const Reference& r = reference(space, ref);
  const Analytics got = analyze(build_spec(space, r.vars, want.input, 10));
  EXPECT_TRUE(same_analytics(got, analyze(want))) << space_name << " / " << ref;
}

TEST(References, Plain14kIsTheEngineReference) {
  for (Shape in : {kMnist, kCifar}) {
    expect_member("plain", "plain-14k", reference_model("plain-14k", in, 10));
  }
  EXPECT_EQ(analyze(build_spec(find_space("plain"), std::vector<int>{16, 3, 3, 32, 3, 3, 32, 3, 3},
                               kMnist, 10))
                .params,
            14378);
}

TEST(References, Resnet20IsTheEngineReference) {
  for (Shape in : {kMnist, kCifar})
    expect_member("resnet", "resnet20", reference_model("resnet20", in, 10));
}

// DenseNet-BC (Huang et al. 2017), written as the paper describes it.
ModelSpec densenet_bc(Shape in, int k, int layers_per_block, int blocks) {
  ModelSpec m{"densenet-bc", in, {}};
  m.layers.push_back(conv("stem", 2 * k, 3, 1, 1, 1, false));
  std::string features = "stem";
  int channels = 2 * k;
  for (int b = 0; b < blocks; ++b) {
    const std::string blk = "b" + std::to_string(b);
    if (b > 0) {
      channels /= 2;  // compression 0.5
      m.layers.push_back(from(batch_norm(blk + "_t_bn"), {features}));
      m.layers.push_back(relu(blk + "_t_relu"));
      m.layers.push_back(conv(blk + "_t_conv", channels, 1, 1, 0, 1, false));
      m.layers.push_back(avg_pool(blk + "_t_pool", 2));
      features = blk + "_t_pool";
    }
    for (int l = 0; l < layers_per_block; ++l) {
      const std::string id = blk + "l" + std::to_string(l);
      m.layers.push_back(from(batch_norm(id + "_bn1"), {features}));
      m.layers.push_back(relu(id + "_relu1"));
      m.layers.push_back(conv(id + "_conv1", 4 * k, 1, 1, 0, 1, false));
      m.layers.push_back(batch_norm(id + "_bn2"));
      m.layers.push_back(relu(id + "_relu2"));
      m.layers.push_back(conv(id + "_conv2", k, 3, 1, 1, 1, false));
      m.layers.push_back(concat(id + "_cat", {features, id + "_conv2"}));
      features = id + "_cat";
      channels += k;
    }
  }
  m.layers.push_back(batch_norm("final_bn"));
  m.layers.push_back(relu("final_relu"));
  m.layers.push_back(global_avg_pool("gap"));
  m.layers.push_back(dense("fc", 10));
  return m;
}

TEST(References, DenseNetBC100IsAMember) {
  for (Shape in : {kMnist, kCifar})
    expect_member("densenet", "densenet-bc-100", densenet_bc(in, 12, 16, 3));
  // Huang et al. report 0.8M parameters for DenseNet-BC (L=100, k=12) on CIFAR.
  const auto p = analyze(densenet_bc(kCifar, 12, 16, 3)).params;
  EXPECT_GT(p, 750000);
  EXPECT_LT(p, 800000);
}

// MobileNet v1 for CIFAR: stem 32, then (channels, stride) separable blocks.
ModelSpec mobilenet_v1(Shape in) {
  ModelSpec m{"mobilenet", in, {}};
  m.layers.push_back(conv("stem", 32, 3, 1, 1, 1, false));
  m.layers.push_back(batch_norm("stem_bn"));
  m.layers.push_back(relu("stem_relu"));
  const int cfg[][2] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},  {512, 2}, {512, 1},
                        {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
  int in_c = 32;
  int i = 0;
  for (const auto& [out, stride] : cfg) {
    const std::string id = "b" + std::to_string(i++);
    m.layers.push_back(conv(id + "_dw", in_c, 3, stride, 1, in_c, false));
    m.layers.push_back(batch_norm(id + "_dw_bn"));
    m.layers.push_back(relu(id + "_dw_relu"));
    m.layers.push_back(conv(id + "_pw", out, 1, 1, 0, 1, false));
    m.layers.push_back(batch_norm(id + "_pw_bn"));
    m.layers.push_back(relu(id + "_pw_relu"));
    in_c = out;
  }
  m.layers.push_back(global_avg_pool("gap"));
  m.layers.push_back(dense("fc", 10));
  return m;
}

TEST(References, MobileNetIsAMember) {
  for (Shape in : {kMnist, kCifar}) expect_member("mobilenet", "mobilenet", mobilenet_v1(in));
  EXPECT_NEAR(double(analyze(mobilenet_v1(kCifar)).params), 3.2e6, 0.05e6);
}

// GoogLeNet-mini: stem 64, two inception(3a)-width modules per stage, widths doubling per stage.
ModelSpec inception_mini(Shape in) {
  ModelSpec m{"inception-mini", in, {}};
  m.layers.push_back(conv("stem", 64, 3, 1, 1, 1, false));
  m.layers.push_back(batch_norm("stem_bn"));
  m.layers.push_back(relu("stem_relu"));
  std::string x = "stem_relu";
  auto cbr = [&](const std::string& id, const std::string& src, int out, int k) {
    m.layers.push_back(from(conv(id, out, k, 1, k / 2, 1, false), {src}));
    m.layers.push_back(batch_norm(id + "_bn"));
    m.layers.push_back(relu(id + "_relu"));
    return id + "_relu";
  };
  for (int stage = 0; stage < 3; ++stage) {
    const int s = 1 << stage;
    if (stage > 0) {
      m.layers.push_back(from(max_pool("pool" + std::to_string(stage), 2), {x}));
      x = "pool" + std::to_string(stage);
    }
    for (int mod = 0; mod < 2; ++mod) {
      const std::string id = "s" + std::to_string(stage) + "m" + std::to_string(mod);
      const std::string b1 = cbr(id + "_1x1", x, 64 * s, 1);
      const std::string b3 = cbr(id + "_3x3", cbr(id + "_3x3r", x, 96 * s, 1), 128 * s, 3);
      const std::string b5 = cbr(id + "_5x5", cbr(id + "_5x5r", x, 16 * s, 1), 32 * s, 5);
      m.layers.push_back(from(max_pool(id + "_pool", 3, 1, 1), {x}));
      const std::string bp = cbr(id + "_poolproj", id + "_pool", 32 * s, 1);
      m.layers.push_back(concat(id + "_cat", {b1, b3, b5, bp}));
      x = id + "_cat";
    }
  }
  m.layers.push_back(global_avg_pool("gap"));
  m.layers.push_back(dense("fc", 10));
  return m;
}

TEST(References, InceptionMiniIsAMember) {
  for (Shape in : {kMnist, kCifar})
    expect_member("inception", "inception-mini", inception_mini(in));
}

// ---- the registry and bad input ----------------------------------------------------------------

TEST(Spaces, RegistryAndPlainDefinition) {
  EXPECT_EQ(space_names(), "plain, resnet, inception, densenet, mobilenet");
  const Space& plain = find_space("plain");
  ASSERT_EQ(plain.vars.size(), 9u);
  double size = 1;
  for (const auto& x : plain.vars) size *= x.count();
  EXPECT_DOUBLE_EQ(size, 4096.0 * 128 * 128 * 128);  // |S| = 4^6 * 128^3 (paper §3.1)
  // plain reaches at least 1e3..1e6 parameters on Fashion-MNIST.
  const Reach r = reachable_range(plain, Metric::params, kMnist, 10);
  EXPECT_LE(r.min, 1e3);
  EXPECT_GE(r.max, 1e6);
}

TEST(Spaces, BadInputIsAClearError) {
  EXPECT_THROW(
      {
        try {
          find_space("vgg");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("known: plain, resnet"), std::string::npos);
          throw;
        }
      },
      Error);
  const Space& plain = find_space("plain");
  EXPECT_THROW(build_spec(plain, std::vector<int>{16, 4, 3, 32, 3, 3, 32, 3, 3}, kMnist, 10),
               Error);  // kernel 4
  EXPECT_THROW(build_spec(plain, std::vector<int>{0, 3, 3, 32, 3, 3, 32, 3, 3}, kMnist, 10), Error);
  EXPECT_THROW(build_spec(plain, std::vector<int>{16, 3, 3}, kMnist, 10), Error);
  EXPECT_THROW(build_spec(plain, plain.min_vector(), {1, 4, 4}, 10), Error);
  EXPECT_THROW(parse_metric("latency"), Error);
}

}  // namespace
}  // namespace iotnas::search
