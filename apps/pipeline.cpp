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
#include "apps/running.hpp"
#include "apps/shard.hpp"
#include "apps/store/store.hpp"
#include "apps/units.hpp"
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
  r.eval_set = run_eval_set(c, r.data);
  plan.eval_key =
      unit_key({"eval", c.dataset, "test", std::to_string(r.eval_set.size()), "balanced-first"});
  plan.train_images = r.train_data.train_size();
  plan.eval_images = r.eval_set.size();
  plan_runs(plan, c.dataset, c.seeds.train);
  plan.hash = plan_hash(plan, c);
  refuse_other_shards(r.dir, plan.hash);
  write_plan(r.dir, {plan, c});
}

}  // namespace

void add_counts(RunSummary& sum, const ItemCounts& n) {
  sum.trained += n.trained;
  sum.reused += n.reused;
  sum.failed += n.failed;
  sum.sweeps_done += n.sweeps;
  sum.formats_evaluated += n.formats;
  sum.seconds.train += n.train_seconds;
  sum.seconds.sweep += n.sweep_seconds;
}

void run_items(const ItemContext& x, const std::vector<int>& items, Store& store,
               const std::string& worker, RunSummary& sum) {
  StoreUnits units(store);
  for (int i : items) {
    if (x.stopping && x.stopping()) break;
    const std::string& key = item_key(x.plan, i);
    mark_running(store, key, worker);
    add_counts(sum, run_item(x, i, units));
    clear_running(store, key);
  }
}

void answer_stage(Store& store, const RunConfig& c, const std::string& dir, int failed,
                  const std::function<void(const std::string&)>& line) {
  if (store.count("accuracies") == 0)
    fail("no model could be trained and evaluated (", failed,
         " diverged; see the report's failed runs): lower training.lr or change the recipe");
  const Results res = load_results(store, "");
  store_fronts(store, res, compute_fronts(res));
  for (const Constraint& k : c.constraints) {
    search::Limits lim{k.max_weight_bytes, k.max_latency_ms};
    const auto s = search::solve(res.candidates, lim);
    if (line) line("constraint " + k.name + ": " + (s.feasible ? "" : "infeasible: ") + s.message);
  }
  write_report(store, dir);
}

RunSummary run_pipeline(const RunConfig& c, const std::string& dir, const RunHooks& hooks,
                        const RunOptions& options) {
  const auto t0 = Clock::now();
  validate(c, "run config");
  if (c.threads > 0) omp_set_num_threads(c.threads);
  const auto backend = parse_backend(c.backend);
  // Check the store before loading anything: a store of another version is refused untouched.
  Loop r(c, dir, hooks, backend);
  clear_all_running(r.store);  // this process holds the store: no other runs on it
  r.store.put_artifact("config", "run", run_config_to_json(c).dump());
  load_stage(r);
  search_stage(r);
  Plan plan;
  select_stage(r, plan);
  calibrate_stage(r, plan);
  select_more_stage(r, plan);
  plan_stage(r, plan);
  if (options.plan_only) {
    r.sum.planned = true;
    r.sum.total_seconds = since(t0);
    return r.sum;
  }
  const ItemContext x{c,          plan,       backend,      r.train_data,
                      r.eval_set, hooks.line, hooks.update, [&r] { return r.stopping(); }};
  if (options.execute) {
    options.execute(x, r.store, r.sum);
  } else {
    std::vector<int> all(size_t(item_count(plan)));
    for (size_t i = 0; i < all.size(); ++i) all[i] = int(i);
    run_items(x, all, r.store, "this process", r.sum);
  }
  if (r.stopping()) {
    r.sum.stopped = true;
  } else {
    const auto t = Clock::now();
    answer_stage(r.store, c, dir, r.sum.failed, hooks.line);
    r.sum.seconds.answers = since(t);
  }
  r.sum.total_seconds = since(t0);
  return r.sum;
}

}  // namespace iotnas::apps
