#include "apps/shard.hpp"

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/plan.hpp"
#include "apps/running.hpp"
#include "apps/units.hpp"
#include "engine/data.hpp"
#include "engine/util/json.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string shards_dir(const std::string& dir) {
  return (fs::path(dir) / kShardDir).string();
}

std::string shard_file(int shard) {
  return std::to_string(shard) + ".sqlite";
}

// The shard stores in DIR/shards, by shard number.
std::vector<std::pair<int, std::string>> shard_files(const std::string& dir) {
  std::vector<std::pair<int, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(shards_dir(dir), ec)) {
    const std::string name = e.path().filename().string();
    int n = -1;
    const auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), n);
    if (err == std::errc() && n >= 0 && std::string(end) == ".sqlite") out.push_back({n, name});
  }
  std::sort(out.begin(), out.end());
  return out;
}

PlanDoc require_plan(const std::string& dir) {
  auto doc = read_plan(dir);
  if (!doc)
    fail("no plan in ", dir, " (", (fs::path(dir) / kPlanFile).string(),
         "): write it first with `iotnas run --plan-only --out ", dir,
         "` (`iotnas slurm` does), then run the shards");
  return std::move(*doc);
}

// The shard store's plan, checked against `hash` (what `what` is, for messages).
void check_shard_plan(Store& s, const std::string& hash, const std::string& dir) {
  const auto plan = s.meta("plan");
  if (plan && *plan != hash)
    fail(s.path(), " belongs to another plan (", plan->substr(0, 12), "..., not ",
         hash.substr(0, 12), "... in ", (fs::path(dir) / kPlanFile).string(),
         "): merge it into the run it came from, or remove it, or use another --out");
  const auto version = s.meta("iotnas_version");
  if (version && *version != IOTNAS_VERSION)
    fail(s.path(), " was written by iotnas ", printable(*version), ", not ", IOTNAS_VERSION,
         ": run the shards and the merge with one iotnas version");
}

// Folds one shard store into `main` (in one transaction); counts the new rows.
void fold(Store& main, Store& shard, MergeSummary& m) {
  const int64_t runs = main.count("runs"), acc = main.count("accuracies"),
                sweeps = main.count("sweeps");
  main.transaction([&] {
    for (const RunRow& r : shard.runs(false)) {
      const int64_t model = main.put_model(*shard.model(r.model_id));
      int64_t id = 0;
      if (auto have = main.run_by_key(r.key, false)) {
        id = have->id;
      } else {
        RunRow full = *shard.run(r.id, true);
        full.model_id = model;
        id = main.put_run(full);
      }
      for (AccuracyRow a : shard.accuracies(r.id)) {
        a.run_id = id;
        main.put_accuracy(a);
      }
      for (SweepRow s : shard.sweeps())
        if (s.run_id == r.id) {
          s.run_id = id;
          main.put_sweep(s);
        }
    }
    for (const auto& key : shard.artifact_keys("failed-run")) {
      if (main.artifact("failed-run", key)) continue;
      json j = json::parse(shard.artifact("failed-run", key).value_or("{}"), nullptr, false);
      if (!j.is_object()) continue;
      if (auto mdl = shard.model(j.value("model_id", int64_t(0))))
        j["model_id"] = main.put_model(*mdl);
      main.put_artifact("failed-run", key, j.dump());
      m.failed++;
    }
  });
  m.runs += main.count("runs") - runs;
  m.accuracies += main.count("accuracies") - acc;
  m.sweeps += main.count("sweeps") - sweeps;
}

}  // namespace

std::pair<int, int> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  int i = -1, n = 0;
  auto num = [](std::string_view s, int& v) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && end == s.data() + s.size();
  };
  if (slash == std::string::npos || !num(std::string_view(text).substr(0, slash), i) ||
      !num(std::string_view(text).substr(slash + 1), n) || n < 1)
    fail("--shard '", printable(text), "' is not I/N (e.g. 3/8: shard 3 of 8, I from 0 to N-1)");
  if (i < 0 || i >= n)
    fail("--shard ", text, ": the shard index must be from 0 to ", n - 1, " (Slurm: --array=0-",
         n - 1, ")");
  return {i, n};
}

