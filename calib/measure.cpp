#include "calib/measure.hpp"

#include <omp.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "engine/model.hpp"
#include "engine/program.hpp"
#include "engine/reference_models.hpp"
#include "engine/util/rng.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"
#include "kernels/cpu_features.hpp"

namespace iotnas::calib {

void check_measure_config(const MeasureConfig& c) {
  if (c.threads < 1 || c.threads > kMaxThreads)
    fail("threads ", c.threads, " is out of range [1, ", kMaxThreads, "]");
  if (c.warmup < 0 || c.warmup > kMaxWarmup)
    fail("warmup ", c.warmup, " is out of range [0, ", kMaxWarmup, "]");
  if (!(c.warmup_ms >= 0 && c.warmup_ms <= kMaxWarmupMs))
    fail("warmup_ms ", c.warmup_ms, " is out of range [0, ", kMaxWarmupMs, "]");
  if (c.repeats < 1 || c.repeats > kMaxRepeats)
    fail("repeats ", c.repeats, " is out of range [1, ", kMaxRepeats, "]");
  if (!(c.noise_threshold > 0)) fail("noise threshold ", c.noise_threshold, " must be > 0");
  if (c.max_attempts < 1 || c.max_attempts > kMaxAttempts)
    fail("max attempts ", c.max_attempts, " is out of range [1, ", kMaxAttempts, "]");
}

Measurement summarize_times(std::vector<double> t) {
  IOTNAS_ASSERT(!t.empty());
  Measurement m;
  m.repeats = int(t.size());
  double sum = 0;
  for (double x : t) sum += x;
  m.mean_ms = sum / double(t.size());
  std::sort(t.begin(), t.end());
  const size_t n = t.size();
  m.median_ms = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  m.min_ms = t.front();
  m.max_ms = t.back();
  // Quartiles by linear interpolation; the interquartile range is what one preempted run
  // cannot move, unlike max - min.
  auto quantile = [&](double q) {
    const double pos = q * double(n - 1);
    const size_t lo = size_t(pos);
    const size_t hi = std::min(lo + 1, n - 1);
    return t[lo] + (pos - double(lo)) * (t[hi] - t[lo]);
  };
  m.spread = m.median_ms > 0 ? (quantile(0.75) - quantile(0.25)) / m.median_ms : 0;
  return m;
}

namespace {

// Sets the OpenMP thread count for a scope and restores it afterwards.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : saved_(omp_get_max_threads()) {
    omp_set_num_threads(threads);
  }
  ~ThreadScope() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string read_first_line(const char* path) {
  std::ifstream f(path);
  std::string line;
  if (f) std::getline(f, line);
  return line;
}

}  // namespace

namespace {

using M = MeasureConfig;
using fields::at;

const std::vector<fields::Field<M>> kMeasureFields = {
    {.key = "threads",
     .ref = at<&M::threads>,
     .help = "OpenMP threads while timing",
     .min = 1,
     .max = kMaxThreads,
     .flag = "--threads"},
    {.key = "repeats",
     .ref = at<&M::repeats>,
     .help = "Timed runs per measurement",
     .min = 1,
     .max = kMaxRepeats,
     .flag = "--repeats"},
    {.key = "warmup",
     .ref = at<&M::warmup>,
     .help = "Untimed runs first (at least 5 ms of them)",
     .min = 0,
     .max = kMaxWarmup,
     .flag = "--warmup"},
    {.key = "warmup_ms",
     .ref = at<&M::warmup_ms>,
     .help = "Keep warming up until this many ms have passed",
     .min = 0,
     .max = kMaxWarmupMs},
    {.key = "noise_threshold",
     .ref = at<&M::noise_threshold>,
     .help = "Spread (interquartile range / median) above which a measurement is repeated, then "
             "flagged",
     .min = 0,
     .min_open = true,
     .flag = "--noise-threshold"},
    {.key = "max_attempts",
     .ref = at<&M::max_attempts>,
     .help = "Tries per measurement while it is noisy",
     .min = 1,
     .max = kMaxAttempts,
     .flag = "--attempts"},
    {.key = "seed",
     .ref = at<&M::seed>,
     .help = "Seed for model sampling and weights",
     .flag = "--seed"},
};

}  // namespace

std::span<const fields::Field<MeasureConfig>> measure_fields() {
  return kMeasureFields;
}

