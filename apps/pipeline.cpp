#include "apps/pipeline.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/plan.hpp"
#include "apps/report.hpp"
#include "apps/store/store.hpp"
#include "calib/calibrate.hpp"
#include "engine/data.hpp"
#include "engine/model.hpp"
#include "engine/reference_models.hpp"
#include "engine/trainer.hpp"
#include "kernels/base/error.hpp"
#include "quant/sweep.hpp"
#include "search/front.hpp"
#include "search/law.hpp"
#include "search/select.hpp"
#include "search/windows.hpp"

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

// The training split reduced to a class-balanced subset of n images (n <= 0: unchanged).
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

// What the stages share while one run is built and executed.
struct Loop {
  Loop(const RunConfig& config, const std::string& run_dir, const RunHooks& run_hooks,
       BackendKind kind)
      : c(config), dir(run_dir), hooks(run_hooks), backend(kind), store(Store::open(run_dir)) {}

  const RunConfig& c;
  const std::string& dir;
  const RunHooks& hooks;
  BackendKind backend;
  Store store;
  RunSummary sum;
  Dataset data, train_data;
  std::vector<search::SpaceSearch> searches;
  // Spec JSON of every model selected per window or measured for the calibration: neither is
  // chosen twice, and a reference equal to one of them is left out.
  std::set<std::string> seen;
  std::string device;  // where latencies come from ("" when none)
  // Predicted float32 latency of a model on the device (set when a latency model is at hand),
  // and the latency model's name, as the store's "source" of predictions.
  std::function<double(const search::Pick&)> predict;
  std::string predictor_name;
  EvalSet eval_set;

  void line(const std::string& s) const {
    if (hooks.line) hooks.line(s);
  }
  void update(const std::string& s) const {
    if (hooks.update) hooks.update(s);
  }
  bool stopping() const { return hooks.stop && hooks.stop->load(); }
};

// The model and training run in hand between a candidate's train unit and its sweep unit.
struct InHand {
  Model model;
  int64_t run_id = 0;
  bool sweep = false;  // trained or loaded, and its sweep is not finished
};

void load_stage(Loop& r) {
  const auto t = Clock::now();
  r.line("loading " + r.c.dataset + " ...");
  r.data = load_dataset(r.c.dataset);
  r.train_data = training_subset(r.data, r.c.training.train_images);
  r.sum.seconds.load = since(t);
}

// The law sets of one space's search, one row per window.
void store_laws(Loop& r, const search::SpaceSearch& s, search::Metric metric, const json& ga) {
  const RunConfig& c = r.c;
  r.store.transaction([&] {
    for (const auto& w : s.windows) {
      LawsRow row;
      row.key = unit_key({"laws", s.space, c.search.metric, fmt("%.17g", w.lo), fmt("%.17g", w.hi),
                          ga.dump(), std::to_string(c.seeds.search), to_string(r.data.shape),
                          std::to_string(r.data.classes)});
      row.space = s.space;
      row.metric = c.search.metric;
      row.window_lo = w.lo;
      row.window_hi = w.hi;
      row.coverage = search::coverage_name(w.coverage);
      if (w.coverage != search::Coverage::unreachable) {
        search::LawSet set;
        set.space = s.space;
        set.metric = metric;
        set.window_lo = w.lo;
        set.window_hi = w.hi;
        set.input = r.data.shape;
        set.classes = r.data.classes;
        set.seed = c.seeds.search;
        set.laws = w.ga.laws;
        row.laws_json = search::laws_to_json(set);
      }
      row.in_window = w.in_window;
      row.seconds = w.seconds;
      r.store.put_laws(row);
    }
  });
}