void refuse_other_shards(const std::string& dir, const std::string& hash) {
  for (const auto& [n, file] : shard_files(dir)) {
    Store s = Store::open_readonly_file(shards_dir(dir), file);
    const auto plan = s.meta("plan");
    if (plan && *plan != hash)
      fail(dir, " holds shards of another plan (", s.path(), "): merge them (`iotnas merge --run ",
           dir, "`) and remove ", shards_dir(dir), ", or give another --out");
  }
}

std::vector<int> item_units(const Plan& plan, Store& store) {
  std::vector<int> out;
  for (int i = 0; i < item_count(plan); ++i) {
    const std::string& key = item_key(plan, i);
    int d = 0;
    if (store.artifact("failed-run", key)) {
      d = 2;
    } else if (auto r = store.run_by_key(key, false)) {
      d = 1 + int(store.sweep(r->id, plan.eval_key).has_value());
    }
    out.push_back(d);
  }
  return out;
}

RunSummary run_shard(const std::string& dir, int shard, int shards, const RunConfig* given,
                     int threads, const RunHooks& hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  PlanDoc doc = require_plan(dir);
  if (given && plan_hash(doc.plan, *given) != doc.plan.hash)
    fail((fs::path(dir) / kPlanFile).string(),
         " was made from another config than the one given: run the shards without --config "
         "and --budget (they read the plan's), or give another --out");
  if (threads > 0) doc.config.threads = threads;
  if (doc.config.threads > 0) omp_set_num_threads(doc.config.threads);
  Store store = Store::open_file(shards_dir(dir), shard_file(shard));
  check_shard_plan(store, doc.plan.hash, dir);
  if (const auto n = store.meta("shards"); n && *n != std::to_string(shards))
    fail(store.path(), " is shard ", shard, " of ", *n, ", not of ", shards,
         ": run every shard with the same N");
  store.set_meta("plan", doc.plan.hash);
  store.set_meta("shards", std::to_string(shards));
  clear_all_running(store);
  const RunConfig& c = doc.config;
  if (hooks.line)
    hooks.line("shard " + std::to_string(shard) + "/" + std::to_string(shards) + ": loading " +
               c.dataset + " ...");
  const Dataset data = load_dataset(c.dataset);
  const Dataset train_data = training_subset(data, c.training.train_images);
  const EvalSet eval_set = run_eval_set(c, data);
  if (train_data.train_size() != doc.plan.train_images || eval_set.size() != doc.plan.eval_images)
    fail(c.dataset, " is not the dataset the plan was made from (", train_data.train_size(),
         " training and ", eval_set.size(), " evaluation images, not ", doc.plan.train_images,
         " and ", doc.plan.eval_images, ")");
  RunSummary sum;
  const auto items = shard_items(doc.plan, c, shard, shards);
  sum.candidates = int(items.size());
  const ItemContext x{
      c, doc.plan, parse_backend(c.backend), train_data, eval_set, hooks.line, hooks.update, [&] {
        return hooks.stop && hooks.stop->load();
      }};
  run_items(x, items, store, "shard " + std::to_string(shard), sum);
  sum.stopped = hooks.stop && hooks.stop->load();
  sum.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

MergeSummary merge_run(const std::string& dir, const RunHooks& hooks) {
  const PlanDoc doc = require_plan(dir);
  const auto files = shard_files(dir);
  if (files.empty())
    fail("no shard stores in ", shards_dir(dir),
         ": run the shards first (`iotnas run --shard I/N --out ", dir, "`)");
  std::vector<Store> shards;
  for (const auto& [n, file] : files) {
    shards.push_back(Store::open_readonly_file(shards_dir(dir), file));
    if (!shards.back().meta("plan"))
      fail(shards.back().path(), " holds no plan: it is not an iotnas shard store");
    check_shard_plan(shards.back(), doc.plan.hash, dir);
  }
  Store main = Store::open(dir, false);
  MergeSummary m;
  for (Store& s : shards) {
    fold(main, s, m);
    m.shards++;
  }
  m.units = 2 * item_count(doc.plan);
  for (int d : item_units(doc.plan, main)) m.units_done += d;
  if (main.count("accuracies") > 0) {
    answer_stage(main, doc.config, dir, 0, hooks.line);
    m.answered = true;
  }
  return m;
}

}  // namespace iotnas::apps
