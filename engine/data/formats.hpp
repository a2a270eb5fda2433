// What the files of engine/data/ share; not part of the public API (engine/data.hpp): the parsed
// `--data` spec, the loaders of each file format, and the random-stream tags.
//   dataset.cpp    `--data` specs, dataset_info, load_dataset, compute_statistics
//   idx.cpp        IDX files (MNIST, Fashion-MNIST, gzip or plain): read_idx and their loader
//   cifar10.cpp    CIFAR-10 binary batches
//   synthetic.cpp  make_synthetic
//   splits.cpp     validation_split, balanced_subset
//   batcher.cpp    Batcher (shuffling, augmentation, normalisation)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/data.hpp"

namespace iotnas::detail {

// ---- random streams (engine/util/rng.hpp): one StreamRng per (seed, tag, coordinate)

// Stream tags, so that shuffling, augmentation and the rest never share a stream.
enum : uint64_t {
  kTagShuffle = 0x5348,
  kTagAugment = 0x4155,
  kTagSplit = 0x5350,
  kTagSynthetic = 0x5359,
};

// ---- dataset names ----------------------------------------------------------------------------

// The largest synthetic dataset (docs/data.md): images per split, channels, height or width, and
// pixel bytes of both splits together.
inline constexpr int64_t kMaxSyntheticImages = int64_t(1) << 30;
inline constexpr int64_t kMaxSyntheticChannels = 64, kMaxSyntheticSide = 4096;
inline constexpr int64_t kMaxSyntheticBytes = int64_t(1) << 32;

// Refuses sizes past those limits (or below 0 images, 1 pixel); `what` names the request in the
// message (synthetic.cpp).
void check_synthetic_size(int64_t n_train, int64_t n_test, const Shape& shape,
                          const std::string& what);

struct SyntheticParams {
  Shape shape{1, 28, 28};
  int classes = 10;
  int64_t n_train = 6000, n_test = 1000;
  uint64_t seed = 0;
};

struct ParsedSpec {
  DatasetInfo info;
  std::string dir;  // fashion-mnist, mnist, cifar10
  SyntheticParams synthetic;
};

// Reads fashion-mnist or mnist from `p.dir` (idx.cpp).
Dataset load_idx_dataset(const ParsedSpec& p);
// Reads CIFAR-10's binary batches from `p.dir` or its cifar-10-batches-bin/ (cifar10.cpp).
Dataset load_cifar10(const ParsedSpec& p);
// Appends one CIFAR-10 binary batch, held in memory, to `images` and `labels`; `path` names it in
// errors (cifar10.cpp).
void parse_cifar_batch(std::span<const uint8_t> raw, const std::string& path,
                       std::vector<uint8_t>& images, std::vector<uint8_t>& labels);
// The 10 class names of batches.meta.txt, one per line (blank lines skipped, spaces trimmed).
std::vector<std::string> parse_cifar_names(std::string_view text, const std::string& path);

}  // namespace iotnas::detail
