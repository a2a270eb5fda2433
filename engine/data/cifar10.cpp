// CIFAR-10's binary batches (cifar-10-binary.tar.gz): data_batch_1..5.bin, test_batch.bin and
// the optional batches.meta.txt.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>

#include "engine/data/formats.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

namespace fs = std::filesystem;

constexpr int kCifarPixels = 3 * 32 * 32;
constexpr int kCifarRecord = 1 + kCifarPixels;

void check_cifar_size(uintmax_t size, const std::string& path) {
  if (size == 0 || size % kCifarRecord != 0) {
    fail("cifar10: '", path, "' is ", size, " bytes, not a whole number of ", kCifarRecord,
         "-byte records (1 label byte + 3072 pixels): truncated or not a CIFAR-10 binary batch; "
         "replace it with a complete copy");
  }
}

const std::vector<std::string> kCifarNames = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

void read_cifar_batch(const std::string& path, std::vector<uint8_t>& images,
                      std::vector<uint8_t>& labels) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail("cifar10: '", path, "' is missing; a CIFAR-10 directory holds data_batch_1.bin .. ",
         "data_batch_5.bin and test_batch.bin (unpack cifar-10-binary.tar.gz there)");
  }
  const uintmax_t size = fs::file_size(path, ec);
  check_cifar_size(ec ? 0 : size, path);
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> raw(size);
  if (!f.read(reinterpret_cast<char*>(raw.data()), std::streamsize(size))) {
    fail("cifar10: cannot read '", path, "': ", std::strerror(errno));
  }
  detail::parse_cifar_batch(raw, path, images, labels);
}

}  // namespace

void detail::parse_cifar_batch(std::span<const uint8_t> raw, const std::string& path,
                               std::vector<uint8_t>& images, std::vector<uint8_t>& labels) {
  check_cifar_size(raw.size(), path);
  const int64_t n = int64_t(raw.size() / kCifarRecord);
  const size_t first = labels.size();
  labels.resize(first + n);
  images.resize(images.size() + n * kCifarPixels);
  uint8_t* dst = images.data() + first * kCifarPixels;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = raw.data() + i * kCifarRecord;
    labels[first + i] = rec[0];
    std::memcpy(dst + i * kCifarPixels, rec + 1, kCifarPixels);
    if (rec[0] >= 10) {
      fail(
          "cifar10: '", path, "': record ", i, " has label ", int(rec[0]),
          ", outside 0..9: not a CIFAR-10 batch (CIFAR-100's files have 2 label bytes per record)");
    }
  }
}

std::vector<std::string> detail::parse_cifar_names(std::string_view text, const std::string& path) {
  std::vector<std::string> names;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b != std::string_view::npos) names.emplace_back(line.substr(b, e - b + 1));
  }
  if (names.size() != 10) {
    fail("cifar10: '", path, "' names ", names.size(),
         " classes, CIFAR-10 has 10: replace the file or remove it (the standard names are used "
         "then)");
  }
  return names;
}

Dataset detail::load_cifar10(const ParsedSpec& p) {
  std::string dir = p.dir;
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "data_batch_1.bin", ec) &&
      fs::exists(fs::path(dir) / "cifar-10-batches-bin" / "data_batch_1.bin", ec)) {
    dir = (fs::path(dir) / "cifar-10-batches-bin").string();
  }
  if (!fs::exists(fs::path(dir) / "data_batch_1.bin", ec)) {
    fail("cifar10: no data_batch_1.bin in '", p.dir,
         "' (nor in its cifar-10-batches-bin/); download the CIFAR-10 binary version "
         "(cifar-10-binary.tar.gz) and unpack it there");
  }
  Dataset ds;
  ds.name = "cifar10";
  ds.origin = dir;
  ds.shape = p.info.shape;
  ds.classes = 10;
  ds.augment_by_default = true;
  for (int b = 1; b <= 5; ++b) {
    read_cifar_batch((fs::path(dir) / ("data_batch_" + std::to_string(b) + ".bin")).string(),
                     ds.train_images, ds.train_labels);
  }
  read_cifar_batch((fs::path(dir) / "test_batch.bin").string(), ds.test_images, ds.test_labels);
  const fs::path meta = fs::path(dir) / "batches.meta.txt";
  if (fs::exists(meta, ec)) {
    std::ifstream f(meta, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ds.class_names = detail::parse_cifar_names(text, meta.string());
  } else {
    ds.class_names = kCifarNames;
  }
  return ds;
}

}  // namespace iotnas
