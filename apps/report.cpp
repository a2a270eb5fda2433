#include "apps/report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "calib/fit.hpp"
#include "calib/latency_model.hpp"
#include "calib/profile.hpp"
#include "engine/spec.hpp"
#include "engine/util/files.hpp"
#include "engine/util/plot.hpp"
#include "kernels/base/error.hpp"
#include "kernels/round/format.hpp"
#include "search/law.hpp"

namespace iotnas::apps {

namespace {

using nlohmann::json;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

using kernels::format_label;

json maybe(double v) {
  return std::isnan(v) ? json(nullptr) : json(v);
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

namespace {
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}
}  // namespace

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

std::string front_table(const Results& r, const NamedFront& f) {
  std::string out = f.title + " (" + std::to_string(f.points.size()) + " points)\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %8s  %-10s %-32s %9s %-8s %9s %12s %11s\n", "model", "space",
                "name", "params", "format", "accuracy", "weight B", "latency ms");
  out += line;
  for (int i : f.points) {
    const auto& c = r.candidates[i];
    const auto& info = r.info[i];
    std::string name = info.name.size() > 32 ? info.name.substr(0, 29) + "..." : info.name;
    std::snprintf(line, sizeof line, "  %8lld  %-10s %-32s %9lld %-8s %8.2f%% %12lld %11s\n",
                  (long long)info.model_id, c.space.c_str(), name.c_str(), (long long)info.params,
                  format_label(c.w, c.t).c_str(), c.accuracy * 100, (long long)c.weight_bytes,
                  std::isnan(c.latency_ms) ? "-" : fmt("%.4g", c.latency_ms).c_str());
    out += line;
  }
  if (f.points.empty()) out += "  (no points)\n";
  return out;
}

json solution_json(const Results& r, const search::Solution& s) {
  json j;
  j["feasible"] = s.feasible;
  if (s.feasible) {
    const auto& c = r.candidates[s.best];
    const auto& info = r.info[s.best];
    j["model_id"] = info.model_id;
    j["space"] = c.space;
    j["w"] = c.w;
    j["t"] = c.t;
    j["accuracy"] = c.accuracy;
    j["weight_bytes"] = c.weight_bytes;
    j["latency_ms_measured"] = maybe(info.latency_ms_measured);
    j["latency_ms_predicted"] = maybe(info.latency_ms_predicted);
    j["name"] = info.name;
    j["params"] = info.params;
    j["run_id"] = info.run_id;
  } else {
    for (const char* k : {"model_id", "space", "w", "t", "accuracy", "weight_bytes",
                          "latency_ms_measured", "latency_ms_predicted"})
      j[k] = nullptr;
    j["violations"] = json::array();
    for (const auto& v : s.violations) {
      const char* limit =
          v.limit == search::Cost::weight_bytes ? "max_weight_bytes" : "max_latency_ms";
      j["violations"].push_back(
          {{"limit", limit}, {"given", v.given}, {"smallest_feasible", maybe(v.smallest)}});
    }
    if (!s.violations.empty()) {
      j["limit"] = j["violations"][0]["limit"];
      j["smallest_feasible"] = j["violations"][0]["smallest_feasible"];
    }
  }
  j["device"] = r.device;
  j["message"] = s.message;
  j["runners_up"] = json::array();
  for (const auto& ru : s.runners_up) {
    const auto& c = r.candidates[ru.index];
    j["runners_up"].push_back({{"model_id", r.info[ru.index].model_id},
                               {"space", c.space},
                               {"w", c.w},
                               {"t", c.t},
                               {"accuracy", c.accuracy},
                               {"weight_bytes", c.weight_bytes},
                               {"latency_ms", maybe(c.latency_ms)},
                               {"reason", ru.reason}});
  }
  return j;
}

std::string solution_text(const Results& r, const search::Solution& s) {
  std::string out;
  if (s.feasible) {
    const auto& c = r.candidates[s.best];
    const auto& info = r.info[s.best];
    out += "best: model " + std::to_string(info.model_id) + " (" + info.name + ", " + c.space +
           ", " + std::to_string(info.params) + " params) in " + format_label(c.w, c.t) + "\n";
    out += "  accuracy " + fmt("%.2f", c.accuracy * 100) + " %, weights " +
           std::to_string(c.weight_bytes) + " B\n";
    out += "  latency (float32, batch 1" + (r.device.empty() ? "" : ", " + r.device) +
           "): measured " +
           (std::isnan(info.latency_ms_measured) ? "-" : fmt("%.4g", info.latency_ms_measured)) +
           " ms, predicted " +
           (std::isnan(info.latency_ms_predicted) ? "-" : fmt("%.4g", info.latency_ms_predicted)) +
           " ms\n";
  } else {
    out += "infeasible: " + s.message + "\n";
  }
  if (!s.runners_up.empty()) out += "runners-up:\n";
  for (const auto& ru : s.runners_up) {
    const auto& info = r.info[ru.index];
    out += "  model " + std::to_string(info.model_id) + " (" + info.name + "): " + ru.reason + "\n";
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

bool have_gnuplot() {
  return !find_gnuplot().empty();
}

// ---------------------------------------------------------------------------------------------
// The report: sections rendered to Markdown and to HTML from one description.

namespace {

struct Table {
  std::vector<std::string> head;
  std::vector<std::vector<std::string>> rows;
};
struct Block {
  enum Kind { heading, text, table, image } kind;
  std::string content;  // heading/text/image path (relative to DIR)
  Table tab;
};

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&')
      o += "&amp;";
    else if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

std::string md_cell(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : std::string(1, c);
  return o;
}

std::string render_md(const std::vector<Block>& blocks) {
  std::string o;
  for (const auto& b : blocks) {
    switch (b.kind) {
      case Block::heading:
        o += "\n## " + b.content + "\n\n";
        break;
      case Block::text:
        o += b.content + "\n\n";
        break;
      case Block::image:
        o += "![" + b.content + "](" + b.content + ")\n\n";
        break;
      case Block::table: {
        o += "|";
        for (const auto& h : b.tab.head) o += " " + md_cell(h) + " |";
        o += "\n|";
        for (size_t i = 0; i < b.tab.head.size(); ++i) o += "---|";
        o += "\n";
        for (const auto& row : b.tab.rows) {
          o += "|";
          for (const auto& c : row) o += " " + md_cell(c) + " |";
          o += "\n";
        }
        o += "\n";
        break;
      }
    }
  }
  return o;
}

std::string render_html(const std::string& title, const std::vector<Block>& blocks,
                        const std::string& dir) {
  std::string o = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" +
                  html_escape(title) +
                  "</title>\n<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
                  "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
                  "text-align:right}img{max-width:100%}</style></head><body>\n<h1>" +
                  html_escape(title) + "</h1>\n";
  for (const auto& b : blocks) {
    switch (b.kind) {
      case Block::heading:
        o += "<h2>" + html_escape(b.content) + "</h2>\n";
        break;
      case Block::text:
        o += "<p>" + html_escape(b.content) + "</p>\n";
        break;
      case Block::image: {
        // Inline SVGs so the HTML file stands alone.
        std::ifstream f(std::filesystem::path(dir) / b.content);
        std::stringstream s;
        s << f.rdbuf();
        std::string svg = s.str();
        const auto start = svg.find("<svg");
        if (start != std::string::npos) o += svg.substr(start) + "\n";
        break;
      }
      case Block::table: {
        o += "<table><tr>";
        for (const auto& h : b.tab.head) o += "<th>" + html_escape(h) + "</th>";
        o += "</tr>\n";
        for (const auto& row : b.tab.rows) {
          o += "<tr>";
          for (const auto& c : row) o += "<td>" + html_escape(c) + "</td>";
          o += "</tr>\n";
        }
        o += "</table>\n";
        break;
      }
    }
  }
  return o + "</body></html>\n";
}

std::string slug(const std::string& name) {
  std::string o;
  for (char c : name) o += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return o;
}

Table front_rows(const Results& r, const NamedFront& f) {
  Table t{
      {"model", "space", "name", "params", "format", "accuracy %", "weight bytes", "latency ms"},
      {}};
  for (int i : f.points) {
    const auto& c = r.candidates[i];
    const auto& info = r.info[i];
    t.rows.push_back({std::to_string(info.model_id), c.space, info.name,
                      std::to_string(info.params), format_label(c.w, c.t),
                      fmt("%.2f", c.accuracy * 100), std::to_string(c.weight_bytes),
                      std::isnan(c.latency_ms) ? "-" : fmt("%.4g", c.latency_ms)});
  }
  return t;
}

// Writes data and a gnuplot script for a plot of several fronts, renders SVG and PNG. Returns the
// SVG path relative to dir, or "" when gnuplot failed.
std::string plot_fronts(const std::string& dir, const std::string& name, const std::string& title,
                        const std::string& xlabel, const Results& r,
                        const std::vector<const NamedFront*>& fronts, bool background) {
  namespace fs = std::filesystem;
  const fs::path plots = fs::path(dir) / "plots";
  fs::create_directories(plots);
  std::string script = "set terminal svg size 900,560 dynamic\nset output '" +
                       (plots / (name + ".svg")).string() + "'\nset title '" + title +
                       "'\nset xlabel '" + xlabel +
                       "'\nset ylabel 'accuracy (%)'\nset logscale x\nset key bottom right\n"
                       "set grid\n";
  std::string plot = "plot ";
  if (background) {
    std::string data;
    for (const auto& c : r.candidates)
      data += std::to_string(c.weight_bytes) + " " + fmt("%.4f", c.accuracy * 100) + "\n";
    write_file_atomic((plots / (name + "_all.dat")).string(), data);
    plot += "'" + (plots / (name + "_all.dat")).string() +
            "' using 1:2 with points pt 7 ps 0.3 lc rgb '#cccccc' title 'all (model, format)', ";
  }
  for (size_t k = 0; k < fronts.size(); ++k) {
    std::string data;
    for (int i : fronts[k]->points) {
      const auto& c = r.candidates[i];
      data += fmt("%.6g", search::cost_value(c, fronts[k]->cost)) + " " +
              fmt("%.4f", c.accuracy * 100) + "\n";
    }
    const fs::path file = plots / (name + "_" + slug(fronts[k]->name) + ".dat");
    write_file_atomic(file.string(), data);
    std::string label = fronts[k]->name.substr(fronts[k]->name.find(':') + 1);
    const std::string lc = " lc " + std::to_string(k + 1);
    plot += "'" + file.string() + "' using 1:2 with steps lw 2" + lc + " title '" + label + "', '" +
            file.string() + "' using 1:2 with points pt 7" + lc + " notitle";
    plot += k + 1 < fronts.size() ? ", " : "\n";
  }
  if (fronts.empty()) return "";
  script += plot;
  script += "set terminal pngcairo size 900,560\nset output '" +
            (plots / (name + ".png")).string() + "'\nreplot\n";
  const fs::path gp = plots / (name + ".gp");
  write_file_atomic(gp.string(), script);
  if (!run_gnuplot(find_gnuplot(), plots.string(), gp.string()).empty()) return "";
  return "plots/" + name + ".svg";
}

}  // namespace

std::vector<std::string> write_report(Store& store, const std::string& dir,
                                      const ReportOptions& options) {
  namespace fs = std::filesystem;
  std::vector<Block> b;
  std::vector<std::string> written;
  const auto text = [&](std::string s) { b.push_back({Block::text, std::move(s), {}}); };
  const auto heading = [&](std::string s) { b.push_back({Block::heading, std::move(s), {}}); };

  text("Run directory `" + dir + "`, store schema " + store.meta("schema_version").value_or("?") +
       ", written by iotnas " + store.meta("iotnas_version").value_or("?") + ", created " +
       store.meta("created_at").value_or("?") +
       ". Models: " + std::to_string(store.count("models")) +
       ", training runs: " + std::to_string(store.count("runs")) +
       ", format accuracies: " + std::to_string(store.count("accuracies")) +
       ", finished sweeps: " + std::to_string(store.count("sweeps")) + ".");

  std::optional<Results> res;
  try {
    res = load_results(store);
  } catch (const Error& e) {
    text(std::string("No results yet: ") + e.what());
  }

  if (res) {
    const auto fronts = compute_fronts(*res);
    store_fronts(store, *res, fronts);
    const std::string csv_path = (fs::path(dir) / "fronts.csv").string();
    write_file_atomic(csv_path, fronts_csv(*res, fronts));
    written.push_back(csv_path);

    // Constraint answers for the run config's constraints.
    if (auto cfg = store.artifact("config", "run")) {
      const json j = json::parse(*cfg, nullptr, false);
      if (j.is_object() && j.contains("constraints") && j["constraints"].is_array() &&
          !j["constraints"].empty()) {
        heading("Constraint answers");
        Table t{{"constraint", "max weight B", "max latency ms", "answer", "accuracy %", "weight B",
                 "latency ms"},
                {}};
        for (const auto& k : j["constraints"]) {
          search::Limits lim;
          lim.max_weight_bytes = k.value("max_weight_bytes", int64_t(0));
          if (k.contains("max_latency_ms") && k["max_latency_ms"].is_number())
            lim.max_latency_ms = k["max_latency_ms"].get<double>();
          const auto s = search::solve(res->candidates, lim);
          std::vector<std::string> row = {
              k.value("name", std::string("?")), std::to_string(lim.max_weight_bytes),
              lim.max_latency_ms ? fmt("%.4g", *lim.max_latency_ms) : "-"};
          if (s.feasible) {
            const auto& c = res->candidates[s.best];
            row.push_back("model " + std::to_string(res->info[s.best].model_id) + " (" +
                          res->info[s.best].name + ") in " + format_label(c.w, c.t));
            row.push_back(fmt("%.2f", c.accuracy * 100));
            row.push_back(std::to_string(c.weight_bytes));
            row.push_back(std::isnan(c.latency_ms) ? "-" : fmt("%.4g", c.latency_ms));
          } else {
            row.push_back(s.message);
            row.insert(row.end(), {"-", "-", "-"});
          }
          t.rows.push_back(row);
        }
        b.push_back({Block::table, "", t});
      }
    }

    heading("Fronts");
    text(
        "Pareto fronts (maximise accuracy, minimise cost) over every trained model's accuracy "
        "on the evaluation set, per format family; weight memory is bit-packed "
        "(ceil(params x bits / 8)), latency is the float32 model's at batch 1. CSV: fronts.csv.");
    if (options.plots && have_gnuplot()) {
      std::vector<const NamedFront*> mem;
      const NamedFront* lat = nullptr;
      for (const auto& f : fronts) {
        if (f.name.rfind("memory:", 0) == 0 && f.name != "memory:all") mem.push_back(&f);
        if (f.name.rfind("latency:", 0) == 0) lat = &f;
      }
      const std::string p1 = plot_fronts(dir, "memory_fronts", "weight memory - accuracy",
                                         "weight memory (bytes)", *res, mem, true);
      if (!p1.empty()) {
        b.push_back({Block::image, p1, {}});
        written.push_back((fs::path(dir) / p1).string());
      }
      if (lat && !lat->points.empty()) {
        const std::string p2 = plot_fronts(dir, "latency_front", "latency - accuracy (float32)",
                                           "latency (ms)", *res, {lat}, false);
        if (!p2.empty()) {
          b.push_back({Block::image, p2, {}});
          written.push_back((fs::path(dir) / p2).string());
        }
      }
    } else {
      text("(gnuplot is not installed: tables only.)");
    }
    for (const auto& f : fronts) {
      if (f.name == "memory:all") continue;
      text("**" + f.title + "**");
      b.push_back({Block::table, "", front_rows(*res, f)});
    }

    std::string dataset;
    if (auto cfg = store.artifact("config", "run")) {
      const json j = json::parse(*cfg, nullptr, false);
      if (j.is_object()) dataset = j.value("dataset", std::string());
    }
    const auto refs = reference_points(*res, dataset);
    if (!refs.empty()) {
      heading("Reference points");
      text(
          "Each reference point's float32 accuracy beside the best accuracy of this run's "
          "candidates within the same weight memory (the point's parameters x 4 bytes): on the "
          "float32 front and on any format. Reference models of this run are trained with the "
          "same recipe and evaluated on the same images; table rows are quoted from the "
          "dataset's README (full test split, their own recipes). CSV: reference_points.csv.");
      Table t{{"source", "name", "params", "weight B", "accuracy %", "front float32 %",
               "gap (points)", "front any format %"},
              {}};
      const auto pct = [](double v) {
        return std::isnan(v) ? std::string("-") : fmt("%.2f", v * 100);
      };
      for (const auto& p : refs)
        t.rows.push_back(
            {p.source + (p.in_scope ? "" : " (params > 1e5)"), p.name, std::to_string(p.params),
             std::to_string(p.weight_bytes), pct(p.accuracy), pct(p.front_float32),
             std::isnan(p.front_float32) ? "-" : fmt("%+.2f", (p.front_float32 - p.accuracy) * 100),
             pct(p.front_any)});
      b.push_back({Block::table, "", t});
      const std::string path = (fs::path(dir) / "reference_points.csv").string();
      write_file_atomic(path, reference_points_csv(refs));
      written.push_back(path);
    }

    heading("Trained models");
    Table t{{"model", "space", "name", "params", "MFLOP", "float32 %", "best format", "best %",
             "latency ms (measured / predicted)"},
            {}};
    std::map<int64_t, std::vector<size_t>> by_run;
    for (size_t i = 0; i < res->info.size(); ++i) by_run[res->info[i].run_id].push_back(i);
    for (const auto& [run_id, idx] : by_run) {
      const auto& info = res->info[idx.front()];
      std::string f32 = "-", best = "-", best_acc = "-";
      for (size_t i : idx) {
        const auto& c = res->candidates[i];
        if (c.w == 8 && c.t == 23) f32 = fmt("%.2f", c.accuracy * 100);
        if (res->info[i].best_format) {
          best = format_label(c.w, c.t);
          best_acc = fmt("%.2f", c.accuracy * 100);
        }
      }
      t.rows.push_back(
          {std::to_string(info.model_id), res->candidates[idx.front()].space, info.name,
           std::to_string(info.params), fmt("%.3f", info.flops / 1e6), f32, best, best_acc,
           (std::isnan(info.latency_ms_measured) ? "-" : fmt("%.4g", info.latency_ms_measured)) +
               " / " +
               (std::isnan(info.latency_ms_predicted) ? "-"
                                                      : fmt("%.4g", info.latency_ms_predicted))});
    }
    b.push_back({Block::table, "", t});
  }

  const auto laws = store.all_laws();
  if (!laws.empty()) {
    heading("Search: laws per window");
    Table t{{"space", "metric", "window", "coverage", "share of samples in window", "GA seconds"},
            {}};
    for (const auto& l : laws)
      t.rows.push_back({l.space, l.metric,
                        fmt("%.0f", l.window_lo) + " - " + fmt("%.0f", l.window_hi), l.coverage,
                        fmt("%.2f", l.in_window), fmt("%.2f", l.seconds)});
    b.push_back({Block::table, "", t});
  }
  for (const auto& key : store.artifact_keys("search")) {
    heading("Search distribution: " + key);
    text("```\n" + store.artifact("search", key).value_or("") + "\n```");
  }
  if (const auto failed = store.artifact_keys("failed-run"); !failed.empty()) {
    heading("Training runs that failed");
    Table t{{"model", "error"}, {}};
    for (const auto& key : failed) {
      const json j = json::parse(store.artifact("failed-run", key).value_or("{}"), nullptr, false);
      if (j.is_object())
        t.rows.push_back({j.value("name", std::string("?")), j.value("error", std::string("?"))});
    }
    b.push_back({Block::table, "", t});
  }
  for (const auto& key : store.artifact_keys("calibration")) {
    heading("Calibration: " + key);
    const json j = json::parse(store.artifact("calibration", key).value_or("null"), nullptr, false);
    text(j.is_discarded() ? store.artifact("calibration", key).value_or("") : j.dump(1));
  }

  const std::string md_path = (fs::path(dir) / "report.md").string();
  const std::string html_path = (fs::path(dir) / "report.html").string();
  write_file_atomic(md_path, "# iotnas run report\n" + render_md(b));
  write_file_atomic(html_path, render_html("iotnas run report", b, dir));
  written.push_back(md_path);
  written.push_back(html_path);
  return written;
}

}  // namespace iotnas::apps
