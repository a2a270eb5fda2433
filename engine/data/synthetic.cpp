// The synthetic dataset: a learnable stand-in for tests and smoke runs.
#include <algorithm>
#include <cmath>

#include "engine/data/formats.hpp"
#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

void detail::check_synthetic_size(int64_t n_train, int64_t n_test, const Shape& shape,
                                  const std::string& what) {
  if (n_train < 0 || n_test < 0 || n_train > kMaxSyntheticImages || n_test > kMaxSyntheticImages) {
    fail(what, ": ", n_train, " training and ", n_test, " test images; each split takes 0 to ",
         kMaxSyntheticImages, " images");
  }
  if (shape.c < 1 || shape.h < 1 || shape.w < 1 || shape.c > kMaxSyntheticChannels ||
      shape.h > kMaxSyntheticSide || shape.w > kMaxSyntheticSide) {
    fail(what, ": image shape ", to_string(shape), " must be within 1..", kMaxSyntheticChannels,
         " channels and 1..", kMaxSyntheticSide, " pixels high and wide");
  }
  if ((n_train + n_test) * shape.size() > kMaxSyntheticBytes) {
    fail(what, ": ", n_train + n_test, " images of ", to_string(shape),
         " are more than 4 GiB of pixels; ask for fewer or smaller images");
  }
}

Dataset make_synthetic(int64_t n_train, int64_t n_test, Shape shape, int classes, uint64_t seed) {
  detail::check_synthetic_size(n_train, n_test, shape, "synthetic dataset");
  if (classes < 2 || classes > 256) {
    fail("synthetic dataset: ", classes, " classes; ask for 2..256");
  }
  Dataset ds;
  ds.name = "synthetic";
  ds.origin = "synthetic";
  ds.shape = shape;
  ds.classes = classes;
  for (int c = 0; c < classes; ++c) ds.class_names.push_back("class" + std::to_string(c));
  const int64_t size = shape.size(), hw = int64_t(shape.h) * shape.w;
  auto generate = [&](int64_t n, uint64_t split, std::vector<uint8_t>& images,
                      std::vector<uint8_t>& labels) {
    labels.resize(n);
    for (int64_t i = 0; i < n; ++i) labels[i] = uint8_t(i % classes);
    StreamRng order(stream_key(seed, detail::kTagSynthetic, split));
    shuffle(labels, order);
    images.resize(n * size);
    const double pi = 3.14159265358979323846;
    // Nothing in the loop throws (no allocation, no checks: the sizes were checked above), so no
    // exception can escape the parallel region.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      StreamRng rng(stream_key(seed, split * 0x100000000ULL + detail::kTagSynthetic, uint64_t(i)));
      const int label = labels[i];
      // Mean brightness rises with the class; stripes turn by 180/classes degrees per class.
      const double level = 128.0 + 40.0 * (2.0 * label / (classes - 1) - 1.0);
      const double angle = pi * label / classes;
      const double freq = 2.0 * pi * (2 + label % 3) / std::max(shape.h, shape.w);
      const double fx = freq * std::cos(angle), fy = freq * std::sin(angle);
      for (int c = 0; c < shape.c; ++c) {
        const double phase = 2.0 * pi * rng.uniform();
        uint8_t* dst = images.data() + i * size + c * hw;
        for (int y = 0; y < shape.h; ++y) {
          for (int x = 0; x < shape.w; ++x) {
            const double noise = 80.0 * rng.uniform() - 40.0;
            const double v = level + 60.0 * std::cos(fx * x + fy * y + phase) + noise;
            dst[y * shape.w + x] = uint8_t(std::clamp(std::lround(v), 0L, 255L));
          }
        }
      }
    }
  };
  generate(n_train, 1, ds.train_images, ds.train_labels);
  generate(n_test, 2, ds.test_images, ds.test_labels);
  compute_statistics(ds);
  return ds;
}

}  // namespace iotnas
