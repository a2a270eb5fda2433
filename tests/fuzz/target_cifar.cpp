// The CIFAR-10 binary batch reader and the class-names file (batches.meta.txt), in memory.
#include "engine/data/formats.hpp"
#include "fuzz/fuzz_target.hpp"
#include "kernels/base/error.hpp"

IOTNAS_FUZZ_TARGET(cifar) {
  using namespace iotnas;
  try {
    std::vector<uint8_t> images, labels;
    detail::parse_cifar_batch(data, "data_batch_1.bin", images, labels);
    if (images.size() != labels.size() * 3072) fuzz::finding("CIFAR images and labels disagree");
  } catch (const Error&) {
  }
  detail::parse_cifar_names(fuzz::as_text(data), "batches.meta.txt");
}