Measurement measure_latency(const ModelSpec& spec, const MeasureConfig& cfg) {
  check_measure_config(cfg);
  const Model folded = fold_batch_norm(make_model(spec, cfg.seed));
  std::vector<float> input(size_t(folded.graph.input.size()));
  Rng gen(cfg.seed);
  for (float& x : input) x = float(gen.normal());
  std::vector<float> state = folded.state;

  ThreadScope threads(cfg.threads);
  ProgramOptions po;
  po.backend = cfg.backend;
  po.batch = 1;
  po.mode = Mode::infer;
  auto program = compile(folded.graph, po, {folded.params.data(), nullptr, state.data()});

  const double probe = cfg.speed_probe ? time_speed_probe(cfg.backend) : 0.0;
  Measurement best;
  for (int attempt = 1; attempt <= cfg.max_attempts; ++attempt) {
    const auto w0 = Clock::now();
    for (int i = 0; i < cfg.warmup || ms_since(w0) < cfg.warmup_ms; ++i) {
      program->forward(input.data(), 1);
      if (i > 1000000) break;
    }
    std::vector<double> times(size_t(cfg.repeats));
    for (double& t : times) {
      const auto t0 = Clock::now();
      program->forward(input.data(), 1);
      t = ms_since(t0);
    }
    Measurement m = summarize_times(std::move(times));
    if (attempt == 1 || m.spread < best.spread) best = m;
    best.attempts = attempt;
    if (best.spread <= cfg.noise_threshold) break;
  }
  best.noisy = best.spread > cfg.noise_threshold;
  best.probe_ms = probe;
  if (cfg.layer_times) {
    // Reads the clock after every computed layer; per layer, the median over the forwards.
    std::vector<std::vector<double>> per(folded.graph.nodes.size());
    Clock::time_point last;
    program->set_hook(
        [&](int node, float*, int64_t) {
          const auto now = Clock::now();
          per[size_t(node)].push_back(
              std::chrono::duration<double, std::milli>(now - last).count());
          last = now;
        },
        HookScope::all_maps);
    for (int r = 0; r < cfg.repeats; ++r) {
      last = Clock::now();
      program->forward(input.data(), 1);
    }
    program->set_hook(nullptr);
    for (size_t i = 0; i < per.size(); ++i) {
      auto& v = per[i];
      if (v.empty()) continue;
      std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
      best.layer_ms[i == 0 ? std::string() : folded.graph.nodes[i].layer.name] = v[v.size() / 2];
    }
  }
  const float* logits = program->logits();
  IOTNAS_ASSERT(std::isfinite(logits[0]), "non-finite output while timing " + spec.name);
  best.time = utc_now_iso();
  return best;
}

double time_speed_probe(BackendKind backend) {
  struct Probe {
    Model model;
    std::vector<float> state, input;
    std::unique_ptr<Program> program;
  };
  static std::mutex mu;
  static std::map<int, std::unique_ptr<Probe>> probes;  // by backend
  std::lock_guard<std::mutex> lock(mu);
  auto& probe = probes[int(backend)];
  if (!probe) {
    probe = std::make_unique<Probe>();
    probe->model = fold_batch_norm(make_model(reference_model("plain-14k"), 1));
    probe->state = probe->model.state;
    probe->input.assign(size_t(probe->model.graph.input.size()), 0.5f);
    ProgramOptions po;
    po.backend = backend;
    po.batch = 1;
    po.mode = Mode::infer;
    probe->program =
        compile(probe->model.graph, po, {probe->model.params.data(), nullptr, probe->state.data()});
  }
  for (int i = 0; i < 3; ++i) probe->program->forward(probe->input.data(), 1);
  std::vector<double> t(10);
  for (double& x : t) {
    const auto t0 = Clock::now();
    probe->program->forward(probe->input.data(), 1);
    x = ms_since(t0);
  }
  std::nth_element(t.begin(), t.begin() + 5, t.end());
  return t[5];
}

std::string utc_now_iso() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json describe_device(BackendKind backend, int threads) {
  const auto& cpu = kernels::cpu_features();
  nlohmann::json d;
  d["cpu"] = cpu.model;
  d["isa"] = cpu.isa_list();
  d["logical_cpus"] = cpu.logical_cpus;
  const std::string governor =
      read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  d["governor"] = governor.empty() ? "unreadable" : governor;
  const std::string max_khz =
      read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  if (!max_khz.empty()) d["max_mhz"] = std::atof(max_khz.c_str()) / 1000.0;
  utsname u{};
  if (uname(&u) == 0) {
    d["os"] = std::string(u.sysname) + " " + u.release;
    d["machine"] = u.machine;
    d["host"] = u.nodename;
  }
  const std::string board = read_first_line("/proc/device-tree/model");
  if (!board.empty()) d["board"] = board.c_str();  // NUL-terminated in the device tree
  d["iotnas_version"] = IOTNAS_VERSION;
  d["build"] = {{"type", IOTNAS_BUILD_TYPE},       {"compiler", IOTNAS_COMPILER},
                {"arch", IOTNAS_SYSTEM_PROCESSOR}, {"dnnl", bool(IOTNAS_DNNL)},
                {"native", bool(IOTNAS_NATIVE)},   {"sanitize", bool(IOTNAS_SANITIZE)}};
  const auto& b = backend_info(backend);
  d["backend"] = b.name;
  if (!b.version.empty()) d["backend_version"] = b.version;
  d["threads"] = threads;
  return d;
}

bool same_device_setup(const nlohmann::json& a, const nlohmann::json& b) {
  for (const char* key : {"cpu", "logical_cpus", "machine", "backend", "threads", "build"})
    if (a.value(key, nlohmann::json()) != b.value(key, nlohmann::json())) return false;
  return true;
}

std::string device_summary(const nlohmann::json& d) {
  std::string s = d.value("cpu", std::string("unknown CPU"));
  s += ", " + d.value("backend", std::string("?"));
  if (d.contains("backend_version")) s += " " + d["backend_version"].get<std::string>();
  const int t = d.value("threads", 0);
  s += ", " + std::to_string(t) + (t == 1 ? " thread" : " threads");
  return s;
}

}  // namespace iotnas::calib
