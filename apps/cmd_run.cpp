// iotnas run: the whole loop into a run directory; iotnas solve / front / export / report:
// answers from a run directory's experiment store (docs/run.md).
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/cluster.hpp"
#include "apps/commands.hpp"
#include "apps/config.hpp"
#include "apps/estimate.hpp"
#include "apps/pipeline.hpp"
#include "apps/plan.hpp"
#include "apps/progress.hpp"
#include "apps/report.hpp"
#include "apps/shard.hpp"
#include "apps/store/store.hpp"
#include "engine/checkpoint.hpp"
#include "engine/model.hpp"
#include "engine/util/files.hpp"
#include "kernels/base/error.hpp"
#include "kernels/round/round.hpp"
#include "quant/format.hpp"
#include "search/front.hpp"
#include "search/law.hpp"

namespace iotnas::apps {

namespace {

using nlohmann::json;

struct SolveOpts {
  std::string run, profile, device;
  int64_t max_weight_bytes = -1;
  double max_latency_ms = 0;
  int runners_up = 3;
  bool json = false;
};

int run_solve(const SolveOpts& o, bool latency_given) {
  if (o.max_weight_bytes < 0)
    fail("--max-weight-bytes ", o.max_weight_bytes, " is negative; give a number of bytes >= 0");
  if (latency_given && !(o.max_latency_ms > 0 && std::isfinite(o.max_latency_ms)))
    fail("--max-latency-ms ", o.max_latency_ms, " is not a positive number of milliseconds");
  if (o.runners_up < 0) fail("--runners-up must be >= 0");
  Store store = Store::open_readonly(o.run);
  std::optional<ProfileLatencies> profile;
  if (!o.profile.empty()) profile = profile_latencies(o.profile);
  const Results r = load_results(store, o.device, profile ? &*profile : nullptr);
  search::Limits lim;
  lim.max_weight_bytes = o.max_weight_bytes;
  if (latency_given) lim.max_latency_ms = o.max_latency_ms;
  const search::Solution s = search::solve(r.candidates, lim, o.runners_up);
  if (o.json) {
    std::cout << solution_json(r, s).dump() << "\n";
  } else {
    std::cout << solution_text(r, s);
  }
  return s.feasible ? 0 : 3;
}

struct FrontOpts {
  std::string run, csv, device;
  bool json = false;
};

int run_front(const FrontOpts& o) {
  Store store = Store::open_readonly(o.run);
  const Results r = load_results(store, o.device);
  const auto fronts = compute_fronts(r);  // the store's own are those of `iotnas run`
  const std::string csv = o.csv.empty() ? o.run + "/fronts.csv" : o.csv;
  write_file_atomic(csv, fronts_csv(r, fronts));
  if (o.json) {
    json j = json::object();
    for (const auto& f : fronts) {
      json pts = json::array();
      for (int i : f.points) {
        const auto& c = r.candidates[i];
        pts.push_back(
            {{"model_id", r.info[i].model_id},
             {"space", c.space},
             {"w", c.w},
             {"t", c.t},
             {"accuracy", c.accuracy},
             {"weight_bytes", c.weight_bytes},
             {"latency_ms", std::isnan(c.latency_ms) ? json(nullptr) : json(c.latency_ms)}});
      }
      j[f.name] = pts;
    }
    std::cout << j.dump() << "\n";
  } else {
    for (const auto& f : fronts) {
      if (f.name == "memory:all") continue;
      std::cout << front_table(r, f) << "\n";
    }
    if (csv != "-") std::cout << "wrote " << csv << "\n";
  }
  return 0;
}

struct ExportOpts {
  std::string run, format, out;
  int64_t model = 0;
};

int run_export(const ExportOpts& o) {
  const quant::FloatFormat f = quant::parse_format(o.format);
  Store store = Store::open_readonly(o.run);
  const auto m = store.model(o.model);
  if (!m)
    fail("no model ", o.model, " in ", store.path(), "; `iotnas front --run ", o.run,
         "` lists the model ids");
  // The model's most accurate training run.
  std::optional<RunRow> best;
  for (const auto& r : store.runs(false))
    if (r.model_id == o.model && (!best || r.test_accuracy > best->test_accuracy)) best = r;
  if (!best) fail("model ", o.model, " has not been trained in ", o.run, "; nothing to export");
  RunRow run = *store.run(best->id, true);
  Model model;
  model.spec = parse_spec(m->spec_json, store.path() + " model " + std::to_string(o.model));
  model.graph = build_graph(model.spec);
  if (run.params.empty() && !run.checkpoint_path.empty()) {
    Checkpoint ck = load_checkpoint(run.checkpoint_path);
    run.params = std::move(ck.params);
    run.state = std::move(ck.state);
  }
  if (int64_t(run.params.size()) != model.graph.num_params ||
      int64_t(run.state.size()) != model.graph.num_state)
    fail(store.path(), ": training run ", run.id, " holds ", run.params.size(),
         " parameters for a model of ", model.graph.num_params, "; the store is damaged");
  model.params = std::move(run.params);
  model.state = std::move(run.state);
  const Model inference = fold_batch_norm(model);
  std::vector<float> rounded(inference.params.size());
  kernels::round_array(inference.params.data(), rounded.data(), int64_t(rounded.size()), f);

  json j;
  j["format"] = "iotnas-export/1";
  j["model_id"] = m->id;
  j["space"] = m->space;
  j["name"] = m->name;
  j["number_format"] = {
      {"w", f.w}, {"t", f.t}, {"bits", 1 + f.w + f.t}, {"name", quant::format_name(f)}};
  j["accuracy"] = nullptr;
  for (const auto& a : store.accuracies(run.id))
    if (a.w == f.w && a.t == f.t) j["accuracy"] = a.accuracy;
  j["float32_test_accuracy"] = run.test_accuracy;
  j["params_count"] = int64_t(rounded.size());
  j["weight_bytes"] = quant::weight_bytes(int64_t(rounded.size()), f);
  j["spec"] = json::parse(spec_to_json(inference.spec, -1));
  j["params"] = rounded;
  write_file_atomic(o.out, j.dump() + "\n");
  std::fprintf(o.out == "-" ? stderr : stdout,
               "wrote %s: model %lld (%s) in %s, %lld parameters, %lld weight bytes\n",
               o.out.c_str(), (long long)m->id, m->name.c_str(), quant::format_label(f).c_str(),
               (long long)rounded.size(),
               (long long)quant::weight_bytes(int64_t(rounded.size()), f));
  return 0;
}

struct ReportOpts {
  std::string run;
  bool no_plots = false;
};

int run_report(const ReportOpts& o) {
  Store store = Store::open_readonly(o.run);
  ReportOptions ro;
  ro.plots = !o.no_plots;
  for (const auto& p : write_report(store, o.run, ro)) std::printf("wrote %s\n", p.c_str());
  return 0;
}

std::atomic<bool> g_stop{false};
void on_run_stop_signal(int) {
  g_stop.store(true);
}

struct RunOpts {
  std::string config, out = "iotnas-run", budget, shard;
  int threads = 0;
  bool plan_only = false;
};

// SIGINT, SIGTERM, and SIGUSR1/SIGUSR2 (which mpirun forwards to every rank, where it turns SIGTERM
// into SIGKILL a second later): finish the unit in hand, commit, exit 75.
void on_signals(void (*handler)(int)) {
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2}) std::signal(sig, handler);
}

