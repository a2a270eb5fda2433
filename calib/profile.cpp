#include "calib/profile.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/graph.hpp"
#include "engine/util/files.hpp"
#include "engine/util/json.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

using nlohmann::json;

double ProfileModel::value(const Measurement& m, bool use_min, double probe_ref) {
  const double v = use_min ? m.min_ms : m.median_ms;
  const double probe = m.probe_local_ms > 0 ? m.probe_local_ms : m.probe_ms;
  return probe_ref > 0 && probe > 0 ? v * probe_ref / probe : v;
}

double ProfileModel::latency_ms(bool use_min, double probe_ref) const {
  double best = std::numeric_limits<double>::quiet_NaN();
  for (const auto& m : measurements) {
    const double v = value(m, use_min, probe_ref);
    if (!(v >= best)) best = v;
  }
  return best;
}

double Profile::probe_ref() const {
  std::vector<double> t;
  for (const auto& m : models)
    for (const auto& x : m.measurements)
      if (x.probe_ms > 0) t.push_back(x.probe_ms);
  if (t.empty()) return 0;
  const size_t k = t.size() / 10;
  std::nth_element(t.begin(), t.begin() + long(k), t.end());
  return t[k];
}

void Profile::smooth_probes() {
  struct Taken {
    const std::string* time;
    int round;
    size_t model;
    Measurement* m;
  };
  std::vector<Taken> order;
  for (size_t i = 0; i < models.size(); ++i)
    for (auto& x : models[i].measurements)
      if (x.probe_ms > 0) order.push_back({&x.time, x.round, i, &x});
  // Rounds are interleaved passes over the models: within one second, round then model order.
  std::sort(order.begin(), order.end(), [](const Taken& a, const Taken& b) {
    if (*a.time != *b.time) return *a.time < *b.time;
    if (a.round != b.round) return a.round < b.round;
    return a.model < b.model;
  });
  std::vector<double> window;
  for (size_t i = 0; i < order.size(); ++i) {
    window.clear();
    const size_t lo = i >= size_t(kProbeWindow) ? i - size_t(kProbeWindow) : 0;
    const size_t hi = std::min(order.size(), i + size_t(kProbeWindow) + 1);
    for (size_t k = lo; k < hi; ++k) window.push_back(order[k].m->probe_ms);
    std::nth_element(window.begin(), window.begin() + long(window.size() / 2), window.end());
    order[i].m->probe_local_ms = window[window.size() / 2];
  }
}

int Profile::find(std::string_view id) const {
  for (size_t i = 0; i < models.size(); ++i)
    if (models[i].id == id) return int(i);
  return -1;
}

namespace {

json measurement_json(const Measurement& m) {
  json j = {{"round", m.round},         {"device", m.device},   {"mean_ms", m.mean_ms},
            {"median_ms", m.median_ms}, {"min_ms", m.min_ms},   {"max_ms", m.max_ms},
            {"spread", m.spread},       {"repeats", m.repeats}, {"attempts", m.attempts},
            {"noisy", m.noisy},         {"time", m.time}};
  if (!m.layer_ms.empty()) j["layer_ms"] = m.layer_ms;
  if (m.probe_ms > 0) j["probe_ms"] = m.probe_ms;
  return j;
}

json settings_json(const ProfileSettings& s) {
  json j = {
      {"input", {s.input.c, s.input.h, s.input.w}}, {"classes", s.classes}, {"backend", s.backend}};
  fields::write(measure_fields(), s.measure, j);
  return j;
}

// Reads a required field with a message naming the file, the place and the field.
template <typename T>
T get(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key))
    fail(where, ": missing field '", key,
         "' (is this a profile written by `iotnas calib measure`?)");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail(where, ": field '", key, "' has the wrong type (", j.at(key).type_name(), ")");
  }
}

Measurement parse_measurement(const json& j, const std::string& where, int num_devices) {
  Measurement m;
  m.round = get<int>(j, "round", where);
  m.device = get<int>(j, "device", where);
  m.mean_ms = get<double>(j, "mean_ms", where);
  m.median_ms = get<double>(j, "median_ms", where);
  m.min_ms = get<double>(j, "min_ms", where);
  m.max_ms = get<double>(j, "max_ms", where);
  m.spread = get<double>(j, "spread", where);
  m.repeats = get<int>(j, "repeats", where);
  m.attempts = j.value("attempts", 1);
  m.noisy = get<bool>(j, "noisy", where);
  m.time = j.value("time", std::string());
  if (j.contains("probe_ms")) m.probe_ms = get<double>(j, "probe_ms", where);  // optional
  if (!(m.probe_ms >= 0) || !std::isfinite(m.probe_ms))
    fail(where, ": probe_ms ", m.probe_ms, " is not a time");
  if (j.contains("layer_ms")) {  // optional: profiles of earlier versions have none
    try {
      m.layer_ms = j["layer_ms"].get<std::map<std::string, double>>();
    } catch (const json::exception&) {
      fail(where, ": field 'layer_ms' must map layer names to milliseconds");
    }
    for (const auto& [name, ms] : m.layer_ms)
      if (!(ms >= 0) || !std::isfinite(ms))
        fail(where, ": layer_ms of '", name, "' is ", ms, ", not a time");
  }
  if (m.device < 0 || m.device >= num_devices)
    fail(where, ": device index ", m.device, " is not one of the profile's ", num_devices,
         " devices");
  if (!(m.median_ms > 0) || !std::isfinite(m.median_ms) || !(m.min_ms > 0))
    fail(where, ": median_ms ", m.median_ms, " is not a positive latency");
  return m;
}

}  // namespace

