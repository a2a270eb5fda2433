#include "engine/trainer.hpp"

#include <chrono>
#include <cmath>

#include "kernels/base/error.hpp"
#include "kernels/portable/ops.hpp"

namespace iotnas {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int64_t count_correct(const float* logits, const int32_t* labels, int n, int k) {
  int64_t correct = 0;
  for (int i = 0; i < n; ++i) {
    const float* row = logits + int64_t(i) * k;
    int best = 0;
    for (int j = 1; j < k; ++j) {
      if (row[j] > row[best]) best = j;
    }
    correct += best == labels[i];
  }
  return correct;
}

}  // namespace

void check_model_fits(const Model& model, const Dataset& data) {
  const Graph& g = model.graph;
  if (!(g.input == data.shape)) {
    fail("model '", g.name, "' takes input ", to_string(g.input), " but dataset '", data.name,
         "' has images ", to_string(data.shape),
         "; build the model for this dataset (ref: models: --data)");
  }
  const Shape out = g.output().out;
  if (out.h != 1 || out.w != 1 || out.c != data.classes) {
    fail("model '", g.name, "' outputs ", to_string(out), " but dataset '", data.name, "' has ",
         data.classes, " classes; the last layer must output [", data.classes, ", 1, 1]");
  }
}

EvalSet make_eval_set(const Dataset& data, bool test_split, const std::vector<int32_t>& indices) {
  BatchOptions bo;
  bo.batch = 1024;
  bo.shuffle = false;
  bo.augment = false;
  Batcher b(data, !test_split, indices, bo);
  EvalSet set;
  set.shape = data.shape;
  set.images.resize(size_t(b.size()) * data.shape.size());
  set.labels.resize(size_t(b.size()));
  b.start_epoch(0);
  int64_t at = 0;
  for (int got;
       (got = b.next(set.images.data() + at * data.shape.size(), set.labels.data() + at)) > 0;) {
    at += got;
  }
  IOTNAS_ASSERT(at == b.size());
  return set;
}

Evaluator::Evaluator(const Model& model, BackendKind backend, int batch)
    : folded_(fold_batch_norm(model)), params_(folded_.params), batch_(batch) {
  ProgramOptions o;
  o.backend = backend;
  o.batch = batch;
  o.mode = Mode::infer;
  program_ = compile(folded_.graph, o, {params_.data(), nullptr, folded_.state.data()});
}

void Evaluator::set_params(const std::vector<float>& params) {
  IOTNAS_ASSERT(params.size() == params_.size());
  std::copy(params.begin(), params.end(), params_.begin());
  program_->params_changed();
}

void Evaluator::set_hook(ActivationHook hook) {
  program_->set_hook(std::move(hook));
}

EvalResult Evaluator::run(const EvalSet& set) {
  IOTNAS_ASSERT(set.shape == folded_.graph.input, "eval set shape differs from the model input");
  const auto t0 = Clock::now();
  const int k = folded_.graph.output().out.c;
  const int64_t per = set.shape.size();
  int64_t correct = 0;
  double loss = 0;
  for (int64_t at = 0; at < set.size(); at += batch_) {
    const int n = int(std::min<int64_t>(batch_, set.size() - at));
    program_->forward(set.images.data() + at * per, n);
    const float* logits = program_->logits();
    correct += count_correct(logits, set.labels.data() + at, n, k);
    loss += kernels::portable::softmax_xent(n, k, logits, set.labels.data() + at, nullptr) * n;
  }
  EvalResult r;
  r.images = set.size();
  r.accuracy = set.size() ? double(correct) / double(set.size()) : 0.0;
  r.loss = set.size() ? loss / double(set.size()) : 0.0;
  r.seconds = seconds_since(t0);
  return r;
}

