#include "apps/units.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "engine/model.hpp"
#include "kernels/base/error.hpp"
#include "quant/sweep.hpp"

namespace iotnas::apps {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string fmt(const char* f, double v) {
  char buf[96];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

TrainConfig train_config(const RunConfig& c, BackendKind backend) {
  TrainConfig tc;
  apply_recipe(c.training, tc);
  tc.seed = c.seeds.train;
  tc.backend = backend;
  tc.eval_each_epoch = false;
  return tc;
}

// The model and training run in hand between an item's train unit and its sweep unit.
struct InHand {
  Model model;
  int64_t run_id = 0;
  bool sweep = false;  // trained or loaded, and its sweep is not finished
};

void say(const std::function<void(const std::string&)>& f, const std::string& s) {
  if (f) f(s);
}

// Trains the candidate, or finds its run (then loads its weights unless its sweep is finished).
InHand train_unit(const ItemContext& x, const PlanModel& p, const std::string& key,
                  const std::string& tag, UnitStore& store, ItemCounts& n) {
  const auto t = Clock::now();
  InHand hand;
  if (auto done = store.run(key, false)) {
    hand.run_id = done->id;
    n.reused++;
    if (store.swept(hand.run_id, x.plan.eval_key)) return hand;
    RunRow full = *store.run(key, true);
    hand.model = make_model(p.spec, x.config.seeds.train);
    hand.model.params = std::move(full.params);
    hand.model.state = std::move(full.state);
  } else if (store.failed(key)) {
    say(x.line, tag + ": skipped (its training diverged in an earlier run; see the report)");
    return hand;
  } else {
    hand.model = make_model(p.spec, x.config.seeds.train);
    TrainReport rep;
    try {
      rep = train(hand.model, x.train_data, train_config(x.config, x.backend),
                  [&](const TrainProgress& pr) {
                    say(x.update,
                        tag + ": epoch " + std::to_string(pr.epoch) + "/" +
                            std::to_string(pr.epochs) + " step " + std::to_string(pr.step) + "/" +
                            std::to_string(pr.steps_per_epoch) + " loss " + fmt("%.4f", pr.loss));
                  });
    } catch (const Error& e) {
      // A diverging model (NaN loss) is recorded and skipped; the run goes on with the rest.
      store.put_failed(key, p, e.what());
      say(x.line, tag + ": training failed, skipped: " + e.what());
      n.failed++;
      return hand;
    }
    RunRow row;
    row.key = key;
    row.data = x.config.dataset;
    row.recipe_json = x.plan.recipe_json;
    row.seed = x.config.seeds.train;
    row.test_accuracy = rep.test_accuracy;
    row.val_accuracy = rep.val_accuracy;
    row.train_seconds = rep.train_seconds;
    json hist = json::array();
    for (const auto& e : rep.epochs)
      hist.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"seconds", e.seconds}});
    row.record_json = json({{"history", hist}}).dump();
    row.params = hand.model.params;
    row.state = hand.model.state;
    hand.run_id = store.put_run(std::move(row), p);
    n.trained++;
    say(x.line, tag + ": trained, test accuracy " + fmt("%.2f%%", rep.test_accuracy * 100) + ", " +
                    fmt("%.1fs", since(t)));
  }
  hand.sweep = true;
  n.train_seconds += since(t);
  return hand;
}