void search_stage(Loop& r) {
  const auto t = Clock::now();
  const RunConfig& c = r.c;
  const search::Metric metric = search::parse_metric(c.search.metric);
  for (const auto& name : c.spaces) {
    const search::SearchConfig sc =
        search::search_config(c.search, r.data.shape, r.data.classes, c.seeds.search);
    r.update("search: " + name + " ...");
    r.searches.push_back(search::search_space(search::find_space(name), sc));
    const json ga = {{"n_init", sc.ga.n_init},       {"n_steps", sc.ga.n_steps},
                     {"n_eval", sc.ga.n_eval},       {"clusters", sc.ga.clusters},
                     {"n_rescore", sc.ga.n_rescore}, {"n_val", sc.n_val}};
    store_laws(r, r.searches.back(), metric, ga);
    const auto st = search::search_statistics(r.searches.back());
    r.store.put_artifact("search", name,
                         json({{"samples", st.count},
                               {"log10_mean", st.mean},
                               {"log10_stddev", st.stddev},
                               {"log10_min", st.min},
                               {"log10_max", st.max},
                               {"per_decade", st.per_decade}})
                             .dump());
  }
  r.sum.seconds.search = since(t);
  r.line("search: " + std::to_string(c.spaces.size()) + " spaces, " + fmt("%.1fs", since(t)));
}

// The Pareto wave, by analytics only (never by accuracy).
void select_stage(Loop& r, Plan& plan) {
  const auto t = Clock::now();
  const RunConfig& c = r.c;
  auto picks = search::select_per_window(r.searches, search::parse_metric(c.search.metric),
                                         c.candidates, r.data.shape, r.data.classes, r.seen);
  if (picks.empty())
    fail("no candidate models: no search window produced a model under ", c.candidates.max_flops,
         " FLOPs; widen the grid or raise candidates.max_flops");
  for (auto& p : picks) plan.candidates.push_back(add_model(plan, std::move(p)));
  r.store.transaction([&] {
    for (int i : plan.candidates)
      plan.models[i].model_id = r.store.put_model(model_row(plan.models[i]));
  });
  r.sum.candidates = int(plan.candidates.size());
  r.sum.seconds.select = since(t);
  r.line("selected " + std::to_string(plan.candidates.size()) + " candidate models");
}

// Latencies from a device profile: its measurements and its fitted model's predictions.
void use_profile(Loop& r, const Plan& plan) {
  const std::string& path = r.c.calibration.profile;
  const ProfileLatencies pl = profile_latencies(path);
  r.device = pl.device;
  r.predictor_name = path;
  r.predict = [pl](const search::Pick& p) { return pl.predicted(model_row(p)); };
  r.store.transaction([&] {
    for (int i : plan.candidates) {
      const int64_t id = plan.models[i].model_id;
      const auto m = *r.store.model(id);
      const double meas = pl.measured(m), pred = pl.predicted(m);
      if (!std::isnan(meas))
        r.store.put_latency({id, r.device, "measured", meas, meas, meas, meas, 0, path});
      if (!std::isnan(pred))
        r.store.put_latency({id, r.device, "predicted", pred, 0, 0, 0, 0, path});
    }
  });
}

// Measures the candidates and in-window samples here (calibration.models in all), fits the
// latency model and stores its predictions for the candidates.
void measure_here(Loop& r, Plan& plan) {
  const RunConfig& c = r.c;
  r.device = "this-machine";
  std::vector<search::Pick> candidates;
  for (int i : plan.candidates) candidates.push_back(plan.models[i]);
  const auto chosen =
      search::select_for_calibration(candidates, r.searches, c.calibration.models,
                                     c.candidates.max_flops, r.data.shape, r.data.classes, r.seen);
  std::vector<int> measured(plan.candidates.begin(),
                            plan.candidates.begin() + std::min(candidates.size(), chosen.size()));
  for (size_t j = measured.size(); j < chosen.size(); ++j)
    measured.push_back(add_model(plan, chosen[j]));
  plan_measurements(plan, measured);
  std::vector<calib::CalibrationModel> models;
  for (int i : measured) models.push_back({plan.models[i].spec, plan.models[i].space});
  calib::CalibrationHooks h;
  h.known = [&](size_t j) -> std::optional<double> {
    PlanModel& p = plan.models[measured[j]];
    if (p.model_id == 0) p.model_id = r.store.put_model(model_row(p));
    const auto have = r.store.latency(p.model_id, r.device, "measured");
    return have ? std::optional<double>(have->latency_ms) : std::nullopt;
  };
  h.measuring = [&](size_t j) { r.update("calibrate: " + plan.models[measured[j]].spec.name); };
  h.measured = [&](size_t j, const calib::Measurement& m) {
    r.store.put_latency({plan.models[measured[j]].model_id, r.device, "measured", m.median_ms,
                         m.mean_ms, m.median_ms, m.min_ms, m.repeats, ""});
  };
  h.stop = r.hooks.stop;
  const calib::Calibration cal =
      calib::calibrate(models, calib::measure_config(c.calibration, r.backend, c.seeds.calibrate),
                       c.calibration.rounds, h);
  r.sum.calibration_measured += cal.measured;
  if (!cal.model) return;
  const calib::LatencyModel model = *cal.model;
  r.store.put_artifact("calibration", r.device, calib::latency_model_to_json(model).dump());
  r.predictor_name = calib::model_kind_name(model.kind);
  r.predict = [model](const search::Pick& p) {
    return calib::predict_ms(model, calib::model_features(p.spec, p.space));
  };
  r.store.transaction([&] {
    for (int i : plan.candidates) {
      const double pred = r.predict(plan.models[i]);
      if (!std::isnan(pred))  // NaN: no prediction
        r.store.put_latency(
            {plan.models[i].model_id, r.device, "predicted", pred, 0, 0, 0, 0, r.predictor_name});
    }
  });
}