nlohmann::json profile_to_json(const Profile& p) {
  json j;
  j["format"] = kProfileFormat;
  j["created"] = p.created;
  j["updated"] = p.updated;
  j["settings"] = settings_json(p.settings);
  j["devices"] = p.devices;
  j["models"] = json::array();
  const double probe_ref = p.probe_ref();
  if (probe_ref > 0) j["probe_ref_ms"] = probe_ref;
  for (const auto& m : p.models) {
    json o = {{"id", m.id},
              {"space", m.space},
              {"vars", m.vars},
              {"params", m.params},
              {"inference_params", m.inference_params},
              {"flops", m.flops}};
    const double lat = m.latency_ms(false, probe_ref);
    if (std::isfinite(lat)) o["latency_ms"] = lat;
    o["measurements"] = json::array();
    for (const auto& x : m.measurements) o["measurements"].push_back(measurement_json(x));
    o["spec"] = json::parse(spec_to_json(m.spec, -1));
    j["models"].push_back(std::move(o));
  }
  if (!p.fit.is_null()) j["fit"] = p.fit;
  return j;
}

Profile parse_profile(std::string_view text, const std::string& origin) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    fail("profile '", origin, "' is empty; measure one with `iotnas calib measure --out ", origin,
         "`");
  const json j = parse_json_strict(
      text, "profile '" + origin + "'",
      "was it cut short? Measure again with `iotnas calib measure`");
  if (!j.is_object()) fail("profile '", origin, "' is not a JSON object");
  const std::string format = j.value("format", std::string());
  if (format != kProfileFormat)
    fail("profile '", origin, "' has format '", format.empty() ? "(none)" : format,
         "'; this iotnas reads '", kProfileFormat,
         "': measure the profile again with this version (`iotnas calib measure`)");
  Profile p;
  p.created = j.value("created", std::string());
  p.updated = j.value("updated", std::string());
  const std::string where = "profile '" + origin + "'";
  const json& s = j.contains("settings") ? j["settings"] : json();
  if (!s.is_object()) fail(where, ": missing object 'settings'");
  const auto input = get<std::vector<int>>(s, "input", where + " settings");
  if (input.size() != 3 || input[0] < 1 || input[1] < 1 || input[2] < 1)
    fail(where, ": settings.input must be [C, H, W] with positive sizes");
  p.settings.input = {input[0], input[1], input[2]};
  p.settings.classes = get<int>(s, "classes", where + " settings");
  p.settings.backend = get<std::string>(s, "backend", where + " settings");
  // The measuring settings, by their field table. Profiles from before warmup_ms and max_attempts
  // existed lack them: they were measured with no warm-up time and one attempt.
  MeasureConfig& m = p.settings.measure;
  m.warmup_ms = 0;
  m.max_attempts = 1;
  fields::Reader settings(s, "settings", where);
  for (const auto& f : measure_fields()) {
    const std::string key = f.key;
    if (!s.contains(key) && key != "warmup_ms" && key != "max_attempts")
      fail(where, " settings: missing field '", key,
           "' (is this a profile written by `iotnas calib measure`?)");
    settings.get(f.key, f.ref(m));
  }
  if (!j.contains("devices") || !j["devices"].is_array()) fail(where, ": missing array 'devices'");
  for (const auto& d : j["devices"]) p.devices.push_back(d);
  if (!j.contains("models") || !j["models"].is_array()) fail(where, ": missing array 'models'");
  for (const auto& jm : j["models"]) {
    ProfileModel m;
    m.id = get<std::string>(jm, "id", where + " model");
    const std::string mw = where + " model '" + m.id + "'";
    if (p.find(m.id) >= 0) fail(mw, " appears twice");
    m.space = jm.value("space", std::string());
    m.vars = jm.value("vars", std::vector<int>());
    m.params = get<int64_t>(jm, "params", mw);
    m.inference_params = jm.value("inference_params", m.params);
    m.flops = get<int64_t>(jm, "flops", mw);
    if (!jm.contains("spec")) fail(mw, ": missing field 'spec'");
    m.spec = parse_spec(jm["spec"].dump(), mw + " spec");
    if (jm.contains("measurements")) {
      if (!jm["measurements"].is_array()) fail(mw, ": 'measurements' is not an array");
      for (const auto& x : jm["measurements"])
        m.measurements.push_back(parse_measurement(x, mw, int(p.devices.size())));
    }
    p.models.push_back(std::move(m));
  }
  if (j.contains("fit")) p.fit = j["fit"];
  p.smooth_probes();
  return p;
}

