// The engine against its PyTorch peer (bench/peer_torch.py; bench/compare.sh runs both side by
// side and prints ratios). Three measurements, each printed as one JSON line:
//   bench_engine spec ref:NAME                      the model spec JSON the peer builds from
//   bench_engine train --model ref:NAME [--epochs 2 --seed 0 --threads 2 --batch 128
//                      --backend auto]             images/s per epoch (training steps only, as
//                                                  the trainer times them) and test accuracy
//   bench_engine steps --model ref:NAME [--threads 2 --batch 128 --samples 200 --backend auto]
//                                                  training steps (forward + backward) on
//                                                  random images: median ms per step, for A/B
//   bench_engine latency --model ref:NAME [--backend auto --samples 2000]
//                                                  batch-1 inference latency on 1 thread: median
//                                                  and p10 of single forwards over test images
// FLOPs: 2 per multiply-add of conv2d and dense (every tap, padding too), as the peer counts them;
// training FLOPs = 3 x forward. Peak: 115 GFLOP/s per core (fp32 FMA, ../shared/FACTS.md).
//
// Built against iotnas_engine only (no apps), so that it runs while the rest is in flux.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "engine/data.hpp"
#include "engine/model.hpp"
#include "engine/program.hpp"
#include "engine/reference_models.hpp"
#include "engine/trainer.hpp"
#include "kernels/base/error.hpp"

namespace {

using namespace iotnas;
using Clock = std::chrono::steady_clock;

constexpr double kPeakPerCore = 115e9;  // FLOP/s, fp32 FMA (FACTS.md)
constexpr const char* kData = "fashion-mnist";

struct Args {
  std::string mode, model = "ref:plain-1k", backend = "auto";
  int epochs = 2, threads = 2, batch = 128, samples = 2000;
  uint64_t seed = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) fail("usage: bench_engine spec|train|latency [options] (see bench/README.md)");
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      a.model = k;  // positional model (spec mode)
      continue;
    }
    if (i + 1 >= argc) fail("option ", k, " needs a value");
    const std::string v = argv[++i];
    if (k == "--model")
      a.model = v;
    else if (k == "--backend")
      a.backend = v;
    else if (k == "--epochs")
      a.epochs = std::stoi(v);
    else if (k == "--threads")
      a.threads = std::stoi(v);
    else if (k == "--batch")
      a.batch = std::stoi(v);
    else if (k == "--samples")
      a.samples = std::stoi(v);
    else if (k == "--seed")
      a.seed = std::stoull(v);
    else
      fail("unknown option ", k);
  }
  return a;
}

ModelSpec spec_of(const Args& a) {
  const DatasetInfo info = dataset_info(kData);
  return resolve_model(a.model, info.shape, info.classes);
}

int run_train(const Args& a) {
  omp_set_num_threads(a.threads);
  Model model = make_model(spec_of(a), a.seed);
  const Analytics an = analyze(model.graph);
  const Dataset data = load_dataset(kData);
  TrainConfig cfg;
  cfg.epochs = a.epochs;
  cfg.batch = a.batch;
  cfg.seed = a.seed;
  cfg.backend = parse_backend(a.backend);
  cfg.eval_each_epoch = false;
  const TrainReport r = train(model, data, cfg);
  nlohmann::json j;
  j["model"] = a.model;
  j["backend"] = backend_name(cfg.backend);
  j["threads"] = a.threads;
  j["batch"] = a.batch;
  j["seed"] = a.seed;
  j["params"] = an.params;
  j["flops"] = an.flops;
  j["test_accuracy"] = r.test_accuracy;
  std::vector<double> ips;
  for (const auto& e : r.epochs) ips.push_back(e.images_per_second);
  j["epoch_images_per_second"] = ips;
  // Epoch 1 includes creating the program (oneDNN primitives): the figure is the best later one.
  const double best = ips.size() > 1 ? *std::max_element(ips.begin() + 1, ips.end()) : ips[0];
  j["images_per_second"] = best;
  j["gflops"] = 3.0 * double(an.flops) * best / 1e9;
  j["peak_fraction"] = 3.0 * double(an.flops) * best / (kPeakPerCore * a.threads);
  std::cout << j.dump() << std::endl;
  return 0;
}

