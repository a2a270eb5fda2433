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
#include <string>

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

}  // namespace iotnas::detail
