// Answers for the terminal (iotnas front, iotnas solve): a front as a table, the solution of a
// constraint query as text or JSON.
#include <cmath>
#include <cstdio>

#include "apps/report/internal.hpp"
#include "kernels/round/format.hpp"

namespace iotnas::apps {

namespace {

using detail::fmt;
using kernels::format_label;
using nlohmann::json;

json maybe(double v) {
  return std::isnan(v) ? json(nullptr) : json(v);
}

}  // namespace

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

}  // namespace iotnas::apps
