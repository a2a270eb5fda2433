// The precision sweep (quant/sweep.hpp) on a small model trained on a slice of Fashion-MNIST:
// the 184 rows, T(8,23) equal to float32, the hook scope that skips select-only maps, monotone
// chains, thread-count independence, and best-format selection.
#include "quant/sweep.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/program.hpp"
#include "engine/reference_models.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"
#include "kernels/round/round.hpp"
#include "test_util.hpp"

namespace iotnas::quant {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// ref:plain-1k trained for two epochs on 8,000 Fashion-MNIST images, and 600 balanced test images.
struct Trained {
  Model model;
  EvalSet set;
};

const Trained* trained() {
  static std::unique_ptr<Trained> t = [] {
    std::unique_ptr<Trained> r;
    const std::string dir = test::fashion_mnist_dir();
    if (dir.empty()) return r;
    Dataset ds = load_dataset("fashion-mnist:" + dir);
    const int64_t keep = 8000, pixels = ds.shape.size();
    ds.train_images.resize(size_t(keep * pixels));
    ds.train_labels.resize(size_t(keep));
    r = std::make_unique<Trained>();
    r->model = make_model(reference_model("plain-1k", ds.shape, ds.classes), 1);
    TrainConfig cfg;
    cfg.epochs = 2;
    cfg.batch = 32;
    cfg.eval_each_epoch = false;
    cfg.backend = parse_backend("auto");  // the fastest usable
    train(r->model, ds, cfg);
    r->set = make_eval_set(ds, true, balanced_subset(ds.test_labels, 600, ds.classes));
    return r;
  }();
  return t.get();
}

#define NEED_DATA()                \
  const Trained* data = trained(); \
  if (!data) GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"

TEST(Sweep, EveryTypeOnceWithItsBitsAndBytes) {
  NEED_DATA();
  SweepOptions o;
  o.threads = 2;
  // Under the sanitizers (unoptimised, instrumented: 142 s for 600 images) 150 images do.
  EvalSet set = data->set;
  if (kSanitized) {
    const int64_t keep = 150, per = set.shape.size();
    set.images.resize(size_t(keep * per));
    set.labels.resize(size_t(keep));
  }
  const SweepResult r = sweep(data->model, set, o);
  std::printf("float32 accuracy %.4f, best %d, sweep %.2fs\n", r.float32_accuracy, r.best,
              r.seconds);
  ASSERT_EQ(r.rows.size(), 184u);
  EXPECT_EQ(r.images, set.size());
  // The folded plain-1k has no batch norm left: its parameters are the model's.
  EXPECT_EQ(r.inference_params, int64_t(data->model.params.size()));
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const SweepRow& row = r.rows[i];
    EXPECT_EQ(row.format.w, int(i) / 23 + 1);
    EXPECT_EQ(row.format.t, int(i) % 23 + 1);
    EXPECT_EQ(row.bits, 1 + row.format.w + row.format.t);
    EXPECT_EQ(row.weight_bytes, (r.inference_params * row.bits + 7) / 8);
    EXPECT_GE(row.accuracy, 0.0);
    EXPECT_LE(row.accuracy, 1.0);
  }
  // Trained well above chance (10 %): measured 64.7 % (portable training).
  EXPECT_GT(r.float32_accuracy, 0.5);
  const SweepRow& f32 = r.rows[size_t(format_index({8, 23}))];
  EXPECT_EQ(f32.accuracy, r.float32_accuracy);
  // T(1,1) keeps nothing of a network: every value is 0, 1 or Inf.
  EXPECT_LT(r.rows[0].accuracy, 0.3);
  ASSERT_GE(r.best, 0);
  EXPECT_GE(r.rows[size_t(r.best)].accuracy, r.float32_accuracy - 0.005 - 1e-12);
  for (const SweepRow& row : r.rows)
    if (row.accuracy >= r.float32_accuracy - 0.005) {
      EXPECT_GE(row.bits, r.rows[size_t(r.best)].bits);
    }
}

// Accuracy falls (up to noise: 600 images, one wrong image is 0.17 points) along chains that
// only take bits away.
TEST(Sweep, AccuracyDoesNotRiseWhenBitsAreTakenAway) {
  NEED_DATA();
  SweepOptions o;
  const std::vector<std::vector<FloatFormat>> chains = {
      {{8, 23}, {8, 12}, {8, 7}, {8, 4}, {8, 2}, {8, 1}},
      {{8, 10}, {5, 10}, {4, 10}, {3, 10}, {2, 10}, {1, 10}},
      {{6, 9}, {5, 6}, {4, 3}, {3, 2}, {2, 1}, {1, 1}}};
  const double noise = 0.02;
  for (const auto& chain : chains) {
    o.formats = chain;
    const SweepResult r = sweep(data->model, data->set, o);
    for (size_t i = 1; i < r.rows.size(); ++i)
      EXPECT_LE(r.rows[i].accuracy, r.rows[i - 1].accuracy + noise)
          << format_label(r.rows[i].format) << " after " << format_label(r.rows[i - 1].format);
    EXPECT_LT(r.rows.back().accuracy, r.rows.front().accuracy);
  }
}

