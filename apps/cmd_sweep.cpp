// iotnas sweep: a trained checkpoint evaluated under every float format T(w,t).
#include <omp.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/progress.hpp"
#include "engine/checkpoint.hpp"
#include "kernels/base/error.hpp"
#include "quant/sweep.hpp"

namespace iotnas::apps {

namespace {

struct SweepOpts {
  std::string model, data, types = "all", backend = "auto";
  int64_t limit = 0;
  int threads = 0;
  double tolerance_points = 0.5;
  bool csv = false, json = false;
};

nlohmann::json row_json(const quant::SweepRow& r) {
  return {{"type", quant::format_name(r.format)},
          {"w", r.format.w},
          {"t", r.format.t},
          {"bits", r.bits},
          {"test_accuracy", r.accuracy},
          {"weight_bytes", r.weight_bytes}};
}

int run_sweep(const SweepOpts& o) {
  if (o.threads < 0 || o.threads > 1024)
    fail("--threads ", o.threads, " is out of range [0, 1024]");
  if (o.threads > 0) omp_set_num_threads(o.threads);
  if (!(o.tolerance_points >= 0 && o.tolerance_points <= 100))
    fail("--tolerance ", o.tolerance_points, " is out of range: give accuracy points in [0, 100]");
  if (o.limit < 0) fail("--limit ", o.limit, " must be positive (0 = the whole test split)");
  const auto backend = parse_backend(o.backend);
  quant::SweepOptions so;
  so.formats = quant::parse_types(o.types);
  so.backend = backend;
  so.tolerance = o.tolerance_points / 100.0;

  Checkpoint ck = load_checkpoint(o.model);
  Model model;
  model.spec = ck.spec;
  model.graph = build_graph(ck.spec);
  model.params = std::move(ck.params);
  model.state = std::move(ck.state);
  Progress progress;
  progress.line("loading " + o.data + " ...");
  const Dataset data = load_dataset(o.data);
  check_model_fits(model, data);
  std::vector<int32_t> indices;
  if (o.limit > 0) {
    if (o.limit > data.test_size())
      fail("--limit ", o.limit, " exceeds the ", data.test_size(), " test images of ", data.name);
    indices = balanced_subset(data.test_labels, o.limit, data.classes);
  }
  const EvalSet set = make_eval_set(data, true, indices);

  char head[256];
  std::snprintf(head, sizeof head,
                "sweeping %s over %zu types on %lld %s test images, backend %s, %d threads",
                model.spec.name.c_str(), so.formats.size(), (long long)set.size(),
                data.name.c_str(), backend_name(backend), omp_get_max_threads());
  progress.line(head);
  so.progress = [&](const quant::SweepProgress& p) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "type %d/%d  %s  accuracy %.2f%%  ETA %s", p.done, p.total,
                  quant::format_label(p.row->format).c_str(), p.row->accuracy * 100,
                  format_duration(p.eta_seconds).c_str());
    progress.update(buf);
  };
  const quant::SweepResult r = quant::sweep(model, set, so);

  char done[200];
  std::snprintf(done, sizeof done, "float32 accuracy %.2f%%; %zu types in %.1fs (%.0f images/s)",
                r.float32_accuracy * 100, r.rows.size(), r.seconds,
                double(r.images) * double(r.rows.size() + 1) / r.seconds);
  progress.line(done);

  nlohmann::json best = nullptr;
  if (r.best >= 0) best = row_json(r.rows[size_t(r.best)]);
  nlohmann::json summary = {{"best", best},
                            {"float32_accuracy", r.float32_accuracy},
                            {"tolerance", so.tolerance},
                            {"images", r.images},
                            {"params", r.inference_params},
                            {"seconds", r.seconds},
                            {"model", model.spec.name},
                            {"data", data.name}};
  if (o.json) {
    for (const auto& row : r.rows) std::cout << row_json(row).dump() << "\n";
    std::cout << summary.dump() << "\n";
  } else if (o.csv) {
    std::printf("type,w,t,bits,test_accuracy,weight_bytes\n");
    for (const auto& row : r.rows)
      std::printf("%s,%d,%d,%d,%.6f,%lld\n", quant::format_name(row.format).c_str(), row.format.w,
                  row.format.t, row.bits, row.accuracy, (long long)row.weight_bytes);
  } else {
    std::printf("%-10s %2s %2s %4s %9s %12s\n", "type", "w", "t", "bits", "accuracy",
                "weight_bytes");
    for (const auto& row : r.rows)
      std::printf("%-10s %2d %2d %4d %8.2f%% %12lld\n", quant::format_name(row.format).c_str(),
                  row.format.w, row.format.t, row.bits, row.accuracy * 100,
                  (long long)row.weight_bytes);
  }
  if (!o.json) {
    if (r.best >= 0) {
      const auto& b = r.rows[size_t(r.best)];
      std::fprintf(stderr,
                   "best: %s (%d bits), %.2f%% vs %.2f%% in float32 (tolerance %.2f points), "
                   "%lld weight bytes\n",
                   quant::format_label(b.format).c_str(), b.bits, b.accuracy * 100,
                   r.float32_accuracy * 100, o.tolerance_points, (long long)b.weight_bytes);
    } else {
      std::fprintf(stderr, "best: none of the types is within %.2f points of float32 (%.2f%%)\n",
                   o.tolerance_points, r.float32_accuracy * 100);
    }
  }
  return 0;
}

}  // namespace

void add_sweep_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand(
      "sweep",
      "Evaluate a trained checkpoint under reduced-precision float formats T(w,t): every "
      "parameter, the input and every activation map rounded to the format");
  auto o = std::make_shared<SweepOpts>();
  cmd->add_option("--model", o->model, "Checkpoint written by `iotnas train --out`")->required();
  cmd->add_option("--data", o->data, "Dataset, as for train (its test split is used)")->required();
  cmd->add_option("--types", o->types,
                  "all (the 184 types T(w,t), w 1..8, t 1..23) or a list: half,bfloat16,float,4:3")
      ->capture_default_str();
  cmd->add_option("--limit", o->limit,
                  "Use the first N test images, class-balanced (0 = the whole test split)")
      ->capture_default_str();
  cmd->add_option("--tolerance", o->tolerance_points,
                  "For `best`: accuracy points below float32 still accepted")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--backend", o->backend, "auto, dnnl or portable")->capture_default_str();
  auto* csv =
      cmd->add_flag("--csv", o->csv, "CSV on stdout: type,w,t,bits,test_accuracy,weight_bytes");
  cmd->add_flag("--json", o->json,
                "One JSON object per type, then one with `best` (fewest bits within tolerance)")
      ->excludes(csv);
  cmd->footer(
      "Without --json the best type goes to stderr. weight_bytes = ceil(params * (1+w+t) / 8)\n"
      "over the inference model's parameters (batch norm folded).");
  cmd->callback([&action, o] { action = [o] { return run_sweep(*o); }; });
}

}  // namespace iotnas::apps