// Evaluates the formats of the plan not yet in the store, then records the finished sweep.
void sweep_unit(const ItemContext& x, const std::string& tag, const InHand& hand, UnitStore& store,
                ItemCounts& n) {
  const auto t = Clock::now();
  const Plan& plan = x.plan;
  std::set<std::pair<int, int>> have;
  for (const auto& a : store.accuracies(hand.run_id, plan.eval_key)) have.insert({a.w, a.t});
  std::vector<quant::FloatFormat> todo;
  for (const auto f : plan.formats)
    if (!have.count({f.w, f.t})) todo.push_back(f);
  quant::SweepOptions so;
  so.formats = todo.empty() ? std::vector<quant::FloatFormat>{quant::FloatFormat{8, 23}} : todo;
  so.backend = x.backend;
  so.tolerance = x.config.tolerance;
  so.progress = [&](const quant::SweepProgress& pr) {
    if (!pr.row) return;
    store.put_accuracy({hand.run_id, plan.eval_key, pr.row->format.w, pr.row->format.t,
                        pr.row->accuracy, pr.row->weight_bytes, x.eval_set.size(),
                        pr.row->seconds});
    n.formats++;
    say(x.update, tag + ": sweep " + std::to_string(pr.done) + "/" + std::to_string(pr.total));
  };
  const quant::SweepResult sr = quant::sweep(hand.model, x.eval_set, so);
  std::vector<quant::SweepRow> rows;
  for (const auto& a : store.accuracies(hand.run_id, plan.eval_key)) {
    quant::SweepRow row;
    row.format = {a.w, a.t};
    row.bits = 1 + a.w + a.t;
    row.accuracy = a.accuracy;
    row.weight_bytes = a.weight_bytes;
    rows.push_back(row);
  }
  const int best = quant::best_format(rows, sr.float32_accuracy, x.config.tolerance);
  store.put_sweep({hand.run_id, plan.eval_key, sr.float32_accuracy, sr.images, sr.inference_params,
                   best < 0 ? 0 : rows[best].format.w, best < 0 ? 0 : rows[best].format.t,
                   x.config.tolerance, sr.seconds});
  n.sweeps++;
  n.sweep_seconds += since(t);
  say(x.line, tag + ": swept " + std::to_string(todo.size()) + " formats, float32 " +
                  fmt("%.2f%%", sr.float32_accuracy * 100) +
                  (best < 0 ? std::string(", no format within tolerance")
                            : ", best " + quant::format_label(rows[best].format)) +
                  ", " + fmt("%.1fs", since(t)));
}

}  // namespace

std::optional<RunRow> StoreUnits::run(const std::string& key, bool with_weights) {
  auto r = s_.run_by_key(key, false);
  if (r && with_weights) return s_.run(r->id, true);
  return r;
}

bool StoreUnits::failed(const std::string& key) {
  return s_.artifact("failed-run", key).has_value();
}

bool StoreUnits::swept(int64_t run_id, const std::string& eval_key) {
  return s_.sweep(run_id, eval_key).has_value();
}

std::vector<AccuracyRow> StoreUnits::accuracies(int64_t run_id, const std::string& eval_key) {
  return s_.accuracies(run_id, eval_key);
}

int64_t StoreUnits::put_run(RunRow row, const PlanModel& model) {
  row.model_id = s_.put_model(model_row(model));
  return s_.put_run(row);
}

void StoreUnits::put_failed(const std::string& key, const PlanModel& model,
                            const std::string& error) {
  const int64_t id = s_.put_model(model_row(model));
  s_.put_artifact("failed-run", key,
                  json({{"model_id", id}, {"name", model.spec.name}, {"error", error}}).dump());
}

void StoreUnits::put_accuracy(const AccuracyRow& row) {
  s_.put_accuracy(row);
}

void StoreUnits::put_sweep(const SweepRow& row) {
  s_.put_sweep(row);
}

ItemCounts run_item(const ItemContext& x, int item, UnitStore& store) {
  const PlanModel& p = x.plan.models[size_t(x.plan.candidates[size_t(item)])];
  const std::string tag = item_tag(x.plan, item);
  ItemCounts n;
  const InHand hand = train_unit(x, p, item_key(x.plan, item), tag, store, n);
  if (hand.sweep && !(x.stopping && x.stopping())) sweep_unit(x, tag, hand, store, n);
  return n;
}

Dataset training_subset(const Dataset& data, int64_t n) {
  if (n <= 0 || n >= data.train_size()) return data;
  const auto idx = balanced_subset(data.train_labels, n, data.classes);
  Dataset d = data;
  const int64_t per = data.shape.size();
  d.train_images.resize(size_t(idx.size() * per));
  d.train_labels.resize(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    std::copy_n(data.train_images.begin() + int64_t(idx[i]) * per, per,
                d.train_images.begin() + int64_t(i) * per);
    d.train_labels[i] = data.train_labels[idx[i]];
  }
  return d;  // mean and stddev stay those of the whole split: the same normalisation throughout
}

EvalSet run_eval_set(const RunConfig& c, const Dataset& data) {
  std::vector<int32_t> eval_idx;
  if (c.eval.images > 0 && c.eval.images < data.test_size())
    eval_idx = balanced_subset(data.test_labels, c.eval.images, data.classes);
  return make_eval_set(data, true, eval_idx);
}

std::string item_tag(const Plan& plan, int item) {
  return "[" + std::to_string(item + 1) + "/" + std::to_string(item_count(plan)) + "] " +
         plan.models[size_t(plan.candidates[size_t(item)])].spec.name;
}

}  // namespace iotnas::apps