// The same sweep on one and on two threads, and on each backend, gives the same accuracies.
TEST(Sweep, IndependentOfThreadCount) {
  NEED_DATA();
  SweepOptions o;
  o.formats = parse_types("half,bfloat16,4:3,3:2,float");
  for (BackendKind b : usable_backends()) {
    o.backend = b;
    o.threads = 1;
    const SweepResult one = sweep(data->model, data->set, o);
    o.threads = 2;
    const SweepResult two = sweep(data->model, data->set, o);
    EXPECT_EQ(one.float32_accuracy, two.float32_accuracy);
    for (size_t i = 0; i < one.rows.size(); ++i)
      EXPECT_EQ(one.rows[i].accuracy, two.rows[i].accuracy) << format_label(one.rows[i].format);
  }
}

// Logits of one program run with a rounding hook on every map and with the sweep's scope (maps
// that only select or move hooked values skipped) are the same bits; T(8,23) leaves the float32
// logits unchanged bit for bit.
TEST(Sweep, ComputedMapScopeEqualsRoundingEveryMap) {
  NEED_DATA();
  Model folded = fold_batch_norm(data->model);
  const int n = sweep_micro_batch(folded.graph);
  ASSERT_GE(n, 1);
  const int k = folded.graph.output().out.c;
  for (BackendKind b : usable_backends()) {
    SCOPED_TRACE(backend_name(b));
    ProgramOptions po;
    po.backend = b;
    po.batch = n;
    po.mode = Mode::infer;
    auto prog = compile(folded.graph, po, {folded.params.data(), nullptr, folded.state.data()});
    auto logits_with = [&](const kernels::RoundParams* p, HookScope scope) {
      if (p)
        prog->set_hook([p](int, float* d, int64_t c) { kernels::round_array(d, d, c, *p); }, scope);
      else
        prog->set_hook(nullptr);
      prog->forward(data->set.images.data(), n);
      return std::vector<float>(prog->logits(), prog->logits() + int64_t(n) * k);
    };
    const auto plain = logits_with(nullptr, HookScope::all_maps);
    for (FloatFormat f : parse_types("float,half,4:3,2:5,1:3")) {
      const kernels::RoundParams p = kernels::make_round_params(f);
      const auto all = logits_with(&p, HookScope::all_maps);
      const auto computed = logits_with(&p, HookScope::computed_maps);
      ASSERT_EQ(all.size(), computed.size());
      EXPECT_EQ(std::memcmp(all.data(), computed.data(), all.size() * 4), 0) << format_label(f);
      if (f == FloatFormat{8, 23}) {
        EXPECT_EQ(std::memcmp(all.data(), plain.data(), all.size() * 4), 0);
      }
    }
  }
}

TEST(Sweep, MicroBatchKeepsEveryMapWithinOneMebibyte) {
  for (const char* name : {"plain-1k", "plain-14k", "plain-120k"}) {
    const Graph g = build_graph(reference_model(name, {1, 28, 28}, 10));
    const int n = sweep_micro_batch(g);
    EXPECT_GE(n, 1) << name;
    for (const Node& node : g.nodes)
      EXPECT_LE(int64_t(n) * ((node.out.c + 15) / 16 * 16) * node.out.h * node.out.w * 4, int64_t(1)
                                                                                              << 20)
          << name << " " << node.layer.name;
  }
}

TEST(Sweep, BestIsFewestBitsWithinTolerance) {
  auto row = [](int w, int t, double acc) {
    SweepRow r;
    r.format = {w, t};
    r.bits = 1 + w + t;
    r.accuracy = acc;
    return r;
  };
  std::vector<SweepRow> rows = {row(8, 23, 0.90), row(5, 10, 0.899), row(4, 3, 0.80),
                                row(4, 4, 0.896), row(3, 5, 0.897),  row(5, 3, 0.70)};
  // 9 bits: 4:4 (0.896) and 3:5 (0.897) tie on bits; the more accurate wins.
  EXPECT_EQ(best_format(rows, 0.90, 0.005), 4);
  EXPECT_EQ(best_format(rows, 0.90, 0.0035), 4);
  EXPECT_EQ(best_format(rows, 0.90, 0.002), 1);
  EXPECT_EQ(best_format(rows, 0.90, 0.0), 0);
  EXPECT_EQ(best_format(rows, 0.95, 0.01), -1);
  EXPECT_EQ(best_format({}, 0.9, 0.5), -1);
  EXPECT_EQ(best_format(rows, 0.90, 0.2), 2);  // 4:3 alone has 8 bits
}

TEST(Sweep, BadInputIsAClearError) {
  const Model m = make_model(reference_model("plain-1k", {1, 28, 28}, 10), 0);
  EvalSet empty;
  empty.shape = {1, 28, 28};
  EXPECT_THROW(sweep(m, empty, {}), Error);
  EvalSet wrong;
  wrong.shape = {3, 32, 32};
  wrong.images.assign(3 * 32 * 32, 0.f);
  wrong.labels = {0};
  EXPECT_THROW(sweep(m, wrong, {}), Error);
  EvalSet one;
  one.shape = {1, 28, 28};
  one.images.assign(28 * 28, 0.f);
  one.labels = {0};
  SweepOptions o;
  o.formats = {{9, 3}};
  EXPECT_THROW(sweep(m, one, o), Error);
  o.formats = {};
  o.tolerance = -1;
  EXPECT_THROW(sweep(m, one, o), Error);
}

}  // namespace
}  // namespace iotnas::quant