TrainReport train(Model& model, const Dataset& data, const TrainConfig& cfg,
                  const ProgressFn& progress) {
  check_model_fits(model, data);
  if (cfg.epochs < 1 || cfg.epochs > 100000)
    fail("--epochs ", cfg.epochs, " is out of range [1, 100000]");
  if (cfg.batch < 1 || cfg.batch > 65536)
    fail("--batch ", cfg.batch, " is out of range [1, 65536]");
  validate(cfg.optimizer);
  const Graph& g = model.graph;
  const int k = g.output().out.c;
  const int64_t per = g.input.size();

  std::vector<int32_t> train_idx, val_idx;
  if (cfg.val_fraction > 0) {
    if (cfg.val_fraction >= 1) fail("validation fraction ", cfg.val_fraction, " must be below 1");
    auto split = validation_split(data, cfg.val_fraction, cfg.seed);
    train_idx = std::move(split.train);
    val_idx = std::move(split.val);
  }
  BatchOptions bo;
  bo.batch = cfg.batch;
  bo.shuffle = true;
  bo.augment = cfg.augment.value_or(data.augment_by_default);
  bo.seed = cfg.seed;
  Batcher batches(data, true, train_idx, bo);
  if (batches.size() == 0) fail("dataset '", data.name, "' has no training images");
  EvalSet test_set = make_eval_set(data, true);
  EvalSet val_set;
  if (!val_idx.empty()) val_set = make_eval_set(data, false, val_idx);

  std::vector<float> grads(g.num_params, 0.f);
  ProgramOptions po;
  po.backend = cfg.backend;
  po.batch = cfg.batch;
  po.mode = Mode::train;
  auto program = compile(g, po, {model.params.data(), grads.data(), model.state.data()});
  Optimizer opt(g, cfg.optimizer);

  std::vector<float> images(size_t(cfg.batch) * per);
  std::vector<int32_t> labels(size_t(cfg.batch));
  std::vector<float> dlogits(size_t(cfg.batch) * k);
  const int64_t steps_per_epoch = batches.batches_per_epoch();
  const int64_t total_steps = steps_per_epoch * cfg.epochs;
  TrainReport report;
  const auto t_start = Clock::now();
  double eval_seconds = 0;
  int64_t global_step = 0;
  for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
    batches.start_epoch(epoch - 1);
    const auto t_epoch = Clock::now();
    double loss_sum = 0;
    int64_t seen = 0, correct = 0, step = 0;
    auto last_report = Clock::now();
    EpochStats st;
    st.epoch = epoch;
    for (int n; (n = batches.next(images.data(), labels.data())) > 0; ++step, ++global_step) {
      program->forward(images.data(), n);
      const float* logits = program->logits();
      const double loss =
          kernels::portable::softmax_xent(n, k, logits, labels.data(), dlogits.data());
      if (!std::isfinite(loss)) {
        fail("training diverged: loss is ", loss, " at epoch ", epoch, " step ", step + 1, " (of ",
             steps_per_epoch, "); lower the learning rate (--lr, now ", cfg.optimizer.lr, ")");
      }
      correct += count_correct(logits, labels.data(), n, k);
      program->backward(dlogits.data());
      st.lr = learning_rate(cfg.optimizer, global_step, total_steps, steps_per_epoch);
      opt.step(model.params.data(), grads.data(), st.lr);
      loss_sum += loss * n;
      seen += n;
      if (progress && seconds_since(last_report) >= 1.0) {
        last_report = Clock::now();
        TrainProgress p;
        p.epoch = epoch, p.epochs = cfg.epochs, p.step = step + 1,
        p.steps_per_epoch = steps_per_epoch;
        p.loss = loss_sum / double(seen);
        p.elapsed_seconds = seconds_since(t_start);
        const double train_elapsed = p.elapsed_seconds - eval_seconds;
        const double per_step = train_elapsed / double(global_step + 1);
        const double eval_per_epoch = epoch > 1 ? eval_seconds / double(epoch - 1) : 0.0;
        p.eta_seconds = per_step * double(total_steps - global_step - 1) +
                        eval_per_epoch * double(cfg.epochs - epoch + 1);
        p.images_per_second = double(seen) / seconds_since(t_epoch);
        progress(p);
      }
    }
    st.seconds = seconds_since(t_epoch);
    st.loss = loss_sum / double(seen);
    st.train_accuracy = double(correct) / double(seen);
    st.images_per_second = double(seen) / st.seconds;
    report.images += seen;
    report.train_seconds += st.seconds;
    const auto t_eval = Clock::now();
    if (cfg.eval_each_epoch || epoch == cfg.epochs) {
      Evaluator ev(model, cfg.backend, cfg.eval_batch);
      st.test_accuracy = ev.run(test_set).accuracy;
      if (val_set.size()) st.val_accuracy = ev.run(val_set).accuracy;
    }
    eval_seconds += seconds_since(t_eval);
    report.epochs.push_back(st);
    if (progress) {
      TrainProgress p;
      p.epoch = epoch, p.epochs = cfg.epochs, p.step = steps_per_epoch,
      p.steps_per_epoch = steps_per_epoch;
      p.loss = st.loss;
      p.elapsed_seconds = seconds_since(t_start);
      p.eta_seconds = (p.elapsed_seconds / epoch) * (cfg.epochs - epoch);
      p.images_per_second = st.images_per_second;
      p.finished = &report.epochs.back();
      progress(p);
    }
  }
  report.test_accuracy = report.epochs.back().test_accuracy;
  report.val_accuracy = report.epochs.back().val_accuracy;
  report.images_per_second = double(report.images) / report.train_seconds;
  return report;
}

}  // namespace iotnas