void calibrate_stage(Loop& r, Plan& plan) {
  const auto t = Clock::now();
  if (!r.c.calibration.profile.empty()) {
    use_profile(r, plan);
  } else if (r.c.calibration.models > 0) {
    measure_here(r, plan);
  }
  if (!r.device.empty()) r.store.set_meta("device", r.device);
  r.sum.seconds.calibrate = since(t);
  r.line("calibration: " + std::to_string(r.sum.calibration_measured) + " measured, " +
         fmt("%.1fs", since(t)));
}

// The models chosen for the constraints (docs/run.md "Selection"), then the references.
void select_more_stage(Loop& r, Plan& plan) {
  const auto t = Clock::now();
  const RunConfig& c = r.c;
  std::vector<search::Pick> extra;
  if (c.candidates.per_constraint > 0) {
    std::set<std::string> picked;
    for (int i : plan.candidates) picked.insert(plan.models[i].spec_json);
    for (const Constraint& k : c.constraints) {
      auto s = search::select_for_constraint(r.searches, k.max_weight_bytes, k.max_latency_ms,
                                             c.candidates, r.data.shape, r.data.classes, picked,
                                             r.predict);
      r.line(
          "constraint " + k.name + ": " + std::to_string(s.chosen) + " chosen of " +
          std::to_string(s.fitting) + " samples that fit it, " + std::to_string(s.added.size()) +
          " not yet candidates" +
          (k.max_latency_ms && !s.latency_judged ? " (latency not judged: no latency model)" : ""));
      for (auto& p : s.added) extra.push_back(std::move(p));
    }
  }
  for (const auto& ref : c.candidates.references) {
    search::Pick p;
    p.space = kReferenceSpace;
    p.spec = resolve_model(ref, r.data.shape, r.data.classes);
    p.spec_json = spec_to_json(p.spec);
    if (!r.seen.insert(p.spec_json).second) continue;
    p.analytics = analyze(p.spec);
    extra.push_back(std::move(p));
  }
  const size_t first = plan.models.size();
  for (auto& p : extra) plan.candidates.push_back(add_model(plan, std::move(p)));
  r.store.transaction([&] {
    for (size_t i = first; i < plan.models.size(); ++i) {
      PlanModel& p = plan.models[i];
      p.model_id = r.store.put_model(model_row(p));
      const double pred = r.predict ? r.predict(p) : NAN;
      if (!std::isnan(pred))
        r.store.put_latency(
            {p.model_id, r.device, "predicted", pred, 0, 0, 0, 0, r.predictor_name});
    }
  });
  r.sum.candidates = int(plan.candidates.size());
  r.sum.seconds.select += since(t);
}

