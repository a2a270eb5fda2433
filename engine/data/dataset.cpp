// Dataset names as `--data` takes them (fashion-mnist, mnist:DIR, cifar10:DIR, synthetic:...),
// loading the dataset one names, and its normalisation statistics.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "engine/data/formats.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

using detail::ParsedSpec;
using detail::SyntheticParams;

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

const char* kKnownSpecs =
    "fashion-mnist, fashion-mnist:DIR, mnist:DIR, cifar10:DIR or "
    "synthetic[:shape=CxHxW,classes=K,train=N,test=M,seed=S]";

int64_t parse_int(const std::string& spec, const std::string& key, const std::string& text,
                  int64_t lo, int64_t hi) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || p != end || v < lo || v > hi) {
    fail("dataset '", spec, "': ", key, "=", text, " must be an integer in [", lo, ", ", hi, "]");
  }
  return v;
}

SyntheticParams parse_synthetic(const std::string& spec, const std::string& args) {
  SyntheticParams sp;
  std::set<std::string> seen;
  size_t start = 0;
  while (start < args.size()) {
    size_t comma = args.find(',', start);
    if (comma == std::string::npos) comma = args.size();
    const std::string item = args.substr(start, comma - start);
    start = comma + 1;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      fail("dataset '", spec, "': '", item, "' is not KEY=VALUE; use ", kKnownSpecs);
    }
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (!seen.insert(key).second) {
      fail("dataset '", spec, "': '", key, "' is given twice; give each key once");
    }
    if (key == "shape") {
      int64_t d[3];
      size_t s = 0;
      for (int i = 0; i < 3; ++i) {
        size_t x = i < 2 ? value.find('x', s) : value.size();
        if (x == std::string::npos) fail("dataset '", spec, "': shape must be CxHxW, e.g. 3x32x32");
        d[i] = parse_int(spec, "shape", value.substr(s, x - s), 1,
                         i == 0 ? detail::kMaxSyntheticChannels : detail::kMaxSyntheticSide);
        s = x + 1;
      }
      sp.shape = Shape{int(d[0]), int(d[1]), int(d[2])};
    } else if (key == "classes") {
      sp.classes = int(parse_int(spec, key, value, 2, 256));
    } else if (key == "train") {
      sp.n_train = parse_int(spec, key, value, 1, detail::kMaxSyntheticImages);
    } else if (key == "test") {
      sp.n_test = parse_int(spec, key, value, 1, detail::kMaxSyntheticImages);
    } else if (key == "seed") {
      sp.seed = uint64_t(parse_int(spec, key, value, 0, INT64_MAX));
    } else {
      fail("dataset '", spec, "': unknown key '", key,
           "'; synthetic takes shape=CxHxW, classes=K, train=N, test=M, seed=S");
    }
  }
  detail::check_synthetic_size(sp.n_train, sp.n_test, sp.shape, "dataset '" + spec + "'");
  return sp;
}

ParsedSpec parse_dataset_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const std::string arg = has_arg ? spec.substr(colon + 1) : "";
  ParsedSpec p;
  if (kind == "fashion-mnist" || kind == "mnist") {
    p.info = {kind, Shape{1, 28, 28}, 10};
    if (kind == "mnist" && arg.empty()) {
      fail("dataset '", spec,
           "': mnist needs the directory of its IDX files, e.g. mnist:/data/mnist");
    }
    if (has_arg && arg.empty()) fail("dataset '", spec, "': empty directory after ':'");
    if (has_arg) {
      p.dir = arg;
    } else {
      const char* env = std::getenv("IOTNAS_FASHION_MNIST");
      p.dir = env && *env ? env : kFashionMnistDir;
    }
  } else if (kind == "cifar10" || kind == "cifar-10") {
    p.info = {"cifar10", Shape{3, 32, 32}, 10};
    if (arg.empty()) {
      fail("dataset '", spec,
           "': cifar10 needs the directory of its binary batches, e.g. cifar10:/data/cifar10");
    }
    p.dir = arg;
  } else if (kind == "synthetic") {
    if (has_arg && arg.empty()) fail("dataset '", spec, "': empty argument list after ':'");
    p.synthetic = parse_synthetic(spec, arg);
    p.info = {"synthetic", p.synthetic.shape, p.synthetic.classes};
  } else {
    fail("unknown dataset '", spec, "': use ", kKnownSpecs);
  }
  return p;
}

}  // namespace

DatasetInfo dataset_info(const std::string& spec) {
  return parse_dataset_spec(spec).info;
}

void compute_statistics(Dataset& ds) {
  const int64_t n = ds.train_size(), hw = int64_t(ds.shape.h) * ds.shape.w;
  IOTNAS_ASSERT(int64_t(ds.train_images.size()) == n * ds.shape.size());
  ds.mean.assign(ds.shape.c, 0.f);
  ds.stddev.assign(ds.shape.c, 1.f);
  if (n == 0) return;
  for (int c = 0; c < ds.shape.c; ++c) {
    uint64_t hist[256] = {};
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = ds.train_images.data() + (i * ds.shape.c + c) * hw;
      for (int64_t k = 0; k < hw; ++k) ++hist[p[k]];
    }
    uint64_t sum = 0;
    unsigned __int128 sum_sq = 0;
    for (uint64_t v = 0; v < 256; ++v) {
      sum += v * hist[v];
      sum_sq += (unsigned __int128)(v * v) * hist[v];
    }
    const double count = double(n) * double(hw);
    const double mean = double(sum) / count / 255.0;
    const double var = std::max(0.0, double(sum_sq) / count / (255.0 * 255.0) - mean * mean);
    ds.mean[c] = float(mean);
    // A constant channel would divide by zero; it is left unscaled instead.
    ds.stddev[c] = var > 1e-12 ? float(std::sqrt(var)) : 1.f;
  }
}

Dataset load_dataset(const std::string& spec) {
  const ParsedSpec p = parse_dataset_spec(spec);
  Dataset ds;
  if (p.info.name == "synthetic") {
    const SyntheticParams& s = p.synthetic;
    return make_synthetic(s.n_train, s.n_test, s.shape, s.classes, s.seed);
  } else if (p.info.name == "cifar10") {
    ds = detail::load_cifar10(p);
  } else {
    ds = detail::load_idx_dataset(p);
  }
  compute_statistics(ds);
  return ds;
}

}  // namespace iotnas
