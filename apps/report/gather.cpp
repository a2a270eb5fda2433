// Reading a run's store into Results: accuracies with analytics and latencies, the fronts over
// them, the reference points beside them, and their CSV.
#include <cmath>
#include <map>
#include <memory>

#include "apps/report/internal.hpp"
#include "calib/fit.hpp"
#include "calib/latency_model.hpp"
#include "calib/profile.hpp"
#include "engine/spec.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

using detail::fmt;

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

}  // namespace

ProfileLatencies profile_latencies(const std::string& path) {
  auto profile = std::make_shared<calib::Profile>(calib::load_profile(path));
  auto model = std::make_shared<calib::LatencyModel>(calib::fitted_model(*profile, path));
  ProfileLatencies p;
  p.device = profile->devices.empty() ? path : calib::device_summary(profile->devices.front());
  p.measured = [profile, ref = profile->probe_ref()](const ModelRow& m) {
    const int i = profile->find(m.name);
    return i < 0 ? NAN : profile->models[i].latency_ms(false, ref);
  };
  p.predicted = [model](const ModelRow& m) {
    try {
      const ModelSpec spec = parse_spec(m.spec_json, m.name);
      return calib::predict_ms(*model, calib::model_features(spec, m.space));
    } catch (const Error&) {
      return double(NAN);
    }
  };
  return p;
}

Results load_results(Store& store, const std::string& device, const ProfileLatencies* profile) {
  const std::vector<AccuracyRow> all = store.accuracies();
  if (all.empty())
    fail("the store ", store.path(),
         " holds no evaluated models yet; let `iotnas run` finish "
         "(or rerun it to resume)");
  std::map<std::string, int64_t> per_key;
  for (const auto& a : all) per_key[a.eval_key]++;
  Results r;
  int64_t most = -1;
  for (const auto& [k, n] : per_key)
    if (n > most) {
      most = n;
      r.eval_key = k;
    }

  std::map<int64_t, ModelRow> models;
  for (auto& m : store.models()) models[m.id] = std::move(m);
  std::map<int64_t, RunRow> runs;
  for (auto& run : store.runs(false)) runs[run.id] = std::move(run);
  std::map<int64_t, SweepRow> sweeps;
  for (auto& s : store.sweeps())
    if (s.eval_key == r.eval_key) sweeps[s.run_id] = s;

  std::map<int64_t, std::pair<double, double>> latency;  // model id -> measured, predicted
  if (profile) {
    r.device = profile->device;
    for (const auto& [id, m] : models) latency[id] = {profile->measured(m), profile->predicted(m)};
  } else {
    r.device = device;
    if (r.device.empty()) r.device = store.meta("device").value_or("");
    if (r.device.empty()) {
      const auto devices = store.devices();
      if (!devices.empty()) r.device = devices.front();
    }
    for (const auto& l : store.latencies(r.device)) {
      auto& slot = latency.try_emplace(l.model_id, NAN, NAN).first->second;
      (l.kind == "measured" ? slot.first : slot.second) = l.latency_ms;
    }
  }

  for (const auto& a : all) {
    if (a.eval_key != r.eval_key) continue;
    auto run = runs.find(a.run_id);
    IOTNAS_ASSERT(run != runs.end(), "accuracy of an unknown run");
    const ModelRow& m = models.at(run->second.model_id);
    search::Candidate c;
    c.model_id = std::to_string(m.id);
    c.space = m.space;
    c.w = a.w;
    c.t = a.t;
    c.accuracy = a.accuracy;
    c.weight_bytes = a.weight_bytes;
    CandidateInfo info;
    info.run_id = a.run_id;
    info.model_id = m.id;
    info.name = m.name;
    info.params = m.analytics.params;
    info.inference_params = m.analytics.inference_params;
    info.flops = m.analytics.flops;
    if (auto l = latency.find(m.id); l != latency.end()) {
      info.latency_ms_measured = l->second.first;
      info.latency_ms_predicted = l->second.second;
    }
    c.latency_ms =
        std::isnan(info.latency_ms_measured) ? info.latency_ms_predicted : info.latency_ms_measured;
    if (auto s = sweeps.find(a.run_id); s != sweeps.end())
      info.best_format = s->second.best_w == a.w && s->second.best_t == a.t;
    const bool reference = m.space == kReferenceSpace;
    (reference ? r.references : r.candidates).push_back(std::move(c));
    (reference ? r.reference_info : r.info).push_back(std::move(info));
  }
  return r;
}