Profile load_profile(const std::string& path) {
  return parse_profile(read_text_file(path, "profile"), path);
}

void save_profile(const std::string& path, const Profile& p) {
  write_file_atomic(path, profile_to_json(p).dump(1) + "\n");
}

void check_same_settings(const Profile& p, const ProfileSettings& w, const std::string& origin) {
  const json have = settings_json(p.settings), want = settings_json(w);
  for (const auto& [key, value] : want.items()) {
    if (have.value(key, json()) != value)
      fail("profile '", origin, "' was measured with ", key, " = ", have.value(key, json()).dump(),
           ", this run asks for ", value.dump(),
           ": rerun with the profile's settings to resume it, or write a new --out");
  }
}

ProfileSettings settings_for(const MeasureConfig& cfg, Shape input, int classes) {
  ProfileSettings s;
  s.input = input;
  s.classes = classes;
  s.backend = backend_name(cfg.backend);
  s.measure = cfg;
  return s;
}

bool measure_profile(Profile& p, std::span<const Candidate> plan, const MeasureConfig& cfg,
                     const MeasureRun& run,
                     const std::function<void(const MeasureProgress&)>& progress,
                     const std::function<void()>& save) {
  check_measure_config(cfg);
  if (run.rounds < 1 || run.rounds > 100) fail("rounds ", run.rounds, " is out of range [1, 100]");
  // The device setup: the same as one already in the profile, or new (only while the profile
  // holds no measurement from another setup: one profile, one device).
  const json device = describe_device(cfg.backend, cfg.threads);
  int device_index = -1;
  for (size_t i = 0; i < p.devices.size(); ++i) {
    if (!same_device_setup(p.devices[i], device)) {
      bool used = false;
      for (const auto& m : p.models)
        for (const auto& x : m.measurements) used |= x.device == int(i);
      if (used)
        fail("the profile was measured on ", device_summary(p.devices[i]), "; this run is ",
             device_summary(device), ": write it to another --out");
    } else if (p.devices[i] == device) {
      device_index = int(i);
    }
  }
  if (device_index < 0) {
    p.devices.push_back(device);
    device_index = int(p.devices.size()) - 1;
  }
  // The plan's models, added to the profile (analytics from the spec; bad specs stop here).
  std::vector<int> index;
  for (const auto& c : plan) {
    if (c.spec.name.empty()) fail("a model to measure has no name (its id in the profile)");
    int i = p.find(c.spec.name);
    if (i < 0) {
      const Graph g = build_graph(c.spec);
      const Analytics a = analyze(g);
      ProfileModel m;
      m.id = c.spec.name;
      m.space = c.space;
      m.vars = c.vars;
      m.params = a.params;
      m.inference_params = a.inference_params;
      m.flops = a.flops;
      m.spec = c.spec;
      p.models.push_back(std::move(m));
      i = int(p.models.size()) - 1;
    }
    index.push_back(i);
  }
  int total = 0;
  for (int i : index)
    total += std::max(0, run.rounds - int(p.models[size_t(i)].measurements.size()));
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto last_save = t0;
  int done = 0;
  auto finish = [&] {
    p.smooth_probes();  // the new measurements' neighbours
    p.updated = utc_now_iso();
    if (p.created.empty()) p.created = p.updated;
    if (save) save();
  };
  for (int round = 1; round <= run.rounds; ++round) {
    for (int i : index) {
      ProfileModel& m = p.models[size_t(i)];
      if (int(m.measurements.size()) >= round) continue;
      if (run.stop && run.stop->load()) {
        finish();
        return false;
      }
      Measurement x = measure_latency(m.spec, cfg);
      x.round = round;
      x.device = device_index;
      m.measurements.push_back(x);
      ++done;
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      if (progress) {
        MeasureProgress mp;
        mp.done = done;
        mp.total = total;
        mp.eta_seconds = elapsed / done * (total - done);
        mp.model = &m;
        mp.measurement = &m.measurements.back();
        progress(mp);
      }
      if (std::chrono::duration<double>(Clock::now() - last_save).count() >=
          run.save_interval_seconds) {
        finish();
        last_save = Clock::now();
      }
    }
  }
  finish();
  return true;
}

}  // namespace iotnas::calib
