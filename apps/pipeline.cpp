#include "apps/pipeline.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/report.hpp"
#include "apps/store/store.hpp"
#include "calib/latency_model.hpp"
#include "calib/measure.hpp"
#include "engine/data.hpp"
#include "engine/model.hpp"
#include "engine/reference_models.hpp"
#include "engine/trainer.hpp"
#include "kernels/base/error.hpp"
#include "quant/sweep.hpp"
#include "search/front.hpp"
#include "search/law.hpp"
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

// A model chosen for training.
struct Pick {
  std::string space;
  std::vector<int> vars;
  ModelSpec spec;
  std::string spec_json;
  Analytics analytics;
  int64_t model_id = 0;
};

// The store's row of a picked model.
ModelRow model_row(const Pick& p) {
  ModelRow m;
  m.space = p.space;
  m.name = p.spec.name;
  m.vars_json = json(p.vars).dump();
  m.spec_json = p.spec_json;
  m.analytics = p.analytics;
  return m;
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

}  // namespace

// The models chosen for the constraints (candidates.per_constraint each), never by accuracy:
// among every in-window sample under the FLOP cap, those whose weights fit the byte limit at 8
// to 32 bits (inference parameters in [B/4, B]) and whose predicted latency meets the latency
// limit, spread evenly by size. Without a latency model the latency limit cannot be judged here
// and is left to the answers.
namespace {

std::vector<Pick> select_for_constraints(const RunConfig& c,
                                         const std::vector<search::SpaceSearch>& searches,
                                         const Dataset& data, std::set<std::string> picked,
                                         const std::function<double(const Pick&)>& predict,
                                         const std::function<void(const std::string&)>& line) {
  std::vector<Pick> out;
  if (c.candidates.per_constraint <= 0) return out;
  for (const Constraint& k : c.constraints) {
    const double lo = double(k.max_weight_bytes) / 4, hi = double(k.max_weight_bytes);
    std::vector<const search::Sample*> pool;
    std::vector<std::string> pool_space;
    std::set<std::pair<std::string, std::vector<int>>> dup;
    for (const auto& s : searches)
      for (const auto& w : s.windows)
        for (const auto& smp : w.samples) {
          const double n = double(smp.analytics.inference_params);
          if (n < lo || n > hi || double(smp.analytics.flops) > c.candidates.max_flops) continue;
          if (!dup.insert({s.space, smp.vars}).second) continue;
          pool.push_back(&smp);
          pool_space.push_back(s.space);
        }
    std::vector<Pick> ok;
    bool judged_latency = false;
    for (size_t i = 0; i < pool.size(); ++i) {
      Pick p;
      p.space = pool_space[i];
      p.vars = pool[i]->vars;
      p.spec = search::build_spec(search::find_space(p.space), p.vars, data.shape, data.classes);
      p.analytics = pool[i]->analytics;
      if (k.max_latency_ms && predict) {
        judged_latency = true;
        const double ms = predict(p);
        if (!(ms <= *k.max_latency_ms)) continue;
      }
      ok.push_back(std::move(p));
    }
    std::sort(ok.begin(), ok.end(), [](const Pick& a, const Pick& b) {
      return a.analytics.inference_params != b.analytics.inference_params
                 ? a.analytics.inference_params < b.analytics.inference_params
                 : a.spec.name < b.spec.name;
    });
    const int want = std::min<int>(c.candidates.per_constraint, int(ok.size()));
    int added = 0;
    for (int j = 0; j < want; ++j) {
      Pick& p = ok[std::min(size_t((j + 0.5) * double(ok.size()) / want), ok.size() - 1)];
      if (p.spec_json.empty()) p.spec_json = spec_to_json(p.spec);
      if (!picked.insert(p.spec_json).second) continue;
      out.push_back(p);
      added++;
    }
    line("constraint " + k.name + ": " + std::to_string(want) + " chosen of " +
         std::to_string(ok.size()) + " samples that fit it, " + std::to_string(added) +
         " not yet candidates" +
         (k.max_latency_ms && !judged_latency ? " (latency not judged: no latency model)" : ""));
  }
  return out;
}

}  // namespace

