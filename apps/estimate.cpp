#include "apps/estimate.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "apps/units.hpp"
#include "engine/data.hpp"
#include "engine/model.hpp"
#include "engine/trainer.hpp"

namespace iotnas::apps {

namespace {

namespace fs = std::filesystem;

// Seconds and estimated MACs of the plan's items finished in `store`.
void timed_items(const PlanDoc& doc, Store& store, double& seconds, double& macs) {
  for (int i = 0; i < item_count(doc.plan); ++i) {
    const auto run = store.run_by_key(item_key(doc.plan, i), false);
    if (!run) continue;
    const auto sweep = store.sweep(run->id, doc.plan.eval_key);
    if (!sweep) continue;
    seconds += run->train_seconds + sweep->seconds;
    macs += item_cost(doc.plan, doc.config, i);
  }
}

// Trains the plan's median-cost candidate for two epochs on 512 images and times the second (the
// first pays for setting up: oneDNN's primitives, first touches of memory).
Speed probe(const PlanDoc& doc) {
  const int n = item_count(doc.plan);
  std::vector<std::pair<double, int>> by_cost;
  for (int i = 0; i < n; ++i) by_cost.push_back({item_cost(doc.plan, doc.config, i), i});
  std::sort(by_cost.begin(), by_cost.end());
  const int item = by_cost[by_cost.size() / 2].second;
  const PlanModel& p = doc.plan.models[size_t(doc.plan.candidates[size_t(item)])];
  Dataset data = training_subset(load_dataset(doc.config.dataset), 512);
  const int64_t test = std::min<int64_t>(data.test_size(), 64);  // the test pass is not timed work
  data.test_images.resize(size_t(test * data.shape.size()));
  data.test_labels.resize(size_t(test));
  Model model = make_model(p.spec, doc.config.seeds.train);
  TrainConfig tc;
  apply_recipe(doc.config.training, tc);
  tc.epochs = 2;
  tc.backend = parse_backend(doc.config.backend);
  tc.eval_each_epoch = false;
  const TrainReport rep = train(model, data, tc);
  const double s = rep.epochs.back().seconds;
  const double macs = double(p.analytics.flops) / 2 * 3 * double(data.train_size());
  char buf[160];
  std::snprintf(buf, sizeof buf, "a probe here: the second epoch of %s on %lld images, %.2f s",
                p.spec.name.c_str(), (long long)data.train_size(), s);
  return {macs / std::max(s, 1e-6), buf};
}

}  // namespace

std::optional<Speed> timed_speed(const PlanDoc& doc, const std::string& dir) {
  double seconds = 0, macs = 0;
  std::error_code ec;
  if (fs::exists(fs::path(dir) / kStoreFile, ec)) {
    Store s = Store::open_readonly(dir);
    timed_items(doc, s, seconds, macs);
  }
  for (const auto& e : fs::directory_iterator(fs::path(dir) / kShardDir, ec)) {
    if (e.path().extension() != ".sqlite") continue;
    Store s =
        Store::open_readonly_file(e.path().parent_path().string(), e.path().filename().string());
    timed_items(doc, s, seconds, macs);
  }
  if (seconds > 0 && macs > 0) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "the run's own timings (%.0f s of finished items)", seconds);
    return Speed{macs / seconds, buf};
  }
  return std::nullopt;
}

Speed measure_speed(const PlanDoc& doc, const std::string& dir, int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  if (auto s = timed_speed(doc, dir)) return *s;
  if (item_count(doc.plan) == 0) return {1e9, "no items"};
  return probe(doc);
}

std::vector<double> item_seconds(const PlanDoc& doc, const Speed& speed) {
  std::vector<double> out;
  for (int i = 0; i < item_count(doc.plan); ++i)
    out.push_back(item_cost(doc.plan, doc.config, i) / speed.macs_per_second);
  return out;
}

std::string plan_summary(const PlanDoc& doc, const Speed& speed, int threads) {
  const Plan& p = doc.plan;
  std::map<std::string, int> per_space;
  for (int i : p.candidates) per_space[p.models[size_t(i)].space]++;
  std::string spaces;
  for (const auto& [space, k] : per_space)
    spaces += (spaces.empty() ? "" : ", ") + space + " " + std::to_string(k);
  double seconds = 0;
  for (double s : item_seconds(doc, speed)) seconds += s;
  const int cores = threads > 0 ? threads : omp_get_max_threads();
  char buf[640];
  std::snprintf(buf, sizeof buf,
                "plan %.12s: %d models to train and sweep (%s), %d units (train + sweep), "
                "%d formats each, %d epochs on %lld images\n"
                "estimate: %.3g multiply-accumulates; %.1f hours on one process of %d threads "
                "(%.3g GMAC/s from %s), %.1f core-hours",
                p.hash.c_str(), item_count(p), spaces.c_str(), 2 * item_count(p),
                int(p.formats.size()), doc.config.training.epochs, (long long)p.train_images,
                speed.macs_per_second * seconds, seconds / 3600, cores, speed.macs_per_second / 1e9,
                speed.source.c_str(), seconds / 3600 * cores);
  return buf;
}

}  // namespace iotnas::apps
