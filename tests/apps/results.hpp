// What a run directory's store holds, in a form two runs can be compared by: unit keys and model
// names, not row ids (which differ between a one-process run, MPI ranks and merged shards).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "apps/store/store.hpp"

namespace iotnas::test {

// "(model name) (w):(t)" -> accuracy, "(model name) test" -> float32 test accuracy, and
// "front (name) (model) (w):(t)" -> cost for every stored front point.
inline std::map<std::string, double> results_of(const std::filesystem::path& dir) {
  apps::Store s = apps::Store::open_readonly(dir.string());
  std::map<std::string, double> out;
  auto name_of_run = [&](int64_t run_id) { return s.model(s.run(run_id, false)->model_id)->name; };
  for (const auto& a : s.accuracies())
    out[name_of_run(a.run_id) + " " + std::to_string(a.w) + ":" + std::to_string(a.t)] = a.accuracy;
  for (const auto& r : s.runs(false)) out[s.model(r.model_id)->name + " test"] = r.test_accuracy;
  for (const auto& f : s.front_names())
    for (const auto& p : s.front(f))
      out["front " + f + " " + name_of_run(p.run_id) + " " + std::to_string(p.w) + ":" +
          std::to_string(p.t)] = p.cost;
  return out;
}

// A tiny run on a 10-class synthetic set (accuracies far from 100 %, so that equal means equal).
inline std::string tiny_config(int epochs, int per_window = 1, int max_models = 4) {
  return R"({
  "budget": "smoke",
  "dataset": "synthetic:shape=1x16x16,classes=10,train=1000,test=200,seed=3",
  "spaces": ["plain", "mobilenet"],
  "search": {"grid_from": 1e3, "grid_to": 1e4},
  "candidates": {"max_models": )" +
         std::to_string(max_models) + R"(, "per_window": )" + std::to_string(per_window) +
         R"(, "max_flops": 3e5, "per_constraint": 0, "references": []},
  "calibration": {"models": 0},
  "training": {"epochs": )" +
         std::to_string(epochs) + R"(, "batch": 32, "train_images": 0},
  "formats": "half,4:3,8:23,2:3",
  "eval": {"images": 100},
  "threads": 1,
  "constraints": [{"max_weight_bytes": 100000}]
})";
}

}  // namespace iotnas::test
