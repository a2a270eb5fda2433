#include "calib/fit.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/util/files.hpp"
#include "engine/util/plot.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

double noise_within_10pct(const Profile& p, bool use_min, double probe_ref, int* models) {
  std::vector<double> first, second;
  for (const auto& m : p.models) {
    if (m.measurements.size() < 2) continue;
    first.push_back(ProfileModel::value(m.measurements[0], use_min, probe_ref));
    second.push_back(ProfileModel::value(m.measurements[1], use_min, probe_ref));
  }
  if (models) *models = int(first.size());
  return noise_within_10pct(std::span<const double>(first), std::span<const double>(second));
}

FitReport fit_profile(const Profile& profile, const FitOptions& o) {
  Profile p = profile;
  p.smooth_probes();  // a profile built in memory has not been through parse_profile
  FitReport r;
  r.probe_ref_ms = o.speed_normalize ? p.probe_ref() : 0;
  const double ref = r.probe_ref_ms;
  for (size_t i = 0; i < p.models.size(); ++i) {
    const ProfileModel& m = p.models[i];
    for (const auto& x : m.measurements) r.noisy_measurements += x.noisy;
    const double lat = m.latency_ms(o.use_min, ref);
    if (!std::isfinite(lat)) continue;
    ModelFeatures f;
    try {
      f = model_features(m.spec, m.space);
    } catch (const Error& e) {
      fail("profile model '", m.id, "': ", e.what());
    }
    // Layer times of the measurement the latency comes from (the fastest one).
    const Measurement* from = nullptr;
    for (const auto& x : m.measurements)
      if (!from ||
          ProfileModel::value(x, o.use_min, ref) < ProfileModel::value(*from, o.use_min, ref))
        from = &x;
    if (from && !from->layer_ms.empty()) r.layer_timed += attach_layer_times(f, from->layer_ms);
    r.used.push_back(i);
    r.measured_ms.push_back(lat);
    r.features.push_back(std::move(f));
  }
  if (int(r.used.size()) < kMinProfileModels)
    fail("the profile has ", r.used.size(), " measured models; fitting needs at least ",
         kMinProfileModels, " (measure more with `iotnas calib measure --n N`)");
  r.noise_within_10pct = noise_within_10pct(p, o.use_min, ref, &r.noise_models);
  r.noise_within_10pct_raw = noise_within_10pct(p, o.use_min, 0);
  std::vector<ModelKind> kinds;
  for (ModelKind k : kModelKinds) {
    // The layer models need per-layer times, which profiles of earlier versions lack.
    if (needs_layer_times(k) && r.layer_timed < std::max(kMinProfileModels, kMinFitModels))
      r.skipped.push_back(model_kind_name(k));
    else
      kinds.push_back(k);
  }
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (o.on_kind) o.on_kind(kinds[i], int(i), int(kinds.size()));
    r.models.push_back(cross_validate(kinds[i], r.features, r.measured_ms, o.folds, o.seed));
  }
  for (size_t i = 1; i < r.models.size(); ++i) {
    const Scores& a = r.models[i].scores;
    const Scores& b = r.models[size_t(r.best)].scores;
    if (a.within_10pct > b.within_10pct || (a.within_10pct == b.within_10pct && a.r2 > b.r2))
      r.best = int(i);
  }
  r.best_model = fit_latency_model(r.models[size_t(r.best)].kind, r.features, r.measured_ms);
  return r;
}

nlohmann::json fit_report_json(const FitReport& r, const FitOptions& o) {
  const CvResult& best = r.models[size_t(r.best)];
  nlohmann::json j;
  j["best_model"] = model_kind_name(best.kind);
  j["within_10pct"] = best.scores.within_10pct;
  j["r2"] = best.scores.r2;
  j["mdape"] = best.scores.mdape;
  j["models"] = nlohmann::json::object();
  for (const auto& m : r.models)
    j["models"][model_kind_name(m.kind)] = {
        {"within_10pct", m.scores.within_10pct}, {"r2", m.scores.r2}, {"mdape", m.scores.mdape}};
  j["noise_within_10pct"] =
      std::isfinite(r.noise_within_10pct) ? nlohmann::json(r.noise_within_10pct) : nlohmann::json();
  j["noise_within_10pct_raw"] = std::isfinite(r.noise_within_10pct_raw)
                                    ? nlohmann::json(r.noise_within_10pct_raw)
                                    : nlohmann::json();
  j["speed_normalized"] = r.probe_ref_ms > 0;
  if (r.probe_ref_ms > 0) j["probe_ref_ms"] = r.probe_ref_ms;
  j["noise_models"] = r.noise_models;
  j["noisy_measurements"] = r.noisy_measurements;
  j["measured_models"] = r.used.size();
  j["layer_timed_models"] = r.layer_timed;
  if (!r.skipped.empty()) j["skipped_models"] = r.skipped;
  j["folds"] = o.folds;
  j["seed"] = o.seed;
  j["statistic"] = o.use_min ? "min" : "median";
  j["model"] = latency_model_to_json(r.best_model);
  return j;
}

