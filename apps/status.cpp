#include "apps/status.hpp"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "apps/estimate.hpp"
#include "apps/plan.hpp"
#include "apps/shard.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

namespace fs = std::filesystem;

bool process_gone(const Running& r) {
  return r.host == host_name() && r.pid > 0 && kill(pid_t(r.pid), 0) != 0 && errno == ESRCH;
}

std::string duration(double s) {
  char buf[64];
  if (s < 120) {
    std::snprintf(buf, sizeof buf, "%.0f s", s);
  } else if (s < 7200) {
    std::snprintf(buf, sizeof buf, "%.0f min", s / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  }
  return buf;
}

}  // namespace

RunStatus run_status(const std::string& dir) {
  const auto doc = read_plan(dir);
  if (!doc)
    fail("no plan in ", dir, " (", (fs::path(dir) / kPlanFile).string(),
         "): not a run directory, or its run has not made its plan yet");
  const Plan& plan = doc->plan;
  RunStatus st;
  st.dir = dir;
  st.plan_hash = plan.hash;
  st.items = item_count(plan);
  st.units = 2 * st.items;
  std::map<std::string, int> item_of;
  for (int i = 0; i < st.items; ++i) item_of[item_key(plan, i)] = i;
  std::vector<int> done(size_t(st.items), 0);
  std::vector<Running> marks;
  auto fold = [&](Store& s) {
    const auto d = item_units(plan, s);
    for (size_t i = 0; i < d.size(); ++i) done[i] = std::max(done[i], d[i]);
    for (auto& r : running(s)) marks.push_back(r);
    return d;
  };
  std::error_code ec;
  bool mpi = false;
  if (fs::exists(fs::path(dir) / kStoreFile, ec)) {
    Store s = Store::open_readonly(dir);
    fold(s);
    st.answered = !s.front_names().empty();
    mpi = s.artifact("mpi", "dispatch").has_value();
  }
  const fs::path shards = fs::path(dir) / kShardDir;
  for (const auto& e : fs::directory_iterator(shards, ec)) {
    if (e.path().extension() != ".sqlite") continue;
    Store s = Store::open_readonly_file(shards.string(), e.path().filename().string());
    int n = 0;
    for (int d : fold(s)) n += d;
    st.shards.push_back({std::atoi(e.path().stem().c_str()), n});
  }
  std::sort(st.shards.begin(), st.shards.end());
  for (int d : done) st.done += d;
  st.left = st.units - st.done;
  int live = 0;
  for (const Running& r : marks) {
    RunningItem it;
    static_cast<Running&>(it) = r;
    const auto i = item_of.find(r.key);
    it.model = i == item_of.end() ? r.key.substr(0, 12) : item_tag(plan, i->second);
    it.stale = process_gone(r);
    live += !it.stale;
    mpi |= r.worker.rfind("rank ", 0) == 0;
    st.running.push_back(it);
  }
  st.mode = !st.shards.empty() ? "shards" : mpi ? "mpi" : "one process";
  if (const auto speed = timed_speed(*doc, dir)) {
    double left = 0;
    for (int i = 0; i < st.items; ++i)
      if (done[size_t(i)] < 2) left += item_cost(plan, doc->config, i);
    st.eta_seconds = left / speed->macs_per_second / std::max(1, live);
    st.eta_source = speed->source + ", " + std::to_string(std::max(1, live)) + " at a time";
  }
  return st;
}

std::string status_text(const RunStatus& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: plan %.12s (%s), %d of %d units done, %zu running, %d left",
                s.dir.c_str(), s.plan_hash.c_str(), s.mode.c_str(), s.done, s.units,
                s.running.size(), s.left);
  std::string out = buf;
  out += "\n";
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& r : s.running)
    out += "  running: " + r.model + " on " + r.worker + " (" + r.host + " pid " +
           std::to_string(r.pid) + ") for " + duration(now - r.since) +
           (r.stale ? " -- stale: that process is gone; rerun the command to resume" : "") + "\n";
  for (const auto& [shard, n] : s.shards)
    out += "  shard " + std::to_string(shard) + ": " + std::to_string(n) + " units done\n";
  if (s.left == 0) {
    out += s.answered ? "finished: fronts and answers written\n"
                      : "every unit is done; fronts and answers not written yet" +
                            std::string(s.shards.empty() ? "" : " (run `iotnas merge`)") + "\n";
  } else if (s.eta_seconds >= 0) {
    out += "ETA: " + duration(s.eta_seconds) + " (" + s.eta_source + ")\n";
  } else {
    out += "ETA: unknown until a model has been trained and swept\n";
  }
  return out;
}

nlohmann::json status_json(const RunStatus& s) {
  nlohmann::json running = nlohmann::json::array();
  for (const auto& r : s.running)
    running.push_back({{"model", r.model},
                       {"key", r.key},
                       {"worker", r.worker},
                       {"host", r.host},
                       {"pid", r.pid},
                       {"since", r.since},
                       {"stale", r.stale}});
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& [shard, n] : s.shards) shards.push_back({{"shard", shard}, {"units_done", n}});
  return {
      {"run", s.dir},
      {"plan", s.plan_hash},
      {"mode", s.mode},
      {"items", s.items},
      {"units", s.units},
      {"done", s.done},
      {"running", running},
      {"left", s.left},
      {"shards", shards},
      {"eta_seconds", s.eta_seconds < 0 ? nlohmann::json(nullptr) : nlohmann::json(s.eta_seconds)},
      {"answered", s.answered}};
}

}  // namespace iotnas::apps