// OpenMP threads per process: --threads, else the config's, else OMP_NUM_THREADS (OpenMP reads
// it), else SLURM_CPUS_PER_TASK in a Slurm job; 0 leaves OpenMP's default (every core).
int resolve_threads(int flag, int config) {
  if (flag > 0) return flag;
  if (config > 0) return config;
  if (std::getenv("OMP_NUM_THREADS")) return 0;
  const char* slurm = std::getenv("SLURM_CPUS_PER_TASK");
  if (slurm && std::getenv("SLURM_JOB_ID")) return std::max(0, std::atoi(slurm));
  return 0;
}

void print_summary(Progress& progress, const RunSummary& s, const std::string& out,
                   bool ranks = false) {
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "%s: %d candidates, %d trained, %d reused, %d failed, %d sweeps, %lld formats evaluated, "
      "%.1fs (load %.1f, search %.1f, calibrate %.1f, select %.1f, train %.1f, sweep "
      "%.1f, answers %.1f)",
      s.stopped ? "stopped (rerun the same command to resume)" : "done", s.candidates, s.trained,
      s.reused, s.failed, s.sweeps_done, (long long)s.formats_evaluated, s.total_seconds,
      s.seconds.load, s.seconds.search, s.seconds.calibrate, s.seconds.select, s.seconds.train,
      s.seconds.sweep, s.seconds.answers);
  progress.line(buf);
  const double loop = s.total_seconds - s.seconds.train - s.seconds.sweep;
  std::snprintf(buf, sizeof buf,
                "loop overhead (all but training and sweeps): %.1fs, %.1f%% of the wall time", loop,
                s.total_seconds > 0 ? 100 * loop / s.total_seconds : 0.0);
  if (!ranks) progress.line(buf);  // over ranks, train and sweep are sums of the ranks' times
  if (!s.stopped) progress.line("report: " + out + "/report.md");
}