LatencyModel fitted_model(const Profile& p, const std::string& origin) {
  if (p.fit.is_null() || !p.fit.contains("model"))
    fail("profile '", origin, "' has no fitted latency model; run `iotnas calib fit --profile ",
         origin, "` first");
  return latency_model_from_json(p.fit["model"], "profile '" + origin + "'");
}

namespace {

// Both terminals from one script: the body is written once per terminal.
std::string two_terminals(const std::string& stem, const std::string& body) {
  return "set terminal pngcairo noenhanced size 900,650\nset output '" + stem + ".png'\n" + body +
         "set terminal svg noenhanced size 900,650\nset output '" + stem + ".svg'\nreplot\n";
}

}  // namespace

std::vector<std::string> write_plots(const std::string& dir, const Profile& p, const FitReport& r,
                                     bool render) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create plot folder '", dir, "': ", ec.message());
  std::vector<std::string> written;
  std::set<std::string> spaces;
  {
    std::string csv = "space,id,params,flops,latency_ms,first_ms,second_ms\n";
    char buf[512];
    for (size_t k = 0; k < r.used.size(); ++k) {
      const ProfileModel& m = p.models[r.used[k]];
      const std::string space = m.space.empty() ? "other" : m.space;
      spaces.insert(space);
      const double a = m.measurements.size() > 0 ? m.measurements[0].median_ms : NAN;
      const double b = m.measurements.size() > 1 ? m.measurements[1].median_ms : NAN;
      std::snprintf(buf, sizeof buf, "%s,\"%s\",%lld,%lld,%.6g,%.6g,%.6g\n", space.c_str(),
                    m.id.c_str(), (long long)m.params, (long long)m.flops, r.measured_ms[k], a, b);
      csv += buf;
    }
    write_file_atomic(dir + "/latency_vs_flops.csv", csv);
    written.push_back(dir + "/latency_vs_flops.csv");
    std::string list;
    for (const auto& s : spaces) list += (list.empty() ? "" : " ") + s;
    const std::string body =
        "set datafile separator ','\nset key top left\nset logscale xy\nset grid\n"
        "set xlabel 'forward FLOPs per image'\nset ylabel 'batch-1 latency (ms)'\n"
        "set title 'Measured latency vs FLOPs per space'\n"
        "plot for [s in '" +
        list +
        "'] 'latency_vs_flops.csv' skip 1 using "
        "(strcol(1) eq s ? $4 : 1/0):5 with points pt 7 ps 0.6 title s\n";
    write_file_atomic(dir + "/latency_vs_flops.gp", two_terminals("latency_vs_flops", body));
    written.push_back(dir + "/latency_vs_flops.gp");
  }
  {
    std::string csv = "space,id,measured_ms";
    for (const auto& m : r.models) csv += std::string(",") + model_kind_name(m.kind) + "_ms";
    csv += "\n";
    char buf[128];
    for (size_t k = 0; k < r.used.size(); ++k) {
      const ProfileModel& m = p.models[r.used[k]];
      csv += (m.space.empty() ? "other" : m.space) + ",\"" + m.id + "\"";
      std::snprintf(buf, sizeof buf, ",%.6g", r.measured_ms[k]);
      csv += buf;
      for (const auto& cv : r.models) {
        std::snprintf(buf, sizeof buf, ",%.6g", cv.predicted_ms[k]);
        csv += buf;
      }
      csv += "\n";
    }
    write_file_atomic(dir + "/predicted_vs_measured.csv", csv);
    written.push_back(dir + "/predicted_vs_measured.csv");
    std::string plot = "plot ";
    for (size_t i = 0; i < r.models.size(); ++i) {
      char t[200];
      std::snprintf(t, sizeof t,
                    "'predicted_vs_measured.csv' skip 1 using 3:%zu with points pt 7 "
                    "ps 0.5 title '%s (%.0f%% within 10%%)', ",
                    4 + i, model_kind_name(r.models[i].kind),
                    r.models[i].scores.within_10pct * 100);
      plot += t;
    }
    plot +=
        "x with lines lc 'black' title 'exact', 1.1*x with lines dt 2 lc 'gray' title '+-10%', "
        "0.9*x with lines dt 2 lc 'gray' notitle\n";
    const std::string body =
        "set datafile separator ','\nset key top left\nset logscale xy\nset grid\n"
        "set xlabel 'measured latency (ms)'\nset ylabel 'predicted latency, held out (ms)'\n"
        "set title 'Latency models, 5-fold cross-validation'\n" +
        plot;
    write_file_atomic(dir + "/predicted_vs_measured.gp",
                      two_terminals("predicted_vs_measured", body));
    written.push_back(dir + "/predicted_vs_measured.gp");
  }
  const std::string gnuplot = render ? find_gnuplot() : "";
  if (!gnuplot.empty()) {
    for (const char* stem : {"latency_vs_flops", "predicted_vs_measured"}) {
      const std::string why = run_gnuplot(gnuplot, dir, std::string(stem) + ".gp");
      if (!why.empty()) fail(why);
      written.push_back(dir + "/" + stem + ".png");
      written.push_back(dir + "/" + stem + ".svg");
    }
  }
  return written;
}

}  // namespace iotnas::calib
