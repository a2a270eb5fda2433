// The report (write_report): sections described once as blocks, rendered to Markdown and to HTML.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "apps/report/internal.hpp"
#include "engine/util/files.hpp"
#include "kernels/base/error.hpp"
#include "kernels/round/format.hpp"
#include "search/law.hpp"

namespace iotnas::apps {

namespace {

using detail::fmt;
using detail::plot_fronts;
using kernels::format_label;
using nlohmann::json;

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
    if (store.count("accuracies") > 0) throw;  // a damaged store, not an early one
    text(std::string("No results yet: ") + e.what());
  }

  if (res) {
    const auto fronts = compute_fronts(*res);  // the store's own are those of `iotnas run`
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