int run_steps(const Args& a) {
  omp_set_num_threads(a.threads);
  Model model = make_model(spec_of(a), a.seed);
  const Analytics an = analyze(model.graph);
  ProgramOptions o;
  o.backend = parse_backend(a.backend);
  o.batch = a.batch;
  o.mode = Mode::train;
  std::vector<float> grads(model.params.size());
  auto p = compile(model.graph, o, {model.params.data(), grads.data(), model.state.data()});
  const int k = model.graph.output().out.c;
  std::vector<float> images(size_t(a.batch) * model.graph.input.size());
  std::vector<float> dlogits(size_t(a.batch) * k);
  uint32_t x = 12345;
  for (auto& v : images) v = float((x = x * 1664525u + 1013904223u) >> 8) / 16777216.f - 0.5f;
  for (auto& v : dlogits) v = float((x = x * 1664525u + 1013904223u) >> 8) / 16777216.f - 0.5f;
  auto step = [&] {
    p->forward(images.data(), a.batch);
    p->backward(dlogits.data());
  };
  for (int i = 0; i < 10; ++i) step();
  std::vector<double> ms(size_t(a.samples));
  for (auto& m : ms) {
    const auto t0 = Clock::now();
    step();
    m = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  nlohmann::json j;
  j["model"] = a.model;
  j["backend"] = backend_name(o.backend);
  j["threads"] = a.threads;
  j["step_ms"] = med;
  j["p10_ms"] = ms[ms.size() / 10];
  j["images_per_second"] = a.batch / med * 1e3;
  j["gflops"] = 3.0 * double(an.flops) * a.batch / med / 1e6;
  std::cout << j.dump() << std::endl;
  return 0;
}

int run_latency(const Args& a) {
  omp_set_num_threads(1);
  const Model model = fold_batch_norm(make_model(spec_of(a), a.seed));
  const Analytics an = analyze(model.graph);
  const Dataset data = load_dataset(kData);
  const EvalSet set = make_eval_set(data, true);
  ProgramOptions o;
  o.backend = parse_backend(a.backend);
  o.batch = 1;
  o.mode = Mode::infer;
  std::vector<float> params = model.params, state = model.state;
  auto p = compile(model.graph, o, {params.data(), nullptr, state.data()});
  const int64_t per = set.shape.size();
  const int images = 256;
  float sink = 0;
  auto one = [&](int k) {
    p->forward(set.images.data() + int64_t(k % images) * per, 1);
    sink += p->logits()[0];
  };
  for (int k = 0; k < 500; ++k) one(k);  // warm-up
  std::vector<double> us(size_t(a.samples));
  for (int k = 0; k < a.samples; ++k) {
    const auto t0 = Clock::now();
    one(k);
    us[size_t(k)] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  std::sort(us.begin(), us.end());
  const double median = us[us.size() / 2], floor_us = double(an.flops) / kPeakPerCore * 1e6;
  nlohmann::json j;
  j["model"] = a.model;
  j["backend"] = backend_name(o.backend);
  j["flops"] = an.flops;
  j["median_us"] = median;
  j["p10_us"] = us[us.size() / 10];
  j["p90_us"] = us[us.size() * 9 / 10];
  j["floor_us"] = floor_us;
  j["floor_multiple"] = median / floor_us;
  j["checksum"] = sink;
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.mode == "spec") {
      std::cout << spec_to_json(spec_of(a)) << std::endl;
      return 0;
    }
    if (a.mode == "train") return run_train(a);
    if (a.mode == "latency") return run_latency(a);
    if (a.mode == "steps") return run_steps(a);
    fail("unknown mode '", a.mode, "' (spec, train or latency)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_engine: %s\n", e.what());
    return 1;
  }
}