RunSummary run_pipeline(const RunConfig& c, const std::string& dir, const RunHooks& hooks) {
  const auto t0 = Clock::now();
  const auto line = [&](const std::string& s) {
    if (hooks.line) hooks.line(s);
  };
  const auto update = [&](const std::string& s) {
    if (hooks.update) hooks.update(s);
  };
  const auto stopping = [&] { return hooks.stop && hooks.stop->load(); };
  RunSummary sum;
  validate(c, "run config");
  if (c.threads > 0) omp_set_num_threads(c.threads);
  const auto backend = kernels::parse_backend(c.backend);

  // Check the store before loading anything: a store of another version is refused untouched.
  Store store = Store::open(dir);
  store.put_artifact("config", "run", run_config_to_json(c).dump());

  // Load -----------------------------------------------------------------------------------
  auto t = Clock::now();
  line("loading " + c.dataset + " ...");
  const Dataset data = load_dataset(c.dataset);
  const Dataset train_data = training_subset(data, c.training.train_images);
  sum.seconds.load = since(t);

  // Search ---------------------------------------------------------------------------------
  t = Clock::now();
  const search::Metric metric = search::parse_metric(c.search.metric);
  std::vector<search::SpaceSearch> searches;
  for (const auto& name : c.spaces) {
    const search::Space& space = search::find_space(name);
    search::SearchConfig sc;
    sc.metric = metric;
    sc.grid = search::grid_125(c.search.grid_from, c.search.grid_to);
    sc.ga.n_init = c.search.n_init;
    sc.ga.n_steps = c.search.n_steps;
    sc.ga.n_eval = c.search.n_eval;
    sc.ga.clusters = c.search.clusters;
    sc.ga.n_rescore = c.search.n_rescore;
    sc.n_val = c.search.n_val;
    sc.input = data.shape;
    sc.classes = data.classes;
    sc.seed = c.seeds.search;
    update("search: " + name + " ...");
    searches.push_back(search::search_space(space, sc));
    const json ga = {{"n_init", sc.ga.n_init},       {"n_steps", sc.ga.n_steps},
                     {"n_eval", sc.ga.n_eval},       {"clusters", sc.ga.clusters},
                     {"n_rescore", sc.ga.n_rescore}, {"n_val", sc.n_val}};
    store.transaction([&] {
      for (const auto& w : searches.back().windows) {
        LawsRow row;
        row.key = unit_key({"laws", name, c.search.metric, fmt("%.17g", w.lo), fmt("%.17g", w.hi),
                            ga.dump(), std::to_string(c.seeds.search), to_string(data.shape),
                            std::to_string(data.classes)});
        row.space = name;
        row.metric = c.search.metric;
        row.window_lo = w.lo;
        row.window_hi = w.hi;
        row.coverage = search::coverage_name(w.coverage);
        if (w.coverage != search::Coverage::unreachable) {
          search::LawSet set;
          set.space = name;
          set.metric = metric;
          set.window_lo = w.lo;
          set.window_hi = w.hi;
          set.input = data.shape;
          set.classes = data.classes;
          set.seed = c.seeds.search;
          set.laws = w.ga.laws;
          row.laws_json = search::laws_to_json(set);
        }
        row.in_window = w.in_window;
        row.seconds = w.seconds;
        store.put_laws(row);
      }
    });
    const auto st = search::search_statistics(searches.back());
    store.put_artifact("search", name,
                       json({{"samples", st.count},
                             {"log10_mean", st.mean},
                             {"log10_stddev", st.stddev},
                             {"log10_min", st.min},
                             {"log10_max", st.max},
                             {"per_decade", st.per_decade}})
                           .dump());
  }
  sum.seconds.search = since(t);
  line("search: " + std::to_string(c.spaces.size()) + " spaces, " + fmt("%.1fs", since(t)));

  // Select (by analytics only, never by accuracy) -------------------------------------------
  t = Clock::now();
  std::vector<Pick> picks;
  std::set<std::string> seen;
  size_t n_windows = 0;
  for (const auto& s : searches) n_windows = std::max(n_windows, s.windows.size());
  // Windows outer, spaces inner: a cap on the model count keeps the spread over sizes.
  for (size_t wi = 0; wi < n_windows; ++wi) {
    for (size_t si = 0; si < searches.size(); ++si) {
      if (wi >= searches[si].windows.size()) continue;
      const auto& w = searches[si].windows[wi];
      if (w.coverage == search::Coverage::unreachable) continue;
      std::vector<const search::Sample*> ok;
      for (const auto& smp : w.samples) {
        const double m = search::metric_value(smp.analytics, metric);
        if (m >= w.lo && m <= w.hi && double(smp.analytics.flops) <= c.candidates.max_flops)
          ok.push_back(&smp);
      }
      std::sort(ok.begin(), ok.end(), [&](const auto* a, const auto* b) {
        const double ma = search::metric_value(a->analytics, metric);
        const double mb = search::metric_value(b->analytics, metric);
        return ma != mb ? ma < mb : a->vars < b->vars;
      });
      // per_window picks spread evenly over the window's samples by size.
      const int k = std::min<int>(c.candidates.per_window, int(ok.size()));
      for (int j = 0; j < k; ++j) {
        const size_t at = size_t((j + 0.5) * double(ok.size()) / k);
        const auto* smp = ok[std::min(at, ok.size() - 1)];
        const search::Space& space = search::find_space(searches[si].space);
        Pick p;
        p.space = space.name;
        p.vars = smp->vars;
        p.spec = search::build_spec(space, p.vars, data.shape, data.classes);
        p.spec_json = spec_to_json(p.spec);
        if (!seen.insert(p.spec_json).second) continue;
        p.analytics = analyze(p.spec);
        picks.push_back(std::move(p));
      }
    }
  }
  if (c.candidates.max_models > 0 && int(picks.size()) > c.candidates.max_models)
    picks.resize(size_t(c.candidates.max_models));
  if (picks.empty())
    fail("no candidate models: no search window produced a model under ", c.candidates.max_flops,
         " FLOPs; widen the grid or raise candidates.max_flops");
  store.transaction([&] {
    for (auto& p : picks) p.model_id = store.put_model(model_row(p));
  });
  sum.candidates = int(picks.size());
  sum.seconds.select = since(t);
  line("selected " + std::to_string(picks.size()) + " candidate models");

  // Calibrate ------------------------------------------------------------------------------
  t = Clock::now();
  std::string device;
  // Predicted float32 latency of a model on the device (set when a latency model is at hand).
  std::function<double(const Pick&)> predict_latency;
  std::string predictor_name;  // the latency model's name, as the store's "source" of predictions
  if (!c.calibration.profile.empty()) {
    const ProfileLatencies pl = profile_latencies(c.calibration.profile);
    device = pl.device;
    predictor_name = c.calibration.profile;
    predict_latency = [pl](const Pick& p) { return pl.predicted(model_row(p)); };
    store.transaction([&] {
      for (const auto& p : picks) {
        const auto m = *store.model(p.model_id);
        const double meas = pl.measured(m), pred = pl.predicted(m);
        if (!std::isnan(meas))
          store.put_latency(
              {p.model_id, device, "measured", meas, meas, meas, meas, 0, c.calibration.profile});
        if (!std::isnan(pred))
          store.put_latency(
              {p.model_id, device, "predicted", pred, 0, 0, 0, 0, c.calibration.profile});
      }
    });
  } else if (c.calibration.models > 0) {
    device = "this-machine";
    calib::MeasureConfig mc;
    mc.backend = backend;
    mc.threads = c.calibration.threads;
    mc.repeats = c.calibration.repeats;
    mc.seed = c.seeds.calibrate;
    mc.layer_times = false;  // the store keeps whole-model latencies only
    mc.speed_probe = false;  // ... and no speed probes
    // The candidates first, then the other in-window samples spread over windows and spaces,
    // up to calibration.models.
    std::vector<Pick> measure(picks.begin(),
                              picks.begin() + std::min<size_t>(picks.size(), c.calibration.models));
    for (size_t j = 0; measure.size() < size_t(c.calibration.models); ++j) {
      bool any = false;
      for (const auto& s : searches) {
        for (const auto& w : s.windows) {
          if (j >= w.samples.size() || measure.size() >= size_t(c.calibration.models)) continue;
          any = true;
          const auto& smp = w.samples[j];
          if (double(smp.analytics.flops) > c.candidates.max_flops) continue;
          Pick p;
          p.space = s.space;
          p.vars = smp.vars;
          p.spec =
              search::build_spec(search::find_space(s.space), p.vars, data.shape, data.classes);
          p.spec_json = spec_to_json(p.spec);
          if (!seen.insert(p.spec_json).second) continue;
          p.analytics = smp.analytics;
          measure.push_back(std::move(p));
        }
      }
      if (!any) break;
    }
    std::vector<calib::ModelFeatures> features;
    std::vector<double> latency;
    for (auto& p : measure) {
      if (stopping()) break;
      if (p.model_id == 0) p.model_id = store.put_model(model_row(p));
      auto have = store.latency(p.model_id, device, "measured");
      if (!have) {
        update("calibrate: " + p.spec.name);
        double best = INFINITY;
        calib::Measurement kept;
        for (int r = 0; r < c.calibration.rounds; ++r) {
          const calib::Measurement m = calib::measure_latency(p.spec, mc);
          if (m.median_ms < best) {
            best = m.median_ms;
            kept = m;
          }
        }
        store.put_latency({p.model_id, device, "measured", kept.median_ms, kept.mean_ms,
                           kept.median_ms, kept.min_ms, kept.repeats, ""});
        have = store.latency(p.model_id, device, "measured");
        sum.calibration_measured++;
      }
      features.push_back(calib::model_features(p.spec, p.space));
      latency.push_back(have->latency_ms);
    }
    if (int(features.size()) >= calib::kMinFitModels) {
      // The kind with the most held-out models within +-10% (5-fold CV once there are 20), of
      // those that need no per-layer times (the store keeps whole-model latencies only).
      calib::ModelKind kind = calib::ModelKind::loglog_global;
      if (features.size() >= 20) {
        double best = -1;
        for (calib::ModelKind k : calib::kModelKinds) {
          if (calib::needs_layer_times(k)) continue;
          const auto cv = calib::cross_validate(k, features, latency, 5, c.seeds.calibrate);
          if (cv.scores.within_10pct > best) best = cv.scores.within_10pct, kind = k;
        }
      }
      const auto model = calib::fit_latency_model(kind, features, latency);
      store.put_artifact("calibration", device, calib::latency_model_to_json(model).dump());
      predictor_name = calib::model_kind_name(model.kind);
      predict_latency = [model](const Pick& p) {
        return calib::predict_ms(model, calib::model_features(p.spec, p.space));
      };
      store.transaction([&] {
        for (const auto& p : picks) {
          const double pred = calib::predict_ms(model, calib::model_features(p.spec, p.space));
          store.put_latency({p.model_id, device, "predicted", pred, 0, 0, 0, 0,
                             calib::model_kind_name(model.kind)});
        }
      });
    }
  }
  if (!device.empty()) store.set_meta("device", device);
  sum.seconds.calibrate = since(t);
  line("calibration: " + std::to_string(sum.calibration_measured) + " measured, " +
       fmt("%.1fs", since(t)));

  // Select for the constraints, then add the references ---------------------------------------
  t = Clock::now();
  std::set<std::string> picked;
  for (const auto& p : picks) picked.insert(p.spec_json);
  std::vector<Pick> extra =
      select_for_constraints(c, searches, data, picked, predict_latency, line);
  for (const auto& ref : c.candidates.references) {
    Pick p;
    p.space = kReferenceSpace;
    p.spec = resolve_model(ref, data.shape, data.classes);
    p.spec_json = spec_to_json(p.spec);
    if (!seen.insert(p.spec_json).second) continue;
    p.analytics = analyze(p.spec);
    extra.push_back(std::move(p));
  }
  store.transaction([&] {
    for (auto& p : extra) {
      p.model_id = store.put_model(model_row(p));
      const double pred = predict_latency ? predict_latency(p) : NAN;
      if (!std::isnan(pred))
        store.put_latency({p.model_id, device, "predicted", pred, 0, 0, 0, 0, predictor_name});
    }
  });
  for (auto& p : extra) picks.push_back(std::move(p));
  sum.candidates = int(picks.size());
  sum.seconds.select += since(t);

  // Train and sweep, one model at a time ----------------------------------------------------
  const json recipe = recipe_json(c);
  const std::vector<quant::FloatFormat> formats = c.format_list();
  std::vector<int32_t> eval_idx;
  if (c.eval.images > 0 && c.eval.images < data.test_size())
    eval_idx = balanced_subset(data.test_labels, c.eval.images, data.classes);
  const EvalSet eval_set = make_eval_set(data, true, eval_idx);
  const std::string eval_key =
      unit_key({"eval", c.dataset, "test", std::to_string(eval_set.size()), "balanced-first"});
  for (size_t i = 0; i < picks.size() && !stopping(); ++i) {
    const Pick& p = picks[i];
    const std::string key =
        unit_key({"run", p.spec_json, c.dataset, recipe.dump(), std::to_string(c.seeds.train)});
    const std::string tag =
        "[" + std::to_string(i + 1) + "/" + std::to_string(picks.size()) + "] " + p.spec.name;
    Model model;
    int64_t run_id = 0;
    t = Clock::now();
    if (auto done = store.run_by_key(key, false)) {
      run_id = done->id;
      sum.reused++;
      if (store.sweep(run_id, eval_key)) continue;
      RunRow full = *store.run(run_id, true);
      model = make_model(p.spec, c.seeds.train);
      model.params = std::move(full.params);
      model.state = std::move(full.state);
    } else if (store.artifact("failed-run", key)) {
      line(tag + ": skipped (its training diverged in an earlier run; see the report)");
      continue;
    } else {
      model = make_model(p.spec, c.seeds.train);
      TrainConfig tc;
      tc.epochs = c.training.epochs;
      tc.batch = c.training.batch;
      tc.seed = c.seeds.train;
      tc.optimizer.kind = c.training.optimizer;
      tc.optimizer.lr = c.training.lr;
      tc.optimizer.momentum = c.training.momentum;
      tc.optimizer.nesterov = c.training.nesterov;
      tc.optimizer.weight_decay = c.training.weight_decay;
      tc.optimizer.schedule = c.training.schedule;
      tc.optimizer.warmup_epochs = c.training.warmup_epochs;
      if (c.training.augment == "on") tc.augment = true;
      if (c.training.augment == "off") tc.augment = false;
      tc.backend = backend;
      tc.eval_each_epoch = false;
      TrainReport rep;
      try {
        rep = train(model, train_data, tc, [&](const TrainProgress& pr) {
          update(tag + ": epoch " + std::to_string(pr.epoch) + "/" + std::to_string(pr.epochs) +
                 " step " + std::to_string(pr.step) + "/" + std::to_string(pr.steps_per_epoch) +
                 " loss " + fmt("%.4f", pr.loss));
        });
      } catch (const Error& e) {
        // A diverging model (NaN loss) is recorded and skipped; the run goes on with the rest.
        store.put_artifact(
            "failed-run", key,
            json({{"model_id", p.model_id}, {"name", p.spec.name}, {"error", e.what()}}).dump());
        line(tag + ": training failed, skipped: " + e.what());
        sum.failed++;
        continue;
      }
      RunRow r;
      r.key = key;
      r.model_id = p.model_id;
      r.data = c.dataset;
      r.recipe_json = recipe.dump();
      r.seed = c.seeds.train;
      r.test_accuracy = rep.test_accuracy;
      r.val_accuracy = rep.val_accuracy;
      r.train_seconds = rep.train_seconds;
      json hist = json::array();
      for (const auto& e : rep.epochs)
        hist.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"seconds", e.seconds}});
      r.record_json = json({{"history", hist}}).dump();
      r.params = model.params;
      r.state = model.state;
      run_id = store.put_run(r);
      sum.trained++;
      line(tag + ": trained, test accuracy " + fmt("%.2f%%", rep.test_accuracy * 100) + ", " +
           fmt("%.1fs", since(t)));
    }
    sum.seconds.train += since(t);
    if (stopping()) break;

    // Sweep the formats not yet in the store.
    t = Clock::now();
    std::vector<quant::FloatFormat> todo;
    for (const auto f : formats)
      if (!store.has_accuracy(run_id, eval_key, f.w, f.t)) todo.push_back(f);
    quant::SweepOptions so;
    so.formats = todo.empty() ? std::vector<quant::FloatFormat>{quant::FloatFormat{8, 23}} : todo;
    so.backend = backend;
    so.tolerance = c.tolerance;
    so.progress = [&](const quant::SweepProgress& pr) {
      if (!pr.row) return;
      store.put_accuracy({run_id, eval_key, pr.row->format.w, pr.row->format.t, pr.row->accuracy,
                          pr.row->weight_bytes, eval_set.size(), pr.row->seconds});
      sum.formats_evaluated++;
      update(tag + ": sweep " + std::to_string(pr.done) + "/" + std::to_string(pr.total));
    };
    const quant::SweepResult sr = quant::sweep(model, eval_set, so);
    std::vector<quant::SweepRow> rows;
    for (const auto& a : store.accuracies(run_id, eval_key)) {
      quant::SweepRow row;
      row.format = {a.w, a.t};
      row.bits = 1 + a.w + a.t;
      row.accuracy = a.accuracy;
      row.weight_bytes = a.weight_bytes;
      rows.push_back(row);
    }
    const int best = quant::best_format(rows, sr.float32_accuracy, c.tolerance);
    store.put_sweep({run_id, eval_key, sr.float32_accuracy, sr.images, sr.inference_params,
                     best < 0 ? 0 : rows[best].format.w, best < 0 ? 0 : rows[best].format.t,
                     c.tolerance, sr.seconds});
    sum.sweeps_done++;
    sum.seconds.sweep += since(t);
    line(tag + ": swept " + std::to_string(todo.size()) + " formats, float32 " +
         fmt("%.2f%%", sr.float32_accuracy * 100) +
         (best < 0 ? std::string(", no format within tolerance")
                   : ", best " + quant::format_label(rows[best].format)) +
         ", " + fmt("%.1fs", since(t)));
  }
  if (stopping()) {
    sum.stopped = true;
    sum.total_seconds = since(t0);
    return sum;
  }

  // Answers --------------------------------------------------------------------------------
  t = Clock::now();
  if (store.count("accuracies") == 0)
    fail("no model could be trained and evaluated (", sum.failed,
         " diverged; see the report's failed runs): lower training.lr or change the recipe");
  const Results res = load_results(store, device);
  store_fronts(store, res, compute_fronts(res));
  for (const Constraint& k : c.constraints) {
    search::Limits lim{k.max_weight_bytes, k.max_latency_ms};
    const auto s = search::solve(res.candidates, lim);
    line("constraint " + k.name + ": " + (s.feasible ? "" : "infeasible: ") + s.message);
  }
  write_report(store, dir);
  sum.seconds.answers = since(t);
  sum.total_seconds = since(t0);
  return sum;
}

}  // namespace iotnas::apps
