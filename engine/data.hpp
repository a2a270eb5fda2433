// Datasets (IDX as MNIST and Fashion-MNIST ship them, CIFAR-10 binary batches, synthetic), index
// lists over them (validation split, balanced subsets) and the Batcher that turns them into
// normalised, optionally augmented float batches. File formats and names: docs/data.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/spec.hpp"

namespace iotnas {

// What a dataset name (as `--data` takes it) resolves to, without reading any file.
struct DatasetInfo {
  std::string name;  // "fashion-mnist", "mnist", "cifar10" or "synthetic"
  Shape shape;       // one image, [C, H, W]
  int classes = 0;   // labels are 0 .. classes-1
};

// Accepts "fashion-mnist[:DIR]", "mnist:DIR", "cifar10:DIR" and
// "synthetic[:shape=CxHxW,classes=K,train=N,test=M,seed=S]". Throws iotnas::Error otherwise.
DatasetInfo dataset_info(const std::string& spec);

// A whole dataset in memory: raw uint8 pixels plus the statistics used to normalise them.
struct Dataset {
  std::string name;                      // as in DatasetInfo
  std::string origin;                    // where it was read from (a directory) or "synthetic"
  Shape shape;                           // one image, [C, H, W]
  int classes = 0;                       // labels are 0 .. classes-1
  std::vector<std::string> class_names;  // `classes` entries
  std::vector<uint8_t> train_images;     // [N_train, C, H, W], channels planar as CIFAR stores them
  std::vector<uint8_t> test_images;      // [N_test, C, H, W]
  std::vector<uint8_t> train_labels;     // [N_train]
  std::vector<uint8_t> test_labels;      // [N_test]
  std::vector<float> mean;               // [C] of the training pixels scaled to [0, 1]
  std::vector<float> stddev;             // [C] population standard deviation, same scale
  bool augment_by_default = false;       // cifar10: random crop (pad 4) + flip; MNIST-like: none

  int64_t train_size() const { return int64_t(train_labels.size()); }  // images in the train split
  int64_t test_size() const { return int64_t(test_labels.size()); }    // images in the test split
};

// Reads the dataset `spec` names (see dataset_info). Every error is one iotnas::Error line naming
// the file and the fix (missing package, truncated or mislabelled file, ...).
Dataset load_dataset(const std::string& spec);

// A learnable dataset for tests: per class a mean brightness and an oriented stripe pattern (random
// phase), plus uniform noise. Labels are balanced (i % classes, shuffled). Same seed, same data.
Dataset make_synthetic(int64_t n_train, int64_t n_test, Shape shape, int classes, uint64_t seed);

// Fills `ds.mean` and `ds.stddev` from its training images (exact integer sums).
void compute_statistics(Dataset& ds);

// One IDX file (the MNIST format): unsigned-byte data and its dimensions.
struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {N, rows, cols} for images, {N} for labels
  std::vector<uint8_t> data;  // product(dims) bytes, row-major
};

// Reads a gzip-compressed or plain IDX file of unsigned bytes with `ndims` dimensions (3 for
// images, magic 0x00000803; 1 for labels, magic 0x00000801), checking the exact byte count.
IdxArray read_idx(const std::string& path, int ndims);
// The same from the file's bytes in memory; `path` names them in errors.
IdxArray parse_idx(std::span<const uint8_t> file, int ndims, const std::string& path);

// Index lists over the training images.
struct TrainValSplit {
  std::vector<int32_t> train;  // ascending
  std::vector<int32_t> val;    // ascending, disjoint from train
};

// Per class, round(val_fraction * images of that class) of them go to `val`, chosen by `seed`.
// val_fraction in [0, 1). Deterministic.
TrainValSplit validation_split(const Dataset& ds, double val_fraction, uint64_t seed);

// The first n indices (file order) with classes as equal as the data allows: n/classes each, the
// remainder to the lowest classes, a short class's share filled from the others. Ascending.
// n >= labels.size() gives every index.
std::vector<int32_t> balanced_subset(const std::vector<uint8_t>& labels, int64_t n, int classes);

struct BatchOptions {
  int batch = 128;         // images per batch (the last one of an epoch may be short)
  bool shuffle = true;     // a fresh order per epoch from (seed, epoch); false: index order
  bool augment = false;    // random crop (zero padding 4) + horizontal flip, per image
  uint64_t seed = 0;       // drives shuffling and augmentation
  bool drop_last = false;  // skip the short last batch
};

// Normalised float batches, (x/255 - mean_c) / stddev_c with the training statistics, over a
// subset of one split. Keeps a reference to the dataset, which must outlive it. Output depends
// only on (dataset, indices, options, epoch), never on the thread count.
class Batcher {
 public:
  // `indices` into the chosen split; empty means all of it. Starts epoch 0.
  Batcher(const Dataset& ds, bool train_split, std::vector<int32_t> indices, BatchOptions options);

  int64_t size() const { return int64_t(indices_.size()); }  // images per epoch
  int64_t batches_per_epoch() const;                         // counting a short last batch
  const Shape& shape() const { return shape_; }              // one image, [C, H, W]
  const BatchOptions& options() const { return options_; }   // as given

  // Rewinds to the start of `epoch`, whose order and augmentation follow from (seed, epoch).
  void start_epoch(int epoch);
  // Writes up to options().batch images [count, C, H, W] and labels [count] (labels may be
  // null); returns count, 0 once the epoch is done.
  int next(float* images, int32_t* labels);
  // The current epoch's order of split indices.
  const std::vector<int32_t>& epoch_order() const { return order_; }

 private:
  const std::vector<uint8_t>* images_;  // the split's pixels, owned by the dataset
  const std::vector<uint8_t>* labels_;  // the split's labels, owned by the dataset
  Shape shape_;
  BatchOptions options_;
  std::vector<int32_t> indices_;  // the subset, as given
  std::vector<int32_t> order_;    // this epoch's permutation of indices_
  std::vector<float> scale_;      // [C]: 1 / (255 stddev_c)
  std::vector<float> bias_;       // [C]: -mean_c / stddev_c, also the value of zero padding
  int epoch_ = 0;
  int64_t pos_ = 0;  // next position in order_
};

}  // namespace iotnas
