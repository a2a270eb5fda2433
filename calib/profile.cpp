#include "calib/profile.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
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

// Profiles are read strictly: a wrong type or an out-of-range size is one error line naming the
// file and the key ("profile 'p.json': \"models[3].vars\" must be ..."), never a JSON library
// exception. Unknown keys are ignored (a profile also holds what is only written for people).

// The value at a required key.
const json& need(fields::Reader& r, const char* key) {
  const json* v = r.sub(key);
  if (!v)
    fail(r.origin(), ": missing field '", key, "' in ", r.name(""),
         " (is this a profile written by `iotnas calib measure`?)");
  return *v;
}

template <typename T>
T required(fields::Reader& r, const char* key) {
  need(r, key);
  T v{};
  r.get(key, v);
  return v;
}

template <typename T>
T optional(fields::Reader& r, const char* key, T fallback) {
  r.get(key, fallback);
  return fallback;
}

[[noreturn]] void out_of_range(fields::Reader& r, const char* key, const json& v,
                               const std::string& rule) {
  fail(r.origin(), ": ", r.name(key), " is ", v.dump(), "; it must be ", rule);
}

// An integer at `key` (required unless `fallback` is given) in [min, max].
int64_t whole(fields::Reader& r, const char* key, int64_t min, int64_t max,
              std::optional<int64_t> fallback = std::nullopt) {
  const int64_t v = fallback ? optional(r, key, *fallback) : required<int64_t>(r, key);
  if (v < min || v > max)
    out_of_range(r, key, v, "in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

// Milliseconds (or a ratio of them) at `key`: finite and >= 0.
double time_ms(fields::Reader& r, const char* key, std::optional<double> fallback = std::nullopt) {
  const double v = fallback ? optional(r, key, *fallback) : required<double>(r, key);
  if (!(v >= 0) || !std::isfinite(v)) out_of_range(r, key, v, "a finite number >= 0");
  return v;
}

// An array of integers in [min, max] at a required key (absent: `fallback` when given).
std::vector<int> integers(fields::Reader& r, const char* key, int min, int max,
                          std::optional<std::vector<int>> fallback = std::nullopt) {
  const json* v = fallback ? r.sub(key) : &need(r, key);
  if (!v) return *fallback;
  const auto fits = [&](const json& e) {
    return e.is_number_integer() &&
           !(e.is_number_unsigned() && e.get<uint64_t>() > uint64_t(max)) &&
           e.get<int64_t>() >= min && e.get<int64_t>() <= max;
  };
  if (!v->is_array() || !std::all_of(v->begin(), v->end(), fits))
    out_of_range(
        r, key, *v,
        "an array of integers in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v->get<std::vector<int>>();
}

Measurement parse_measurement(const json& j, const std::string& origin, const std::string& where,
                              int num_devices) {
  fields::Reader r(j, where, origin);
  Measurement m;
  m.round = int(whole(r, "round", 0, kMaxRounds));
  m.device = int(whole(r, "device", 0, INT32_MAX));
  if (m.device >= num_devices)
    fail(origin, ": ", r.name("device"), ": device index ", m.device,
         " is not one of the profile's ", num_devices, " devices");
  m.mean_ms = time_ms(r, "mean_ms");
  m.median_ms = time_ms(r, "median_ms");
  m.min_ms = time_ms(r, "min_ms");
  m.max_ms = time_ms(r, "max_ms");
  m.spread = time_ms(r, "spread");
  m.repeats = int(whole(r, "repeats", 1, kMaxRepeats));
  m.attempts = int(whole(r, "attempts", 1, kMaxAttempts, 1));
  m.noisy = required<bool>(r, "noisy");
  m.time = optional(r, "time", std::string());
  m.probe_ms = time_ms(r, "probe_ms", 0.0);  // optional
  if (const json* l = r.sub("layer_ms")) {   // optional: profiles of earlier versions have none
    if (!l->is_object())
      fail(origin, ": ", r.name("layer_ms"), " must map layer names to milliseconds");
    for (auto it = l->begin(); it != l->end(); ++it) {
      const double ms = it->is_number() ? it->get<double>() : -1;
      if (!(ms >= 0) || !std::isfinite(ms))
        fail(origin, ": layer_ms of '", it.key(), "' is ", it->dump(), ", not a time");
      m.layer_ms[it.key()] = ms;
    }
  }
  if (!(m.median_ms > 0) || !(m.min_ms > 0))
    fail(origin, ": ", r.name("median_ms"), " ", m.median_ms, " is not a positive latency");
  return m;
}

// A device description (describe_device): an object whose keys that are read have their types.
void check_device(const json& d, const std::string& origin, const std::string& where) {
  fields::Reader r(d, where, origin);
  for (const char* key : {"cpu", "backend", "backend_version", "machine"})
    (void)optional(r, key, std::string());
  (void)optional(r, "threads", 0);
  (void)optional(r, "logical_cpus", 0);
}

void parse_settings(const json& s, const std::string& origin, ProfileSettings& out) {
  fields::Reader r(s, "settings", origin);
  const std::vector<int> input = integers(r, "input", 1, 4096);
  if (input.size() != 3) out_of_range(r, "input", input, "[C, H, W] with sizes in [1, 4096]");
  out.input = {input[0], input[1], input[2]};
  out.classes = int(whole(r, "classes", 2, 100000));
  out.backend = required<std::string>(r, "backend");
  // The measuring settings, by their field table. Profiles from before warmup_ms and max_attempts
  // existed lack them: they were measured with no warm-up time and one attempt.
  MeasureConfig& m = out.measure;
  m.warmup_ms = 0;
  m.max_attempts = 1;
  for (const auto& f : measure_fields()) {
    const std::string key = f.key;
    if (key != "warmup_ms" && key != "max_attempts") need(r, f.key);
    r.get(f.key, f.ref(m));
  }
  fields::validate(measure_fields(), m, origin, "settings");
}

ProfileModel parse_model(const json& jm, const std::string& origin, const std::string& where,
                         int num_devices) {
  fields::Reader r(jm, where, origin);
  ProfileModel m;
  m.id = required<std::string>(r, "id");
  const std::string mw = origin + " model '" + m.id + "'";
  m.space = optional(r, "space", std::string());
  m.vars = integers(r, "vars", INT32_MIN, INT32_MAX, std::vector<int>());
  m.params = whole(r, "params", 0, INT64_MAX);
  m.inference_params = whole(r, "inference_params", 0, INT64_MAX, m.params);
  m.flops = whole(r, "flops", 0, INT64_MAX);
  m.spec = parse_spec(need(r, "spec").dump(), mw + " spec");
  if (const json* x = r.sub("measurements")) {
    if (!x->is_array()) fail(origin, ": ", r.name("measurements"), " must be an array");
    for (size_t k = 0; k < x->size(); ++k)
      m.measurements.push_back(parse_measurement(
          (*x)[k], origin, where + ".measurements[" + std::to_string(k) + "]", num_devices));
  }
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
  const json j = parse_json_strict(text, "profile '" + origin + "'",
                                   "was it cut short? Measure again with `iotnas calib measure`");
  if (!j.is_object()) fail("profile '", origin, "' is not a JSON object");
  const std::string where = "profile '" + origin + "'";
  fields::Reader r(j, "", where);
  const std::string format = optional(r, "format", std::string());
  if (format != kProfileFormat)
    fail("profile '", origin, "' has format '", format.empty() ? "(none)" : format,
         "'; this iotnas reads '", kProfileFormat,
         "': measure the profile again with this version (`iotnas calib measure`)");
  Profile p;
  p.created = optional(r, "created", std::string());
  p.updated = optional(r, "updated", std::string());
  const json* s = r.sub("settings");
  if (!s || !s->is_object()) fail(where, ": missing object 'settings'");
  parse_settings(*s, where, p.settings);
  const json* devices = r.sub("devices");
  if (!devices || !devices->is_array()) fail(where, ": missing array 'devices'");
  for (size_t i = 0; i < devices->size(); ++i) {
    check_device((*devices)[i], where, "devices[" + std::to_string(i) + "]");
    p.devices.push_back((*devices)[i]);
  }
  const json* models = r.sub("models");
  if (!models || !models->is_array()) fail(where, ": missing array 'models'");
  for (size_t i = 0; i < models->size(); ++i) {
    ProfileModel m = parse_model((*models)[i], where, "models[" + std::to_string(i) + "]",
                                 int(p.devices.size()));
    if (p.find(m.id) >= 0) fail(where, " model '", m.id, "' appears twice");
    p.models.push_back(std::move(m));
  }
  if (const json* fit = r.sub("fit")) p.fit = *fit;
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
  if (run.rounds < 1 || run.rounds > kMaxRounds)
    fail("rounds ", run.rounds, " is out of range [1, ", kMaxRounds, "]");
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