std::vector<NamedFront> compute_fronts(const Results& r) {
  std::vector<NamedFront> out;
  const auto family = [&](const std::string& name, const std::string& title, auto keep,
                          search::Cost cost) {
    std::vector<search::Candidate> subset;
    std::vector<int> index;
    for (size_t i = 0; i < r.candidates.size(); ++i)
      if (keep(i)) {
        subset.push_back(r.candidates[i]);
        index.push_back(int(i));
      }
    NamedFront f{name, title, cost, {}};
    for (int k : search::pareto_front(subset, cost)) f.points.push_back(index[k]);
    out.push_back(std::move(f));
  };
  const auto is = [&](int w, int t) {
    return [&r, w, t](size_t i) { return r.candidates[i].w == w && r.candidates[i].t == t; };
  };
  using search::Cost;
  family("memory:float32", "weight memory - accuracy, float32 (T(8,23))", is(8, 23),
         Cost::weight_bytes);
  family("memory:half", "weight memory - accuracy, half (T(5,10))", is(5, 10), Cost::weight_bytes);
  family("memory:T(4,3)", "weight memory - accuracy, 8-bit T(4,3)", is(4, 3), Cost::weight_bytes);
  family(
      "memory:best", "weight memory - accuracy, each model's best format",
      [&](size_t i) { return r.info[i].best_format; }, Cost::weight_bytes);
  family(
      "memory:all", "weight memory - accuracy, every (model, format)", [](size_t) { return true; },
      Cost::weight_bytes);
  if (!r.device.empty())
    family("latency:" + r.device, "latency on " + r.device + " - accuracy, float32", is(8, 23),
           Cost::latency_ms);
  return out;
}

void store_fronts(Store& store, const Results& r, const std::vector<NamedFront>& fronts) {
  store.transaction([&] {
    for (const auto& f : fronts) {
      std::vector<FrontPoint> pts;
      for (int i : f.points) {
        const auto& c = r.candidates[i];
        pts.push_back({r.info[i].run_id, c.w, c.t, c.accuracy, search::cost_value(c, f.cost)});
      }
      store.replace_front(f.name, search::cost_name(f.cost), pts);
    }
  });
}

std::string fronts_csv(const Results& r, const std::vector<NamedFront>& fronts) {
  std::string out =
      "front,position,model_id,space,name,params,w,t,accuracy,weight_bytes,latency_ms\n";
  for (const auto& f : fronts) {
    for (size_t k = 0; k < f.points.size(); ++k) {
      const auto& c = r.candidates[f.points[k]];
      const auto& info = r.info[f.points[k]];
      out += csv_field(f.name) + "," + std::to_string(k) + "," + std::to_string(info.model_id) +
             "," + csv_field(c.space) + "," + csv_field(info.name) + "," +
             std::to_string(info.params) + "," + std::to_string(c.w) + "," + std::to_string(c.t) +
             "," + fmt("%.6f", c.accuracy) + "," + std::to_string(c.weight_bytes) + "," +
             (std::isnan(c.latency_ms) ? "" : fmt("%.6g", c.latency_ms)) + "\n";
    }
  }
  return out;
}

std::vector<ReferencePoint> reference_points(const Results& r, const std::string& dataset) {
  std::vector<ReferencePoint> out;
  for (size_t i = 0; i < r.references.size(); ++i) {
    const auto& c = r.references[i];
    if (c.w != 8 || c.t != 23) continue;
    ReferencePoint p;
    p.source = "this run";
    p.name = r.reference_info[i].name;
    p.params = r.reference_info[i].inference_params;
    p.weight_bytes = c.weight_bytes;
    p.accuracy = c.accuracy;
    out.push_back(p);
  }
  if (dataset == "fashion-mnist") {
    // The rows of the benchmark table in the dataset's README that state a parameter count
    // ("<100K" is taken as 100,000; "~113K" as 113,000).
    struct Row {
      const char* name;
      int64_t params;
      double accuracy;
    };
    static const Row rows[] = {
        {"2 Conv <100K parameters (@hardmaru)", 100000, 0.925},
        {"2 Conv ~113K parameters (Abel G.)", 113000, 0.922},
        {"2 Conv+3 FC ~500K parameters (@cmasch)", 500000, 0.934},
        {"DenseNet-BC 768K params (@ajbrock)", 768000, 0.954},
    };
    for (const Row& row : rows) {
      ReferencePoint p;
      p.source = "Fashion-MNIST benchmark table";
      p.name = row.name;
      p.params = row.params;
      p.weight_bytes = row.params * 4;
      p.accuracy = row.accuracy;
      p.in_scope = row.params <= 100000;
      out.push_back(p);
    }
  }
  for (auto& p : out) {
    for (const auto& c : r.candidates) {
      if (std::isnan(c.accuracy) || c.weight_bytes > p.weight_bytes) continue;
      if (std::isnan(p.front_any) || c.accuracy > p.front_any) p.front_any = c.accuracy;
      if (c.w == 8 && c.t == 23 && (std::isnan(p.front_float32) || c.accuracy > p.front_float32))
        p.front_float32 = c.accuracy;
    }
  }
  return out;
}

std::string reference_points_csv(const std::vector<ReferencePoint>& points) {
  std::string o = "source,name,params,weight_bytes,accuracy,in_scope,front_float32,front_any\n";
  const auto num = [](double v) { return std::isnan(v) ? std::string() : fmt("%.4f", v); };
  for (const auto& p : points)
    o += csv_field(p.source) + "," + csv_field(p.name) + "," + std::to_string(p.params) + "," +
         std::to_string(p.weight_bytes) + "," + num(p.accuracy) + "," + (p.in_scope ? "1" : "0") +
         "," + num(p.front_float32) + "," + num(p.front_any) + "\n";
  return o;
}

}  // namespace iotnas::apps
