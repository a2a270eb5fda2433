// iotnas train / iotnas eval: train a model on a dataset with our own kernels; evaluate a
// checkpoint.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli_fields.hpp"
#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/progress.hpp"
#include "engine/checkpoint.hpp"
#include "engine/reference_models.hpp"
#include "engine/trainer.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

// `iotnas train`'s defaults: 10 epochs, and OptimizerConfig's (no Nesterov, no weight decay).
TrainRecipe train_defaults() {
  TrainRecipe r;
  r.epochs = 10;
  r.nesterov = false;
  r.weight_decay = 0;
  return r;
}

struct TrainOpts {
  std::string model, data, out, backend = "auto";
  int threads = 0;
  TrainRecipe recipe = train_defaults();
  uint64_t seed = 0;
  bool json = false;
  double val_fraction = 0;
  bool eval_each_epoch = true;
};

nlohmann::json epoch_json(const EpochStats& e) {
  nlohmann::json j = {{"epoch", e.epoch},
                      {"loss", e.loss},
                      {"train_accuracy", e.train_accuracy},
                      {"seconds", e.seconds},
                      {"images_per_second", e.images_per_second},
                      {"lr", e.lr}};
  if (e.test_accuracy >= 0) j["test_accuracy"] = e.test_accuracy;
  if (e.val_accuracy >= 0) j["val_accuracy"] = e.val_accuracy;
  return j;
}

int run_train(const TrainOpts& o) {
  if (!o.out.empty()) {
    // Before any data is loaded or any epoch is trained, not after.
    const std::filesystem::path dir = std::filesystem::path(o.out).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
      fail("--out '", o.out, "': directory '", dir.string(),
           "' does not exist; create it first (nothing was trained)");
    }
  }
  if (o.threads < 0 || o.threads > 1024)
    fail("--threads ", o.threads, " is out of range [0, 1024]");
  // The recipe's ranges (those of a run config), checked here before the data is loaded.
  const TrainRecipe& rc = o.recipe;
  fields::validate_flags(recipe_fields(), rc);
  TrainConfig cfg;
  apply_recipe(rc, cfg);
  cfg.seed = o.seed;
  cfg.val_fraction = o.val_fraction;
  cfg.eval_each_epoch = o.eval_each_epoch;
  validate(cfg.optimizer);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  const auto backend = parse_backend(o.backend);
  const DatasetInfo info = dataset_info(o.data);
  const ModelSpec spec = resolve_model(o.model, info.shape, info.classes);
  Model model = make_model(spec, o.seed);
  const Analytics a = analyze(model.graph);
  Progress progress;
  progress.line("loading " + o.data + " ...");
  const Dataset data = load_dataset(o.data);
  check_model_fits(model, data);

  cfg.backend = backend;

  char head[256];
  std::snprintf(head, sizeof head,
                "training %s (%lld params, %.3f MFLOP/image) on %s: %lld images, "
                "%d epochs, batch %d, backend %s, %d threads",
                spec.name.empty() ? o.model.c_str() : spec.name.c_str(), (long long)a.params,
                a.flops / 1e6, data.name.c_str(), (long long)data.train_size(), rc.epochs, rc.batch,
                backend_name(backend), omp_get_max_threads());
  progress.line(head);
  auto on_progress = [&](const TrainProgress& p) {
    char buf[256];
    if (p.finished) {
      const EpochStats& e = *p.finished;
      std::string tail;
      if (e.val_accuracy >= 0)
        tail += "  val " + std::to_string(e.val_accuracy * 100).substr(0, 5) + "%";
      if (e.test_accuracy >= 0)
        tail += "  test " + std::to_string(e.test_accuracy * 100).substr(0, 5) + "%";
      std::snprintf(buf, sizeof buf,
                    "epoch %d/%d  loss %.4f  train %.2f%%%s  %.0f img/s  %.1fs  ETA %s", e.epoch,
                    p.epochs, e.loss, e.train_accuracy * 100, tail.c_str(), e.images_per_second,
                    e.seconds, format_duration(p.eta_seconds).c_str());
      progress.line(buf);
    } else {
      std::snprintf(buf, sizeof buf, "epoch %d/%d  step %lld/%lld  loss %.4f  %.0f img/s  ETA %s",
                    p.epoch, p.epochs, (long long)p.step, (long long)p.steps_per_epoch, p.loss,
                    p.images_per_second, format_duration(p.eta_seconds).c_str());
      progress.update(buf);
    }
  };
  const TrainReport r = train(model, data, cfg, on_progress);

  nlohmann::json j;
  j["model"] = spec.name.empty() ? o.model : spec.name;
  j["data"] = data.name;
  j["test_accuracy"] = r.test_accuracy;
  if (r.val_accuracy >= 0) j["val_accuracy"] = r.val_accuracy;
  j["train_seconds"] = r.train_seconds;
  j["images_per_second"] = r.images_per_second;
  j["params"] = a.params;
  j["flops"] = a.flops;
  j["peak_activation_bytes"] = a.peak_activation_bytes;
  j["epochs"] = rc.epochs;
  j["batch"] = rc.batch;
  j["lr"] = rc.lr;
  j["optimizer"] = rc.optimizer;
  j["schedule"] = rc.schedule;
  j["seed"] = o.seed;
  j["backend"] = backend_name(backend);
  j["threads"] = omp_get_max_threads();
  j["iotnas_version"] = IOTNAS_VERSION;
  j["history"] = nlohmann::json::array();
  for (const auto& e : r.epochs) j["history"].push_back(epoch_json(e));
  if (!o.out.empty()) {
    save_checkpoint(o.out, {model.spec, model.params, model.state, j.dump()});
    progress.line("saved " + o.out);
  }
  char done[160];
  std::snprintf(done, sizeof done, "test accuracy %.2f%%, %.1fs training, %.0f images/s",
                r.test_accuracy * 100, r.train_seconds, r.images_per_second);
  progress.line(done);
  if (o.json) std::cout << j.dump() << "\n";
  return 0;
}

