// The Batcher: normalised, optionally shuffled and augmented float batches over a split.
#include <algorithm>
#include <numeric>

#include "engine/data/formats.hpp"
#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

constexpr int kPad = 4;  // augmentation: random crop from zero padding 4

// dst[k] = src[k] * scale + bias: the Batcher's normalisation, (x/255 - mean) / stddev.
void normalise(const uint8_t* __restrict src, float* __restrict dst, int64_t n, float scale,
               float bias) {
  for (int64_t k = 0; k < n; ++k) dst[k] = float(src[k]) * scale + bias;
}

}  // namespace

Batcher::Batcher(const Dataset& ds, bool train_split, std::vector<int32_t> indices,
                 BatchOptions options)
    : images_(train_split ? &ds.train_images : &ds.test_images),
      labels_(train_split ? &ds.train_labels : &ds.test_labels),
      shape_(ds.shape),
      options_(options),
      indices_(std::move(indices)) {
  const int64_t n = int64_t(labels_->size());
  IOTNAS_ASSERT(int64_t(images_->size()) == n * shape_.size(), "images and labels disagree");
  if (options_.batch < 1) fail("batch size ", options_.batch, " must be at least 1");
  if (int64_t(ds.mean.size()) != shape_.c || int64_t(ds.stddev.size()) != shape_.c) {
    fail("dataset '", ds.name, "' has no per-channel statistics; call compute_statistics first");
  }
  if (n > INT32_MAX) fail("dataset '", ds.name, "' has more than 2^31 images in a split");
  if (indices_.empty()) {
    indices_.resize(size_t(n));
    std::iota(indices_.begin(), indices_.end(), 0);
  }
  for (int32_t i : indices_) {
    if (i < 0 || i >= n) {
      fail("index ", i, " is outside the ", n, "-image ", train_split ? "train" : "test",
           " split of '", ds.name, "'");
    }
  }
  scale_.resize(size_t(shape_.c));
  bias_.resize(size_t(shape_.c));
  for (int c = 0; c < shape_.c; ++c) {
    scale_[c] = float(1.0 / (255.0 * double(ds.stddev[c])));
    bias_[c] = float(-double(ds.mean[c]) / double(ds.stddev[c]));
  }
  start_epoch(0);
}

int64_t Batcher::batches_per_epoch() const {
  const int64_t b = options_.batch;
  return options_.drop_last ? size() / b : (size() + b - 1) / b;
}

void Batcher::start_epoch(int epoch) {
  epoch_ = epoch;
  pos_ = 0;
  order_ = indices_;
  if (options_.shuffle) {
    StreamRng rng(stream_key(options_.seed, detail::kTagShuffle, uint64_t(int64_t(epoch))));
    shuffle(order_, rng);
  }
}

int Batcher::next(float* images, int32_t* labels) {
  const int64_t count = std::min<int64_t>(options_.batch, size() - pos_);
  if (count <= 0 || (options_.drop_last && count < options_.batch)) {
    pos_ = size();
    return 0;
  }
  const int C = shape_.c, H = shape_.h, W = shape_.w;
  const int64_t hw = int64_t(H) * W, image_size = shape_.size();
  const uint8_t* pixels = images_->data();
  const bool augment = options_.augment;
  const uint64_t epoch_key =
      stream_key(options_.seed, detail::kTagAugment, uint64_t(int64_t(epoch_)));
  const int64_t pos = pos_;
  // One thread: it normalises at several GB/s, far ahead of any training step, while OpenMP
  // threads here cost more than they save on a busy machine (measured: docs/data.md). Each image
  // depends only on its position, so a parallel loop would give the same result.
  for (int64_t i = 0; i < count; ++i) {
    const int32_t index = order_[pos + i];
    const uint8_t* src = pixels + int64_t(index) * image_size;
    float* dst = images + i * image_size;
    if (!augment) {
      for (int c = 0; c < C; ++c) normalise(src + c * hw, dst + c * hw, hw, scale_[c], bias_[c]);
      continue;
    }
    // Crop an HxW window at offset (dy, dx) in [-4, 4] from the zero-padded image, then maybe
    // mirror it: dst[y][x] = padded[y + dy][(flip ? W-1-x : x) + dx]; padding is pixel value 0.
    const uint64_t r = mix64(epoch_key ^ uint64_t(pos + i));
    const int dy = int(r % (2 * kPad + 1)) - kPad;
    const int dx = int((r >> 16) % (2 * kPad + 1)) - kPad;
    const bool flip = (r >> 32) & 1;
    // Columns x in [x0, x1) read inside the image; the rest is padding.
    const int x0 = flip ? std::max(0, dx) : std::max(0, -dx);
    const int x1 = flip ? std::min(W, W + dx) : std::min(W, W - dx);
    for (int c = 0; c < C; ++c) {
      const float scale = scale_[c], bias = bias_[c];
      for (int y = 0; y < H; ++y) {
        float* d = dst + c * hw + int64_t(y) * W;
        const int sy = y + dy;
        if (sy < 0 || sy >= H || x0 >= x1) {
          std::fill(d, d + W, bias);
          continue;
        }
        const uint8_t* row = src + c * hw + int64_t(sy) * W;
        std::fill(d, d + x0, bias);
        if (!flip) {
          normalise(row + x0 + dx, d + x0, x1 - x0, scale, bias);
        } else {
          for (int x = x0; x < x1; ++x) d[x] = float(row[W - 1 - x + dx]) * scale + bias;
        }
        std::fill(d + x1, d + W, bias);
      }
    }
  }
  if (labels) {
    for (int64_t i = 0; i < count; ++i) labels[i] = (*labels_)[order_[pos + i]];
  }
  pos_ += count;
  return int(count);
}

}  // namespace iotnas