void print_dispatch(Progress& progress, const DispatchStats& d) {
  if (d.ranks == 0) return;
  int units = 0;
  std::string per;
  for (int u : d.units_per_rank) {
    units += u;
    per += (per.empty() ? "" : " ") + std::to_string(u);
  }
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "mpi: %d ranks, units per rank [%s]; rank 0 handed out %d units in %.1fs: CPU "
                "%.2f ms per unit handling messages, %.2f ms with its idle waits",
                d.ranks, per.c_str(), units, d.wall_seconds,
                units > 0 ? 1e3 * d.busy_cpu_seconds / units : 0.0,
                units > 0 ? 1e3 * d.cpu_seconds / units : 0.0);
  progress.line(buf);
}

void print_plan(Progress& progress, const std::string& out, int threads) {
  const auto doc = read_plan(out);
  if (!doc) return;
  progress.line(plan_summary(*doc, measure_speed(*doc, out, threads), threads));
  progress.line("wrote " + out + "/" + kPlanFile + " (run it: `iotnas run --out " + out +
                "`, `--shard I/N`, or `iotnas slurm`)");
}

int run_shard_cmd(const RunOpts& o, Progress& progress, const RunHooks& hooks) {
  const auto [shard, shards] = parse_shard(o.shard);
  if (o.plan_only) fail("--plan-only and --shard do not go together: make the plan first");
  if (launched_by_mpi())
    fail(
        "--shard runs one shard in one process; start it without mpirun/srun --mpi (a job "
        "array runs one per task), or drop --shard to share the work over the MPI ranks");
  std::optional<RunConfig> given;
  if (!o.config.empty() || !o.budget.empty())
    given = o.config.empty() ? budget_preset(o.budget) : load_run_config(o.config, o.budget);
  on_signals(on_run_stop_signal);
  const RunSummary s = run_shard(o.out, shard, shards, given ? &*given : nullptr,
                                 resolve_threads(o.threads, 0), hooks);
  on_signals(SIG_DFL);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "shard %d/%d %s: %d items, %d trained, %d reused, %d failed, %d sweeps, %.1fs",
                shard, shards, s.stopped ? "stopped (rerun it to resume)" : "done", s.candidates,
                s.trained, s.reused, s.failed, s.sweeps_done, s.total_seconds);
  progress.line(buf);
  if (!s.stopped) progress.line("merge the shards when all are done: iotnas merge --run " + o.out);
  return s.stopped ? 75 : 0;
}

// Under mpirun/srun: rank 0 makes the plan and hands out its items; the other ranks work.
int run_mpi(const RunOpts& o, RunConfig c, Progress& progress, const RunHooks& hooks) {
  MpiJob job;
  on_signals(on_run_stop_signal);
  if (job.rank() != 0) return job.work(c.threads, &g_stop);
  progress.line("iotnas run: budget " + c.budget + ", " + c.dataset + ", into " + o.out + ", " +
                std::to_string(job.size()) + " MPI ranks");
  DispatchStats stats;
  RunOptions ro;
  ro.plan_only = o.plan_only;
  if (!o.plan_only && job.size() > 1) ro.execute = job.executor(c.threads, stats);
  RunSummary s;
  try {
    s = run_pipeline(c, o.out, hooks, ro);
  } catch (...) {
    job.release_workers();
    throw;
  }
  job.release_workers();
  on_signals(SIG_DFL);
  if (s.planned) {
    print_plan(progress, o.out, c.threads);
    return 0;
  }
  print_dispatch(progress, stats);
  print_summary(progress, s, o.out, stats.ranks > 1);
  return s.stopped ? 75 : 0;
}

int run_run(const RunOpts& o) {
  Progress progress;
  RunHooks hooks;
  hooks.line = [&](const std::string& s) { progress.line(s); };
  hooks.update = [&](const std::string& s) { progress.update(s); };
  hooks.stop = &g_stop;
  if (!o.shard.empty()) return run_shard_cmd(o, progress, hooks);
  RunConfig c = o.config.empty() ? budget_preset(o.budget.empty() ? "quick" : o.budget)
                                 : load_run_config(o.config, o.budget);
  c.threads = resolve_threads(o.threads, c.threads);
  if (launched_by_mpi()) return run_mpi(o, c, progress, hooks);
  on_signals(on_run_stop_signal);
  progress.line("iotnas run: budget " + c.budget + ", " + c.dataset + ", into " + o.out);
  RunOptions ro;
  ro.plan_only = o.plan_only;
  const RunSummary s = run_pipeline(c, o.out, hooks, ro);
  on_signals(SIG_DFL);
  if (s.planned) {
    print_plan(progress, o.out, c.threads);
    return 0;
  }
  print_summary(progress, s, o.out);
  return s.stopped ? 75 : 0;
}

}  // namespace