struct EvalOpts {
  std::string model, data, backend = "auto";
  int batch = 256, threads = 0;
  bool json = false;
};

int run_eval(const EvalOpts& o) {
  if (o.batch < 1 || o.batch > 65536) fail("--batch ", o.batch, " is out of range [1, 65536]");
  if (o.threads > 0) omp_set_num_threads(o.threads);
  const auto backend = parse_backend(o.backend);
  Checkpoint ck = load_checkpoint(o.model);
  Model model;
  model.spec = ck.spec;
  model.graph = build_graph(ck.spec);
  model.params = std::move(ck.params);
  model.state = std::move(ck.state);
  const Dataset data = load_dataset(o.data);
  check_model_fits(model, data);
  Evaluator ev(model, backend, o.batch);
  const EvalSet set = make_eval_set(data, true);
  const EvalResult r = ev.run(set);
  const Analytics a = analyze(model.graph);
  nlohmann::json j = {{"model", model.spec.name},
                      {"data", data.name},
                      {"test_accuracy", r.accuracy},
                      {"test_loss", r.loss},
                      {"images", r.images},
                      {"seconds", r.seconds},
                      {"images_per_second", r.images / r.seconds},
                      {"params", a.params},
                      {"flops", a.flops},
                      {"backend", backend_name(backend)}};
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%s on %s: test accuracy %.2f%% (%lld images, loss %.4f), %.0f images/s\n",
                model.spec.name.c_str(), data.name.c_str(), r.accuracy * 100, (long long)r.images,
                r.loss, r.images / r.seconds);
  }
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("train", "Train a model on a dataset with iotnas's own kernels");
  auto o = std::make_shared<TrainOpts>();
  cmd->add_option("--model", o->model,
                  "Model spec file (JSON) or ref:NAME (see `iotnas spec --list`)")
      ->required();
  cmd->add_option("--data", o->data,
                  "fashion-mnist, mnist:DIR, cifar10:DIR or synthetic[:...] (docs/data.md)")
      ->required();
  auto recipe = add_field_options(*cmd, recipe_fields(), o->recipe);
  recipe.at("--augment")->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--seed", o->seed, "Seed for weights, data order and augmentation")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--backend", o->backend, "auto, dnnl or portable")->capture_default_str();
  cmd->add_option("--val-fraction", o->val_fraction,
                  "Share of training images held out for validation")
      ->capture_default_str();
  cmd->add_flag("!--final-eval-only", o->eval_each_epoch,
                "Evaluate on the test set only after the last epoch");
  cmd->add_option("--out", o->out, "Write a checkpoint (spec, weights, training record) here");
  cmd->add_flag("--json", o->json, "Print one JSON object as the last line of stdout");
  cmd->callback([&action, o] { action = [o] { return run_train(*o); }; });
}

void add_eval_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a trained checkpoint on a dataset's test split");
  auto o = std::make_shared<EvalOpts>();
  cmd->add_option("--model", o->model, "Checkpoint written by `iotnas train --out`")->required();
  cmd->add_option("--data", o->data, "Dataset, as for train")->required();
  cmd->add_option("--batch", o->batch, "Evaluation batch size")->capture_default_str();
  cmd->add_option("--threads", o->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--backend", o->backend, "auto, dnnl or portable")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([&action, o] { action = [o] { return run_eval(*o); }; });
}

}  // namespace iotnas::apps
