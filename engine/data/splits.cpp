// Index lists over a split: the validation split and balanced subsets.
#include <algorithm>
#include <cmath>

#include "engine/data/formats.hpp"
#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

TrainValSplit validation_split(const Dataset& ds, double val_fraction, uint64_t seed) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0)) {
    fail("validation fraction ", val_fraction, " is outside [0, 1); use e.g. 0.1");
  }
  std::vector<std::vector<int32_t>> per_class(ds.classes);
  for (int64_t i = 0; i < ds.train_size(); ++i) {
    const int label = ds.train_labels[i];
    IOTNAS_ASSERT(label < ds.classes, "label out of range in a loaded dataset");
    per_class[label].push_back(int32_t(i));
  }
  TrainValSplit split;
  std::vector<uint8_t> is_val(ds.train_size(), 0);
  for (int c = 0; c < ds.classes; ++c) {
    std::vector<int32_t>& idx = per_class[c];
    const size_t n_val = size_t(std::llround(val_fraction * double(idx.size())));
    StreamRng rng(stream_key(seed, detail::kTagSplit, uint64_t(c)));
    // Partial Fisher-Yates: the first n_val positions become a uniform random choice.
    for (size_t i = 0; i < n_val; ++i) std::swap(idx[i], idx[i + rng.below(idx.size() - i)]);
    for (size_t i = 0; i < n_val; ++i) is_val[idx[i]] = 1;
  }
  for (int64_t i = 0; i < ds.train_size(); ++i) {
    (is_val[i] ? split.val : split.train).push_back(int32_t(i));
  }
  return split;
}

std::vector<int32_t> balanced_subset(const std::vector<uint8_t>& labels, int64_t n, int classes) {
  if (n < 0) fail("subset size ", n, " is negative; ask for 0 or more images");
  if (classes < 1 || classes > 256) fail("subset: class count ", classes, " is outside 1..256");
  std::vector<int64_t> avail(classes, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= classes) {
      fail("subset: label ", int(labels[i]), " of item ", i, " is outside 0..", classes - 1);
    }
    ++avail[labels[i]];
  }
  n = std::min<int64_t>(n, int64_t(labels.size()));
  // Round-robin over the classes that still have images: equal shares, remainder to the lowest.
  std::vector<int64_t> take(classes, 0);
  int64_t left = n;
  const int64_t even = n / classes;
  for (int c = 0; c < classes; ++c) {
    take[c] = std::min(even, avail[c]);
    left -= take[c];
  }
  while (left > 0) {
    for (int c = 0; c < classes && left > 0; ++c) {
      if (take[c] < avail[c]) ++take[c], --left;
    }
  }
  std::vector<int32_t> out;
  out.reserve(size_t(n));
  for (size_t i = 0; i < labels.size(); ++i) {
    if (take[labels[i]] > 0) {
      --take[labels[i]];
      out.push_back(int32_t(i));
    }
  }
  return out;
}

}  // namespace iotnas