void add_run_commands(CLI::App& app, Action& action) {
  {
    auto* cmd = app.add_subcommand(
        "run", "Search, calibrate, train, sweep formats and answer constraints (docs/run.md)");
    auto o = std::make_shared<RunOpts>();
    cmd->add_option("--config", o->config, "Run config (JSON, docs/run.md)");
    cmd->add_option("--out", o->out, "Run directory (created; an existing run is resumed)")
        ->capture_default_str();
    cmd->add_option("--budget", o->budget,
                    "smoke, quick or paper (default: the config's, or quick)")
        ->check(CLI::IsMember({"smoke", "quick", "paper"}));
    cmd->add_option("--threads", o->threads,
                    "OpenMP threads per process (default: the config's, else OMP_NUM_THREADS, "
                    "else SLURM_CPUS_PER_TASK in a Slurm job, else every core)")
        ->check(CLI::Range(1, 4096));
    cmd->add_flag("--plan-only", o->plan_only,
                  "Make the plan (search, calibration, selection), write DIR/plan.json, print "
                  "what it costs, and train nothing (docs/cluster.md)");
    cmd->add_option("--shard", o->shard,
                    "I/N: run only shard I (0..N-1) of DIR/plan.json into DIR/shards/I.sqlite "
                    "(a Slurm job array; `iotnas merge` folds the shards)");
    cmd->footer(
        "Under mpirun or srun --mpi=pmix, rank 0 makes the plan and hands out its models to the "
        "ranks; see docs/cluster.md.");
    cmd->callback([&action, o] { action = [o] { return run_run(*o); }; });
  }
  {
    auto* cmd = app.add_subcommand(
        "solve",
        "The most accurate (model, format) of a run under weight-memory and latency limits");
    auto o = std::make_shared<SolveOpts>();
    cmd->add_option("--run", o->run, "Run directory (holds iotnas.sqlite)")->required();
    cmd->add_option("--max-weight-bytes", o->max_weight_bytes,
                    "Weight-memory limit in bytes (bit-packed in the chosen format)")
        ->required();
    auto* lat = cmd->add_option("--max-latency-ms", o->max_latency_ms,
                                "Latency limit of the float32 model at batch 1, in ms");
    cmd->add_option("--profile", o->profile,
                    "Device profile (fitted) whose latencies to use instead of the run's");
    cmd->add_option("--device", o->device, "Device name in the store (default: the run's)");
    cmd->add_option("--runners-up", o->runners_up, "Runners-up to explain")->capture_default_str();
    cmd->add_flag("--json", o->json, "Print one JSON object (keys in docs/run.md)");
    cmd->callback([&action, o, lat] {
      const bool given = lat->count() > 0;
      action = [o, given] { return run_solve(*o, given); };
    });
  }
  {
    auto* cmd = app.add_subcommand("front", "Print a run's Pareto fronts and write them as CSV");
    auto o = std::make_shared<FrontOpts>();
    cmd->add_option("--run", o->run, "Run directory (holds iotnas.sqlite)")->required();
    cmd->add_option("--csv", o->csv, "CSV file to write (default: DIR/fronts.csv)");
    cmd->add_option("--device", o->device, "Device name in the store (default: the run's)");
    cmd->add_flag("--json", o->json, "Print the fronts as one JSON object");
    cmd->callback([&action, o] { action = [o] { return run_front(*o); }; });
  }
  {
    auto* cmd = app.add_subcommand(
        "export", "Write a trained model's spec and its weights rounded to a format (JSON)");
    auto o = std::make_shared<ExportOpts>();
    cmd->add_option("--run", o->run, "Run directory (holds iotnas.sqlite)")->required();
    cmd->add_option("--model", o->model, "Model id (as `iotnas front` and `solve` print it)")
        ->required();
    cmd->add_option("--format", o->format, "Number format: W:T, half, bfloat16 or float")
        ->required();
    cmd->add_option("--out", o->out, "Output file (iotnas-export/1 JSON, docs/run.md)")->required();
    cmd->callback([&action, o] { action = [o] { return run_export(*o); }; });
  }
  {
    auto* cmd = app.add_subcommand(
        "report", "Write DIR/report.md and report.html (fronts, tables, plots) for a run");
    auto o = std::make_shared<ReportOpts>();
    cmd->add_option("--run", o->run, "Run directory (holds iotnas.sqlite)")->required();
    cmd->add_flag("--no-plots", o->no_plots, "Tables only (do not run gnuplot)");
    cmd->callback([&action, o] { action = [o] { return run_report(*o); }; });
  }
}

}  // namespace iotnas::apps