// The recipe, formats and evaluation set every candidate shares; a train and a sweep unit each.
void plan_stage(Loop& r, Plan& plan) {
  const RunConfig& c = r.c;
  plan.recipe_json = recipe_json(c).dump();
  plan.formats = c.format_list();
  std::vector<int32_t> eval_idx;
  if (c.eval.images > 0 && c.eval.images < r.data.test_size())
    eval_idx = balanced_subset(r.data.test_labels, c.eval.images, r.data.classes);
  r.eval_set = make_eval_set(r.data, true, eval_idx);
  plan.eval_key =
      unit_key({"eval", c.dataset, "test", std::to_string(r.eval_set.size()), "balanced-first"});
  plan_runs(plan, c.dataset, c.seeds.train);
}

TrainConfig train_config(const RunConfig& c, BackendKind backend) {
  TrainConfig tc;
  apply_recipe(c.training, tc);
  tc.seed = c.seeds.train;
  tc.backend = backend;
  tc.eval_each_epoch = false;
  return tc;
}

// Trains a candidate, or finds its run in the store (then loads its weights unless its sweep is
// finished too); a diverging model is recorded as a failed run and skipped.
void train_unit(Loop& r, const Plan& plan, const PlanUnit& u, const std::string& tag,
                InHand& hand) {
  const PlanModel& p = plan.models[size_t(u.model)];
  const auto t = Clock::now();
  hand = InHand{};
  if (auto done = r.store.run_by_key(u.key, false)) {
    hand.run_id = done->id;
    r.sum.reused++;
    if (r.store.sweep(hand.run_id, plan.eval_key)) return;
    RunRow full = *r.store.run(hand.run_id, true);
    hand.model = make_model(p.spec, r.c.seeds.train);
    hand.model.params = std::move(full.params);
    hand.model.state = std::move(full.state);
  } else if (r.store.artifact("failed-run", u.key)) {
    r.line(tag + ": skipped (its training diverged in an earlier run; see the report)");
    return;
  } else {
    hand.model = make_model(p.spec, r.c.seeds.train);
    TrainReport rep;
    try {
      rep = train(hand.model, r.train_data, train_config(r.c, r.backend),
                  [&](const TrainProgress& pr) {
                    r.update(tag + ": epoch " + std::to_string(pr.epoch) + "/" +
                             std::to_string(pr.epochs) + " step " + std::to_string(pr.step) + "/" +
                             std::to_string(pr.steps_per_epoch) + " loss " + fmt("%.4f", pr.loss));
                  });
    } catch (const Error& e) {
      // A diverging model (NaN loss) is recorded and skipped; the run goes on with the rest.
      r.store.put_artifact(
          "failed-run", u.key,
          json({{"model_id", p.model_id}, {"name", p.spec.name}, {"error", e.what()}}).dump());
      r.line(tag + ": training failed, skipped: " + e.what());
      r.sum.failed++;
      return;
    }
    RunRow row;
    row.key = u.key;
    row.model_id = p.model_id;
    row.data = r.c.dataset;
    row.recipe_json = plan.recipe_json;
    row.seed = r.c.seeds.train;
    row.test_accuracy = rep.test_accuracy;
    row.val_accuracy = rep.val_accuracy;
    row.train_seconds = rep.train_seconds;
    json hist = json::array();
    for (const auto& e : rep.epochs)
      hist.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"seconds", e.seconds}});
    row.record_json = json({{"history", hist}}).dump();
    row.params = hand.model.params;
    row.state = hand.model.state;
    hand.run_id = r.store.put_run(row);
    r.sum.trained++;
    r.line(tag + ": trained, test accuracy " + fmt("%.2f%%", rep.test_accuracy * 100) + ", " +
           fmt("%.1fs", since(t)));
  }
  hand.sweep = true;
  r.sum.seconds.train += since(t);
}

