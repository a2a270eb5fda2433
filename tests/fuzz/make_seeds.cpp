// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid inputs
// made by the writers of each format, so that the fuzzers start from files the readers accept.
// Rerun after a format changes:  build/<preset>/tests/iotnas_fuzz_seeds tests/fuzz/corpus
// (corpus/run_config/two-hours.json is a copy of configs/two-hours.json, not generated).
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "apps/config.hpp"
#include "calib/fit.hpp"
#include "calib/latency_model.hpp"
#include "calib/profile.hpp"
#include "engine/backend.hpp"
#include "engine/checkpoint.hpp"
#include "engine/graph.hpp"
#include "engine/reference_models.hpp"
#include "search/law.hpp"

namespace fs = std::filesystem;
using namespace iotnas;

namespace {

fs::path out_dir;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = out_dir / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string gzip(const std::string& plain) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, uLong(plain.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  z.avail_in = uInt(plain.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string idx(std::vector<uint32_t> dims, int seed) {
  std::string s = {0, 0, 8, char(dims.size())};
  size_t n = 1;
  for (uint32_t d : dims) {
    for (int b = 24; b >= 0; b -= 8) s.push_back(char(d >> b));
    n *= d;
  }
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; ++i) s.push_back(char(dims.size() == 1 ? rng() % 10 : rng() % 256));
  return s;
}

void idx_seeds() {
  const std::string images = idx({2, 4, 3}, 1), labels = idx({5}, 2);
  write("idx", "images-plain", images);
  write("idx", "labels-plain", labels);
  write("idx", "images.gz", gzip(images));
  write("idx", "labels.gz", gzip(labels));
  write("idx", "labels-two-members.gz", gzip(labels.substr(0, 6)) + gzip(labels.substr(6)));
}

void cifar_seeds() {
  std::string two;
  for (int r = 0; r < 2; ++r) {
    two.push_back(char(r * 7));
    for (int i = 0; i < 3072; ++i) two.push_back(char(i * 13 + r));
  }
  write("cifar", "two-records.bin", two);
  write("cifar", "batches.meta.txt",
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
}

ModelSpec tiny_spec() {
  ModelSpec m;
  m.name = "tiny";
  m.input = {1, 6, 6};
  m.layers = {conv("c1", 2, 3),
              batch_norm("bn"),
              relu("r1"),
              max_pool("p1", 2),
              conv("c2", 2, 1),
              add("sum", {"p1", "c2"}),
              concat("cat", {"sum", "p1"}),
              global_avg_pool("gap"),
              flatten("f"),
              dense("fc", 3)};
  return m;
}

void spec_and_checkpoint_seeds() {
  write("spec", "tiny.json", spec_to_json(tiny_spec()));
  write("spec", "plain-14k.json", spec_to_json(reference_model("plain-14k")));
  write("spec", "resnet20.json", spec_to_json(reference_model("resnet20", {3, 32, 32})));
  Checkpoint c;
  c.spec = tiny_spec();
  const Graph g = build_graph(c.spec);
  c.params.assign(size_t(g.num_params), 0.5f);
  c.state.assign(size_t(g.num_state), 1.f);
  c.record_json = R"({"epochs": 1})";
  const fs::path tmp = out_dir / "tiny.ckpt";
  save_checkpoint(tmp.string(), c);
  std::ifstream f(tmp, std::ios::binary);
  write("checkpoint", "tiny.ckpt",
        std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()));
  fs::remove(tmp);
}

void laws_seeds() {
  for (const search::Space& space : search::spaces()) {
    search::LawSet set;
    set.space = space.name;
    set.metric = search::Metric::flops;
    set.window_lo = 1e5;
    set.window_hi = 1e7;
    set.input = Shape{1, 28, 28};
    set.seed = 3;
    set.laws = {search::uniform_law(space)};
    write("laws", space.name + ".json", search::laws_to_json(set));
  }
}

// Keeps the first 3 trees of every boosted-tree ensemble in `j` (600 would make a 700 KB seed,
// too slow to mutate).
void trim_trees(nlohmann::json& j) {
  if (j.is_object()) {
    if (j.contains("trees") && j["trees"].is_array() && j["trees"].size() > 3) {
      j["trees"].erase(j["trees"].begin() + 3, j["trees"].end());
    }
    for (auto& [key, value] : j.items()) trim_trees(value);
  } else if (j.is_array()) {
    for (auto& value : j) trim_trees(value);
  }
}

// A profile of 12 models drawn from the plain space with made-up times (layer times included),
// written once per latency-model kind with that kind fitted, and 3 of its models kept.
void profile_seeds() {
  const search::Space& space = search::find_space("plain");
  search::SampleOptions o;
  o.with_specs = true;
  const std::vector<search::Law> laws = {search::uniform_law(space)};
  calib::Profile p;
  p.created = p.updated = "2026-12-01T00:00:00Z";
  p.devices.push_back(calib::describe_device(BackendKind::portable, 1));
  for (const search::Sample& s : search::sample_laws(space, laws, 12, o)) {
    calib::ProfileModel m;
    m.id = s.spec.name;
    m.space = space.name;
    m.vars = s.vars;
    m.spec = s.spec;
    m.params = s.analytics.params;
    m.inference_params = s.analytics.inference_params;
    m.flops = s.analytics.flops;
    const double lat = 2e-6 * double(m.flops) + 0.005;
    for (int r = 1; r <= 2; ++r) {
      calib::Measurement x = calib::summarize_times({lat, lat * 1.01, lat * (r == 1 ? 1.02 : 1.0)});
      x.round = r;
      x.time = "2026-12-01T00:00:0" + std::to_string(r) + "Z";
      const Graph g = build_graph(s.spec);
      for (size_t i = 1; i < g.nodes.size(); ++i)
        x.layer_ms[g.nodes[i].layer.name] = lat / double(g.nodes.size());
      m.measurements.push_back(x);
    }
    p.models.push_back(std::move(m));
  }
  const calib::FitReport r = calib::fit_profile(p);
  nlohmann::json fit = calib::fit_report_json(r, {});
  p.models.resize(3);
  for (calib::ModelKind kind : calib::kModelKinds) {
    fit["model"] =
        calib::latency_model_to_json(calib::fit_latency_model(kind, r.features, r.measured_ms));
    trim_trees(fit["model"]);
    p.fit = fit;
    write("profile", std::string(calib::model_kind_name(kind)) + ".json",
          calib::profile_to_json(p).dump(1));
  }
  p.fit = nullptr;
  write("profile", "unfitted.json", calib::profile_to_json(p).dump(1));
}

void run_config_seeds() {
  for (const std::string& b : apps::budget_names()) {
    write("run_config", b + ".json", apps::run_config_to_json(apps::budget_preset(b)).dump(1));
  }
  write("run_config", "small.json",
        R"({"budget": "smoke", "dataset": "synthetic:train=60,test=20",)"
        R"( "training": {"epochs": 1, "train_images": 40}})");
}

void quant_round_seeds() {
  std::string s = {5, 10};  // w = 5, t = 10
  for (float v : {0.f, -0.f, 1.f, 65504.f, 1e-8f, 3.14159f, -2.5e38f}) {
    s.append(reinterpret_cast<const char*>(&v), 4);
  }
  write("quant_round", "half.f32", s);
  s[0] = 8, s[1] = 7;
  s.push_back('x');  // a stray byte
  write("quant_round", "bfloat16-stray.f32", s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  idx_seeds();
  cifar_seeds();
  spec_and_checkpoint_seeds();
  laws_seeds();
  profile_seeds();
  run_config_seeds();
  quant_round_seeds();
  return 0;
}