// Evaluates the formats of the plan not yet in the store, then records the finished sweep.
void sweep_unit(Loop& r, const Plan& plan, const std::string& tag, const InHand& hand) {
  const auto t = Clock::now();
  std::vector<quant::FloatFormat> todo;
  for (const auto f : plan.formats)
    if (!r.store.has_accuracy(hand.run_id, plan.eval_key, f.w, f.t)) todo.push_back(f);
  quant::SweepOptions so;
  so.formats = todo.empty() ? std::vector<quant::FloatFormat>{quant::FloatFormat{8, 23}} : todo;
  so.backend = r.backend;
  so.tolerance = r.c.tolerance;
  so.progress = [&](const quant::SweepProgress& pr) {
    if (!pr.row) return;
    r.store.put_accuracy({hand.run_id, plan.eval_key, pr.row->format.w, pr.row->format.t,
                          pr.row->accuracy, pr.row->weight_bytes, r.eval_set.size(),
                          pr.row->seconds});
    r.sum.formats_evaluated++;
    r.update(tag + ": sweep " + std::to_string(pr.done) + "/" + std::to_string(pr.total));
  };
  const quant::SweepResult sr = quant::sweep(hand.model, r.eval_set, so);
  std::vector<quant::SweepRow> rows;
  for (const auto& a : r.store.accuracies(hand.run_id, plan.eval_key)) {
    quant::SweepRow row;
    row.format = {a.w, a.t};
    row.bits = 1 + a.w + a.t;
    row.accuracy = a.accuracy;
    row.weight_bytes = a.weight_bytes;
    rows.push_back(row);
  }
  const int best = quant::best_format(rows, sr.float32_accuracy, r.c.tolerance);
  r.store.put_sweep({hand.run_id, plan.eval_key, sr.float32_accuracy, sr.images,
                     sr.inference_params, best < 0 ? 0 : rows[best].format.w,
                     best < 0 ? 0 : rows[best].format.t, r.c.tolerance, sr.seconds});
  r.sum.sweeps_done++;
  r.sum.seconds.sweep += since(t);
  r.line(tag + ": swept " + std::to_string(todo.size()) + " formats, float32 " +
         fmt("%.2f%%", sr.float32_accuracy * 100) +
         (best < 0 ? std::string(", no format within tolerance")
                   : ", best " + quant::format_label(rows[best].format)) +
         ", " + fmt("%.1fs", since(t)));
}

// The train and sweep units in plan order, one at a time, until a stop is requested.
void execute_stage(Loop& r, const Plan& plan) {
  InHand hand;
  std::string tag;
  int n = 0;
  for (const PlanUnit& u : plan.units) {
    if (u.kind == PlanUnit::Kind::measure) continue;  // run by the calibrate stage
    if (r.stopping()) break;
    if (u.kind == PlanUnit::Kind::train) {
      tag = "[" + std::to_string(++n) + "/" + std::to_string(plan.candidates.size()) + "] " +
            plan.models[size_t(u.model)].spec.name;
      train_unit(r, plan, u, tag, hand);
    } else if (hand.sweep) {
      sweep_unit(r, plan, tag, hand);
    }
  }
}

// Fronts, the constraint answers and the report.
void answer_stage(Loop& r) {
  const auto t = Clock::now();
  if (r.store.count("accuracies") == 0)
    fail("no model could be trained and evaluated (", r.sum.failed,
         " diverged; see the report's failed runs): lower training.lr or change the recipe");
  const Results res = load_results(r.store, r.device);
  store_fronts(r.store, res, compute_fronts(res));
  for (const Constraint& k : r.c.constraints) {
    search::Limits lim{k.max_weight_bytes, k.max_latency_ms};
    const auto s = search::solve(res.candidates, lim);
    r.line("constraint " + k.name + ": " + (s.feasible ? "" : "infeasible: ") + s.message);
  }
  write_report(r.store, r.dir);
  r.sum.seconds.answers = since(t);
}

}  // namespace

RunSummary run_pipeline(const RunConfig& c, const std::string& dir, const RunHooks& hooks) {
  const auto t0 = Clock::now();
  validate(c, "run config");
  if (c.threads > 0) omp_set_num_threads(c.threads);
  const auto backend = parse_backend(c.backend);
  // Check the store before loading anything: a store of another version is refused untouched.
  Loop r(c, dir, hooks, backend);
  r.store.put_artifact("config", "run", run_config_to_json(c).dump());
  load_stage(r);
  search_stage(r);
  Plan plan;
  select_stage(r, plan);
  calibrate_stage(r, plan);
  select_more_stage(r, plan);
  plan_stage(r, plan);
  execute_stage(r, plan);
  if (r.stopping()) {
    r.sum.stopped = true;
  } else {
    answer_stage(r);
  }
  r.sum.total_seconds = since(t0);
  return r.sum;
}

}  // namespace iotnas::apps
