// Datasets: IDX and CIFAR-10 readers on files the tests write (good and broken), the real
// Fashion-MNIST when installed, the synthetic set, splits and the Batcher.
#include "engine/data.hpp"

#include <omp.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "kernels/base/error.hpp"
#include "test_util.hpp"

namespace iotnas {
namespace {

namespace fs = std::filesystem;
using test::fresh_seed;
using test::seed_note;

// A fresh directory under /tmp, removed with everything in it at the end of the test.
using test::TempDir;

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr) << path;
    if (!bytes.empty()) {
      ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
    }
    ASSERT_EQ(gzclose(f), Z_OK);
  } else {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    ASSERT_TRUE(f.good()) << path;
  }
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

// The bytes of an IDX file: magic 0x000008<ndims>, big-endian dims, then the data.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data,
                               uint32_t magic = 0) {
  std::vector<uint8_t> out;
  put_be32(out, magic ? magic : 0x800u | uint32_t(dims.size()));
  for (uint32_t d : dims) put_be32(out, d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed, int hi = 255) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(rng() % (hi + 1));
  return v;
}

// Pixels and labels of a small MNIST-format dataset.
struct SmallIdx {
  std::vector<uint8_t> train_images, train_labels, test_images, test_labels;
};

SmallIdx write_mnist_dir(const TempDir& dir, int n_train, int n_test, bool gz, uint64_t seed,
                         const std::string& sep = "-") {
  SmallIdx s;
  s.train_images = random_bytes(size_t(n_train) * 784, seed);
  s.train_labels = random_bytes(size_t(n_train), seed + 1, 9);
  s.test_images = random_bytes(size_t(n_test) * 784, seed + 2);
  s.test_labels = random_bytes(size_t(n_test), seed + 3, 9);
  const std::string ext = gz ? ".gz" : "";
  write_bytes(dir / ("train-images" + sep + "idx3-ubyte" + ext),
              idx_bytes({uint32_t(n_train), 28, 28}, s.train_images), gz);
  write_bytes(dir / ("train-labels" + sep + "idx1-ubyte" + ext),
              idx_bytes({uint32_t(n_train)}, s.train_labels), gz);
  write_bytes(dir / ("t10k-images" + sep + "idx3-ubyte" + ext),
              idx_bytes({uint32_t(n_test), 28, 28}, s.test_images), gz);
  write_bytes(dir / ("t10k-labels" + sep + "idx1-ubyte" + ext),
              idx_bytes({uint32_t(n_test)}, s.test_labels), gz);
  return s;
}

// The message of the iotnas::Error that `f` throws, or "" (and a test failure) if it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error is not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no iotnas::Error thrown";
  return "";
}

#define EXPECT_MENTIONS(msg, part)               \
  EXPECT_NE((msg).find(part), std::string::npos) \
      << "'" << (msg) << "' does not mention '" << (part) << "'"

// ---- dataset names ----------------------------------------------------------------------------

TEST(DatasetInfo, ResolvesNamesWithoutReadingFiles) {
  DatasetInfo f = dataset_info("fashion-mnist");
  EXPECT_EQ(f.name, "fashion-mnist");
  EXPECT_EQ(f.shape, (Shape{1, 28, 28}));
  EXPECT_EQ(f.classes, 10);
  EXPECT_EQ(dataset_info("mnist:/no/such/dir").shape, (Shape{1, 28, 28}));
  DatasetInfo c = dataset_info("cifar10:/no/such/dir");
  EXPECT_EQ(c.name, "cifar10");
  EXPECT_EQ(c.shape, (Shape{3, 32, 32}));
  EXPECT_EQ(dataset_info("synthetic").shape, (Shape{1, 28, 28}));
  DatasetInfo s = dataset_info("synthetic:shape=3x16x12,classes=4,train=50,test=20,seed=7");
  EXPECT_EQ(s.shape, (Shape{3, 16, 12}));
  EXPECT_EQ(s.classes, 4);
}

TEST(DatasetInfo, BadNamesAreClearErrors) {
  EXPECT_MENTIONS(error_of([] { dataset_info("imagenet"); }), "unknown dataset 'imagenet'");
  EXPECT_MENTIONS(error_of([] { dataset_info("mnist"); }), "mnist:");
  EXPECT_MENTIONS(error_of([] { dataset_info("cifar10"); }), "cifar10:");
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:classes=1"); }), "classes=1");
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:shape=3x32"); }), "CxHxW");
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:colour=red"); }), "unknown key 'colour'");
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:train"); }), "KEY=VALUE");
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:train=12x"); }), "train=12x");
}

TEST(DatasetInfo, RepeatedKeysAndHugeCountsAreRefused) {
  std::string msg = error_of([] { dataset_info("synthetic:train=10,train=20"); });
  EXPECT_MENTIONS(msg, "'train' is given twice");
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:seed=1,shape=1x8x8,seed=2"); }),
                  "'seed' is given twice");
  // The documented limit: 2^30 images per split, 4 GiB of pixels in all.
  for (const char* n : {"1000000000000", "1e12", "1073741825"}) {
    msg = error_of([&] { dataset_info(std::string("synthetic:train=") + n); });
    EXPECT_MENTIONS(msg, "1073741824");
  }
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:test=1000000000000"); }), "test=");
  EXPECT_MENTIONS(error_of([] { dataset_info("synthetic:shape=64x4096x4096,train=3,test=2"); }),
                  "4 GiB");
  // make_synthetic itself refuses before allocating anything.
  msg = error_of([] { make_synthetic(int64_t(1e12), 1, {1, 28, 28}, 10, 0); });
  EXPECT_MENTIONS(msg, "1000000000000 training");
  EXPECT_MENTIONS(msg, "1073741824");
  EXPECT_MENTIONS(error_of([] { make_synthetic(1, 1, {1, 1 << 20, 1 << 20}, 10, 0); }), "4096");
}

TEST(SyntheticSpec, LoadsWithTheAskedSizes) {
  Dataset ds = load_dataset("synthetic:shape=3x8x8,classes=5,train=40,test=15,seed=3");
  EXPECT_EQ(ds.shape, (Shape{3, 8, 8}));
  EXPECT_EQ(ds.train_size(), 40);
  EXPECT_EQ(ds.test_size(), 15);
  EXPECT_EQ(ds.class_names.size(), 5u);
  EXPECT_EQ(ds.train_images, make_synthetic(40, 15, {3, 8, 8}, 5, 3).train_images);
}

// ---- IDX --------------------------------------------------------------------------------------

TEST(Idx, RealFashionMnist) {
  const std::string dir = test::fashion_mnist_dir();
  if (dir.empty())
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  const auto t0 = std::chrono::steady_clock::now();
  Dataset ds = load_dataset("fashion-mnist:" + dir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[          ] loaded Fashion-MNIST in %.2f s\n", seconds);
  EXPECT_EQ(ds.name, "fashion-mnist");
  EXPECT_EQ(ds.shape, (Shape{1, 28, 28}));
  ASSERT_EQ(ds.train_size(), 60000);
  ASSERT_EQ(ds.test_size(), 10000);
  EXPECT_EQ(ds.train_images.size(), 60000u * 784);
  EXPECT_EQ(ds.test_images.size(), 10000u * 784);
  std::vector<int> train_count(10), test_count(10);
  for (uint8_t l : ds.train_labels) ++train_count.at(l);
  for (uint8_t l : ds.test_labels) ++test_count.at(l);
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(train_count[c], 6000) << "class " << c;
    EXPECT_EQ(test_count[c], 1000) << "class " << c;
  }
  ASSERT_EQ(ds.mean.size(), 1u);
  EXPECT_NEAR(ds.mean[0], 0.2860, 5e-4);
  EXPECT_NEAR(ds.stddev[0], 0.3530, 5e-4);
  EXPECT_EQ(ds.class_names.at(9), "Ankle boot");
  EXPECT_FALSE(ds.augment_by_default);
}

TEST(Idx, GzipAndPlainFilesLoadTheSame) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  TempDir gz_dir, plain_dir, dot_dir;
  SmallIdx want = write_mnist_dir(gz_dir, 37, 11, true, seed);
  write_mnist_dir(plain_dir, 37, 11, false, seed);
  write_mnist_dir(dot_dir, 37, 11, true, seed, ".");  // "train-images.idx3-ubyte" naming
  for (const TempDir* d : {&gz_dir, &plain_dir, &dot_dir}) {
    Dataset ds = load_dataset("mnist:" + d->path.string());
    EXPECT_EQ(ds.name, "mnist");
    EXPECT_EQ(ds.train_images, want.train_images);
    EXPECT_EQ(ds.train_labels, want.train_labels);
    EXPECT_EQ(ds.test_images, want.test_images);
    EXPECT_EQ(ds.test_labels, want.test_labels);
    EXPECT_EQ(ds.class_names.size(), 10u);
  }
  IdxArray a = read_idx(gz_dir / "train-images-idx3-ubyte.gz", 3);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{37, 28, 28}));
}

TEST(Idx, FashionMnistNameUsesTheEnvironmentDirectory) {
  TempDir dir;
  SmallIdx want = write_mnist_dir(dir, 5, 3, true, 11);
  const char* old = std::getenv("IOTNAS_FASHION_MNIST");
  const std::string saved = old ? old : "";
  setenv("IOTNAS_FASHION_MNIST", dir.path.c_str(), 1);
  Dataset ds = load_dataset("fashion-mnist");
  EXPECT_EQ(ds.train_labels, want.train_labels);
  EXPECT_EQ(ds.class_names.at(0), "T-shirt/top");
  setenv("IOTNAS_FASHION_MNIST", (dir / "missing").c_str(), 1);
  const std::string msg = error_of([] { load_dataset("fashion-mnist"); });
  EXPECT_MENTIONS(msg, "apt-get install dataset-fashion-mnist");
  EXPECT_MENTIONS(msg, "train-images-idx3-ubyte");
  if (old) {
    setenv("IOTNAS_FASHION_MNIST", saved.c_str(), 1);
  } else {
    unsetenv("IOTNAS_FASHION_MNIST");
  }
}

TEST(Idx, MissingFilesNameTheFile) {
  TempDir dir;
  EXPECT_MENTIONS(error_of([&] { load_dataset("mnist:" + dir.path.string()); }),
                  "train-images-idx3-ubyte");
  write_mnist_dir(dir, 4, 4, true, 1);
  fs::remove(dir / "t10k-labels-idx1-ubyte.gz");
  EXPECT_MENTIONS(error_of([&] { load_dataset("mnist:" + dir.path.string()); }),
                  "t10k-labels-idx1-ubyte");
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "nothing.gz", 1); }), "does not exist");
}

TEST(Idx, TruncatedFilesSayWhatWasExpected) {
  for (bool gz : {true, false}) {
    SCOPED_TRACE(gz ? "gzip" : "plain");
    TempDir dir;
    std::vector<uint8_t> bytes = idx_bytes({10, 28, 28}, random_bytes(10 * 784, 5));
    bytes.resize(bytes.size() - 100);
    write_bytes(dir / "images.gz", bytes, gz);
    std::string msg = error_of([&] { read_idx(dir / "images.gz", 3); });
    EXPECT_MENTIONS(msg, "truncated");
    EXPECT_MENTIONS(msg, std::to_string(16 + 10 * 784));        // expected
    EXPECT_MENTIONS(msg, std::to_string(16 + 10 * 784 - 100));  // found
    EXPECT_MENTIONS(msg, "images.gz");
    // Cut inside the header.
    write_bytes(dir / "labels", {0, 0, 8, 1, 0, 0}, gz);
    EXPECT_MENTIONS(error_of([&] { read_idx(dir / "labels", 1); }), "truncated");
    // Empty file.
    write_bytes(dir / "empty", {}, gz);
    EXPECT_MENTIONS(error_of([&] { read_idx(dir / "empty", 1); }), "not an IDX labels file");
  }
}

TEST(Idx, TruncatedGzipStreamIsAnError) {
  TempDir dir;
  write_bytes(dir / "images.gz", idx_bytes({50, 28, 28}, random_bytes(50 * 784, 9)), true);
  std::vector<uint8_t> gz = read_bytes(dir / "images.gz");
  for (size_t keep : {gz.size() / 2, gz.size() - 4, size_t(30)}) {
    std::vector<uint8_t> cut(gz.begin(), gz.begin() + std::ptrdiff_t(keep));
    write_bytes(dir / "cut.gz", cut, false);
    const std::string msg = error_of([&] { read_idx(dir / "cut.gz", 3); });
    EXPECT_MENTIONS(msg, "cut.gz");
  }
  // Damaged compressed data in the middle.
  std::vector<uint8_t> bad = gz;
  for (size_t i = 100; i < 200 && i < bad.size(); ++i) bad[i] ^= 0x5a;
  write_bytes(dir / "bad.gz", bad, false);
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "bad.gz", 3); }), "bad.gz");
}

TEST(Idx, BytesAfterTheGzipDataAreAnError) {
  TempDir dir;
  const std::vector<uint8_t> plain = idx_bytes({6}, {1, 2, 3, 4, 5, 6});
  write_bytes(dir / "one.gz", plain, true);
  std::vector<uint8_t> gz = read_bytes(dir / "one.gz");
  for (const std::vector<uint8_t>& tail :
       {std::vector<uint8_t>{'j', 'u', 'n', 'k'}, std::vector<uint8_t>{0}, {0x1f}}) {
    std::vector<uint8_t> bad = gz;
    bad.insert(bad.end(), tail.begin(), tail.end());
    write_bytes(dir / "tail.gz", bad, false);
    const std::string msg = error_of([&] { read_idx(dir / "tail.gz", 1); });
    EXPECT_MENTIONS(msg, "tail.gz");
    EXPECT_MENTIONS(msg, std::to_string(tail.size()) + " bytes after the end of its gzip data");
  }
  // Two gzip members (`cat a.gz b.gz`) are one valid stream.
  write_bytes(dir / "a.gz", {plain.begin(), plain.begin() + 7}, true);
  write_bytes(dir / "b.gz", {plain.begin() + 7, plain.end()}, true);
  std::vector<uint8_t> joined = read_bytes(dir / "a.gz");
  const std::vector<uint8_t> b = read_bytes(dir / "b.gz");
  joined.insert(joined.end(), b.begin(), b.end());
  write_bytes(dir / "joined.gz", joined, false);
  EXPECT_EQ(read_idx(dir / "joined.gz", 1).data, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  // In memory as from the file.
  EXPECT_EQ(parse_idx(joined, 1, "mem").dims, (std::vector<int64_t>{6}));
  EXPECT_MENTIONS(error_of([&] { parse_idx(plain, 3, "mem"); }), "'mem' is not an IDX images");
}

TEST(Idx, TheGzipFileIsReadWhenBothExist) {
  TempDir dir;
  write_mnist_dir(dir, 4, 3, true, 1);
  const SmallIdx plain = write_mnist_dir(dir, 5, 2, false, 2);
  const Dataset ds = load_dataset("mnist:" + dir.path.string());
  EXPECT_EQ(ds.train_size(), 4);  // from train-images-idx3-ubyte.gz, not the plain file
  EXPECT_EQ(ds.test_size(), 3);
  // A damaged .gz is reported as such, naming it, even when a good plain copy sits beside it.
  write_bytes(dir / "t10k-labels-idx1-ubyte.gz", {1, 2, 3}, false);
  EXPECT_MENTIONS(error_of([&] { load_dataset("mnist:" + dir.path.string()); }),
                  "t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(plain.test_labels.size(), 2u);
}

TEST(Idx, WrongMagicIsAnError) {
  TempDir dir;
  write_bytes(dir / "labels.gz", idx_bytes({3, 28, 28}, random_bytes(3 * 784, 1)), true);
  std::string msg = error_of([&] { read_idx(dir / "labels.gz", 1); });
  EXPECT_MENTIONS(msg, "not an IDX labels file");
  EXPECT_MENTIONS(msg, "0x803");
  EXPECT_MENTIONS(msg, "0x801");
  // Float data type (0x0D) is not unsigned bytes.
  write_bytes(dir / "floats", idx_bytes({3}, {1, 2, 3}, 0x00000D01), false);
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "floats", 1); }), "not an IDX labels file");
  write_bytes(dir / "text", std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', '\n'}, false);
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "text", 3); }), "not an IDX images file");
}

TEST(Idx, ExtraBytesAndAbsurdHeadersAreErrors) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_bytes({4}, {1, 2, 3, 4});
  bytes.push_back(7);
  write_bytes(dir / "long", bytes, true);
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "long", 1); }), "longer than its header");
  // 4G x 4G x 4G images must not allocate anything large.
  write_bytes(dir / "huge", idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, {1, 2, 3}), false);
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "huge", 3); }), "8 GiB");
  // A header claiming 60000 images over a few bytes of data is truncated, and cheap to detect.
  write_bytes(dir / "short", idx_bytes({60000, 28, 28}, {1, 2, 3}), true);
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "short", 3); }), "truncated");
  write_bytes(dir / "zero", idx_bytes({0}, {}), false);
  EXPECT_MENTIONS(error_of([&] { read_idx(dir / "zero", 1); }), "holds no labels");
}

// Random damage (bytes changed, files cut) gives a result or an iotnas::Error, never a crash.
TEST(Idx, RandomDamageNeverCrashes) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937_64 rng(seed);
  TempDir dir;
  const std::vector<uint8_t> good = idx_bytes({6, 28, 28}, random_bytes(6 * 784, seed));
  write_bytes(dir / "good.gz", good, true);
  const std::vector<uint8_t> good_gz = read_bytes(dir / "good.gz");
  int errors = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const bool gz = trial % 2;
    std::vector<uint8_t> bytes = gz ? good_gz : good;
    const int changes = 1 + int(rng() % 3);
    for (int k = 0; k < changes; ++k) {
      // Half of the changes hit the header, where they matter most.
      const size_t at = (rng() % 2) ? rng() % 16 : rng() % bytes.size();
      bytes[at] = uint8_t(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    write_bytes(dir / "damaged", bytes, false);
    try {
      read_idx(dir / "damaged", 3);
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(Idx, WrongCountsSizesAndLabelsAreErrors) {
  {
    TempDir dir;
    write_mnist_dir(dir, 20, 5, true, 3);
    write_bytes(dir / "train-labels-idx1-ubyte.gz", idx_bytes({19}, random_bytes(19, 4, 9)), true);
    const std::string msg = error_of([&] { load_dataset("mnist:" + dir.path.string()); });
    EXPECT_MENTIONS(msg, "19 labels");
    EXPECT_MENTIONS(msg, "20 images");
  }
  {
    TempDir dir;
    write_mnist_dir(dir, 20, 5, true, 3);
    std::vector<uint8_t> labels = random_bytes(5, 4, 9);
    labels[3] = 10;
    write_bytes(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({5}, labels), true);
    const std::string msg = error_of([&] { load_dataset("mnist:" + dir.path.string()); });
    EXPECT_MENTIONS(msg, "label 10 of item 3");
    EXPECT_MENTIONS(msg, "t10k-labels-idx1-ubyte.gz");
  }
  {
    TempDir dir;
    write_mnist_dir(dir, 20, 5, true, 3);
    write_bytes(dir / "train-images-idx3-ubyte.gz",
                idx_bytes({20, 32, 32}, random_bytes(20 * 1024, 4)), true);
    EXPECT_MENTIONS(error_of([&] { load_dataset("mnist:" + dir.path.string()); }), "32x32");
  }
}

// ---- CIFAR-10 ---------------------------------------------------------------------------------

// Writes data_batch_1..5.bin and test_batch.bin with `per_batch` records each; returns the
// records in order (train batches, then test).
std::vector<std::vector<uint8_t>> write_cifar_dir(const std::string& dir, int per_batch,
                                                  uint64_t seed) {
  fs::create_directories(dir);
  std::vector<std::vector<uint8_t>> files;
  for (int b = 0; b < 6; ++b) {
    std::vector<uint8_t> bytes;
    for (int r = 0; r < per_batch; ++r) {
      bytes.push_back(uint8_t((seed + b * 7 + r * 3) % 10));
      std::vector<uint8_t> px = random_bytes(3072, seed * 100 + b * 10 + r);
      bytes.insert(bytes.end(), px.begin(), px.end());
    }
    const std::string name =
        b < 5 ? "data_batch_" + std::to_string(b + 1) + ".bin" : "test_batch.bin";
    write_bytes(dir + "/" + name, bytes, false);
    files.push_back(bytes);
  }
  return files;
}

TEST(Cifar10, ReadsBinaryBatchesPlanar) {
  TempDir dir;
  auto files = write_cifar_dir(dir.path.string(), 3, 42);
  Dataset ds = load_dataset("cifar10:" + dir.path.string());
  EXPECT_EQ(ds.name, "cifar10");
  EXPECT_EQ(ds.shape, (Shape{3, 32, 32}));
  ASSERT_EQ(ds.train_size(), 15);
  ASSERT_EQ(ds.test_size(), 3);
  EXPECT_TRUE(ds.augment_by_default);
  EXPECT_EQ(ds.class_names.at(1), "automobile");
  for (int i = 0; i < 15; ++i) {
    const std::vector<uint8_t>& f = files[i / 3];
    const size_t rec = size_t(i % 3) * 3073;
    EXPECT_EQ(ds.train_labels[i], f[rec]);
    EXPECT_TRUE(std::equal(f.begin() + std::ptrdiff_t(rec + 1),
                           f.begin() + std::ptrdiff_t(rec + 3073),
                           ds.train_images.begin() + i * 3072))
        << "image " << i;
  }
  EXPECT_EQ(ds.test_labels[2], files[5][2 * 3073]);
  ASSERT_EQ(ds.mean.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(ds.mean[c], 0.5, 0.02);       // uniform random bytes
    EXPECT_NEAR(ds.stddev[c], 0.2887, 0.02);  // 1/sqrt(12)
  }
}

TEST(Cifar10, AcceptsTheUnpackedSubdirectoryAndMeta) {
  TempDir dir;
  write_cifar_dir(dir / "cifar-10-batches-bin", 2, 1);
  std::ofstream(dir / "cifar-10-batches-bin/batches.meta.txt")
      << "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
  Dataset ds = load_dataset("cifar10:" + dir.path.string());
  EXPECT_EQ(ds.train_size(), 10);
  EXPECT_EQ(ds.class_names,
            (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}));
  std::ofstream(dir / "cifar-10-batches-bin/batches.meta.txt") << "a\nb\n";
  EXPECT_MENTIONS(error_of([&] { load_dataset("cifar10:" + dir.path.string()); }),
                  "batches.meta.txt");
}

TEST(Cifar10, BrokenFilesAreClearErrors) {
  {
    TempDir dir;
    EXPECT_MENTIONS(error_of([&] { load_dataset("cifar10:" + dir.path.string()); }),
                    "data_batch_1.bin");
  }
  {
    TempDir dir;
    auto files = write_cifar_dir(dir.path.string(), 2, 5);
    files[2].resize(files[2].size() - 1);
    write_bytes(dir / "data_batch_3.bin", files[2], false);
    const std::string msg = error_of([&] { load_dataset("cifar10:" + dir.path.string()); });
    EXPECT_MENTIONS(msg, "data_batch_3.bin");
    EXPECT_MENTIONS(msg, "3073");
    EXPECT_MENTIONS(msg, "truncated");
  }
  {
    TempDir dir;
    auto files = write_cifar_dir(dir.path.string(), 2, 5);
    files[5][3073] = 57;  // second record of test_batch.bin
    write_bytes(dir / "test_batch.bin", files[5], false);
    const std::string msg = error_of([&] { load_dataset("cifar10:" + dir.path.string()); });
    EXPECT_MENTIONS(msg, "test_batch.bin");
    EXPECT_MENTIONS(msg, "record 1 has label 57");
  }
  {
    TempDir dir;
    write_cifar_dir(dir.path.string(), 2, 5);
    fs::remove(dir / "data_batch_4.bin");
    EXPECT_MENTIONS(error_of([&] { load_dataset("cifar10:" + dir.path.string()); }),
                    "data_batch_4.bin");
    write_bytes(dir / "data_batch_4.bin", {}, false);
    EXPECT_MENTIONS(error_of([&] { load_dataset("cifar10:" + dir.path.string()); }), "is 0 bytes");
  }
}

// ---- synthetic --------------------------------------------------------------------------------

TEST(Synthetic, DeterministicBalancedAndLearnable) {
  const Shape shape{1, 16, 16};
  Dataset a = make_synthetic(600, 300, shape, 6, 17);
  Dataset b = make_synthetic(600, 300, shape, 6, 17);
  Dataset c = make_synthetic(600, 300, shape, 6, 18);
  EXPECT_EQ(a.train_images, b.train_images);
  EXPECT_EQ(a.test_labels, b.test_labels);
  EXPECT_NE(a.train_images, c.train_images);
  std::vector<int> count(6);
  for (uint8_t l : a.train_labels) ++count.at(l);
  for (int k : count) EXPECT_EQ(k, 100);
  // A nearest-class-mean classifier on the image means beats chance (1/6) by far.
  std::vector<double> sum(6), n(6);
  auto image_mean = [&](const std::vector<uint8_t>& px, int64_t i) {
    double s = 0;
    for (int64_t k = 0; k < shape.size(); ++k) s += px[i * shape.size() + k];
    return s / double(shape.size());
  };
  for (int64_t i = 0; i < a.train_size(); ++i) {
    sum[a.train_labels[i]] += image_mean(a.train_images, i);
    n[a.train_labels[i]] += 1;
  }
  int correct = 0;
  for (int64_t i = 0; i < a.test_size(); ++i) {
    const double m = image_mean(a.test_images, i);
    int best = 0;
    for (int k = 1; k < 6; ++k) {
      if (std::abs(m - sum[k] / n[k]) < std::abs(m - sum[best] / n[best])) best = k;
    }
    correct += best == a.test_labels[i];
  }
  EXPECT_GT(correct, a.test_size() / 2);
  EXPECT_MENTIONS(error_of([] { make_synthetic(10, 10, {1, 4, 4}, 1, 0); }), "classes");
}

// ---- splits -----------------------------------------------------------------------------------

TEST(ValidationSplit, StratifiedDisjointDeterministic) {
  Dataset ds = make_synthetic(1000, 10, {1, 4, 4}, 10, 1);
  ds.train_labels.resize(997);  // classes of 99 and 100 images
  ds.train_images.resize(997 * 16);
  TrainValSplit s = validation_split(ds, 0.1, 5);
  EXPECT_EQ(s.train.size() + s.val.size(), 997u);
  std::vector<int32_t> all;
  std::merge(s.train.begin(), s.train.end(), s.val.begin(), s.val.end(), std::back_inserter(all));
  for (int32_t i = 0; i < 997; ++i) ASSERT_EQ(all[i], i) << "not a partition";
  std::vector<int> per_class(10), val_per_class(10);
  for (uint8_t l : ds.train_labels) ++per_class[l];
  for (int32_t i : s.val) ++val_per_class[ds.train_labels[i]];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(val_per_class[c], std::lround(0.1 * per_class[c]));
  TrainValSplit again = validation_split(ds, 0.1, 5);
  EXPECT_EQ(again.val, s.val);
  EXPECT_NE(validation_split(ds, 0.1, 6).val, s.val);
  EXPECT_TRUE(validation_split(ds, 0.0, 5).val.empty());
  EXPECT_MENTIONS(error_of([&] { validation_split(ds, 1.0, 5); }), "[0, 1)");
  EXPECT_MENTIONS(error_of([&] { validation_split(ds, -0.1, 5); }), "[0, 1)");
  EXPECT_MENTIONS(error_of([&] { validation_split(ds, std::nan(""), 5); }), "[0, 1)");
}

TEST(BalancedSubset, EqualSharesInFileOrder) {
  std::vector<uint8_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(uint8_t((i * 7) % 10));
  std::vector<int32_t> s = balanced_subset(labels, 25, 10);
  ASSERT_EQ(s.size(), 25u);
  EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  std::vector<int> count(10);
  for (int32_t i : s) ++count[labels[i]];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(count[c], c < 5 ? 3 : 2) << "class " << c;
  // The first images of each class in file order.
  for (int32_t i : s) {
    int before = 0;
    for (int32_t j = 0; j < i; ++j) before += labels[j] == labels[i];
    EXPECT_LT(before, count[labels[i]]);
  }
  EXPECT_EQ(balanced_subset(labels, 25, 10), s);
  EXPECT_EQ(balanced_subset(labels, 1000, 10).size(), 100u);
  EXPECT_TRUE(balanced_subset(labels, 0, 10).empty());
  // A short class: its share goes to the others.
  std::vector<uint8_t> skewed(50, 0);
  skewed[10] = 1;
  skewed[20] = 2;
  std::vector<int32_t> t = balanced_subset(skewed, 9, 3);
  ASSERT_EQ(t.size(), 9u);
  EXPECT_TRUE(std::find(t.begin(), t.end(), 10) != t.end());
  EXPECT_TRUE(std::find(t.begin(), t.end(), 20) != t.end());
  EXPECT_MENTIONS(error_of([&] { balanced_subset(skewed, 5, 2); }), "label 2");
  EXPECT_MENTIONS(error_of([&] { balanced_subset(skewed, -1, 3); }), "negative");
}

// ---- Batcher ----------------------------------------------------------------------------------

std::vector<float> run_epoch(Batcher& b, int epoch, std::vector<int32_t>* labels = nullptr) {
  b.start_epoch(epoch);
  const int64_t img = b.shape().size();
  std::vector<float> out, batch(size_t(b.options().batch * img));
  std::vector<int32_t> lab(size_t(b.options().batch));
  while (int n = b.next(batch.data(), lab.data())) {
    out.insert(out.end(), batch.begin(), batch.begin() + n * img);
    if (labels) labels->insert(labels->end(), lab.begin(), lab.begin() + n);
  }
  return out;
}

TEST(Batcher, NormalisesWithTheTrainingStatistics) {
  Dataset ds = make_synthetic(50, 20, {3, 5, 7}, 4, 2);
  BatchOptions o;
  o.batch = 8;
  o.shuffle = false;
  Batcher b(ds, false, {}, o);
  std::vector<int32_t> labels;
  std::vector<float> got = run_epoch(b, 0, &labels);
  ASSERT_EQ(got.size(), ds.test_images.size());
  for (size_t k = 0; k < got.size(); ++k) {
    const int c = int(k / 35 % 3);
    const double want = (ds.test_images[k] / 255.0 - ds.mean[c]) / ds.stddev[c];
    ASSERT_NEAR(got[k], want, 1e-6 * (1 + std::abs(want))) << "element " << k;
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(labels[i], ds.test_labels[i]);
  // Over the training split, each channel comes out with mean 0 and deviation 1.
  Batcher t(ds, true, {}, o);
  std::vector<float> train = run_epoch(t, 0);
  for (int c = 0; c < 3; ++c) {
    double s = 0, s2 = 0, n = 0;
    for (size_t k = 0; k < train.size(); ++k) {
      if (int(k / 35 % 3) != c) continue;
      s += train[k], s2 += double(train[k]) * train[k], n += 1;
    }
    EXPECT_NEAR(s / n, 0.0, 1e-5);
    EXPECT_NEAR(std::sqrt(s2 / n - (s / n) * (s / n)), 1.0, 1e-5);
  }
}

TEST(Batcher, EveryIndexOnceAndShortLastBatch) {
  Dataset ds = make_synthetic(103, 10, {1, 4, 4}, 5, 3);
  BatchOptions o;
  o.batch = 10;
  o.seed = fresh_seed();
  SCOPED_TRACE(seed_note(o.seed));
  Batcher b(ds, true, {}, o);
  EXPECT_EQ(b.size(), 103);
  EXPECT_EQ(b.batches_per_epoch(), 11);
  for (int epoch = 0; epoch < 3; ++epoch) {
    b.start_epoch(epoch);
    std::vector<int32_t> order = b.epoch_order();
    std::vector<int32_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (int32_t i = 0; i < 103; ++i) ASSERT_EQ(sorted[i], i);
    std::vector<float> x(10 * 16);
    std::vector<int32_t> y(10);
    std::vector<int> sizes;
    int64_t seen = 0;
    while (int n = b.next(x.data(), y.data())) {
      sizes.push_back(n);
      for (int i = 0; i < n; ++i) EXPECT_EQ(y[i], ds.train_labels[order[seen + i]]);
      seen += n;
    }
    EXPECT_EQ(seen, 103);
    EXPECT_EQ(sizes.size(), 11u);
    EXPECT_EQ(sizes.back(), 3);
    EXPECT_EQ(b.next(x.data(), y.data()), 0);  // stays at the end
  }
  o.drop_last = true;
  Batcher d(ds, true, {}, o);
  EXPECT_EQ(d.batches_per_epoch(), 10);
  std::vector<int32_t> labels;
  EXPECT_EQ(run_epoch(d, 0, &labels).size(), 100u * 16);
}

TEST(Batcher, SubsetsOnly) {
  Dataset ds = make_synthetic(60, 10, {1, 4, 4}, 3, 4);
  TrainValSplit s = validation_split(ds, 0.25, 1);
  BatchOptions o;
  o.batch = 7;
  Batcher b(ds, true, s.val, o);
  EXPECT_EQ(b.size(), int64_t(s.val.size()));
  std::vector<int32_t> order = b.epoch_order();
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, s.val);
  EXPECT_MENTIONS(error_of([&] { Batcher(ds, false, {3, 10}, o); }), "index 10");
  EXPECT_MENTIONS(error_of([&] { Batcher(ds, true, {-1}, o); }), "index -1");
  o.batch = 0;
  EXPECT_MENTIONS(error_of([&] { Batcher(ds, true, {}, o); }), "batch size 0");
}

TEST(Batcher, SameSeedSameBatchesOtherEpochsDiffer) {
  Dataset ds = make_synthetic(200, 10, {3, 8, 8}, 10, 5);
  for (bool augment : {false, true}) {
    SCOPED_TRACE(augment ? "augment" : "plain");
    BatchOptions o;
    o.batch = 16;
    o.augment = augment;
    o.seed = 99;
    Batcher a(ds, true, {}, o), b(ds, true, {}, o);
    const std::vector<float> a0 = run_epoch(a, 0), a1 = run_epoch(a, 1);
    EXPECT_EQ(run_epoch(b, 1), a1);
    EXPECT_EQ(run_epoch(b, 0), a0);
    EXPECT_NE(a0, a1);
    a.start_epoch(0);
    const std::vector<int32_t> order0 = a.epoch_order();
    a.start_epoch(1);
    EXPECT_NE(a.epoch_order(), order0);
    o.seed = 100;
    Batcher c(ds, true, {}, o);
    EXPECT_NE(c.epoch_order(), order0);
  }
  BatchOptions o;
  o.shuffle = false;
  Batcher s(ds, true, {}, o);
  s.start_epoch(3);
  for (int32_t i = 0; i < 200; ++i) ASSERT_EQ(s.epoch_order()[i], i);
}

TEST(Batcher, ResultDoesNotDependOnThreads) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Dataset one = make_synthetic(300, 10, {3, 32, 32}, 10, 6);
  BatchOptions o;
  o.batch = 64;
  o.augment = true;
  o.seed = 3;
  Batcher a(one, true, {}, o);
  const std::vector<float> batches_one = run_epoch(a, 2);
  omp_set_num_threads(std::max(2, threads));
  const Dataset two = make_synthetic(300, 10, {3, 32, 32}, 10, 6);
  EXPECT_EQ(two.train_images, one.train_images);
  Batcher b(two, true, {}, o);
  EXPECT_EQ(run_epoch(b, 2), batches_one);
  omp_set_num_threads(threads);
}

// Reference augmentation: crop at (dy, dx) from the image padded with 4 zero pixels, then flip.
std::vector<float> crop_flip(const std::vector<float>& plain, Shape s, int dy, int dx, bool flip,
                             const std::vector<float>& pad) {
  std::vector<float> out(size_t(s.size()));
  for (int c = 0; c < s.c; ++c) {
    for (int y = 0; y < s.h; ++y) {
      for (int x = 0; x < s.w; ++x) {
        const int sy = y + dy, sx = (flip ? s.w - 1 - x : x) + dx;
        const bool inside = sy >= 0 && sy < s.h && sx >= 0 && sx < s.w;
        out[(c * s.h + y) * s.w + x] = inside ? plain[(c * s.h + sy) * s.w + sx] : pad[c];
      }
    }
  }
  return out;
}

TEST(Batcher, AugmentationIsACropOfThePaddedImageMaybeFlipped) {
  const Shape shape{3, 10, 9};
  Dataset ds = make_synthetic(40, 10, shape, 4, 7);
  BatchOptions o;
  o.batch = 40;
  o.shuffle = false;
  Batcher plain_b(ds, true, {}, o);
  o.augment = true;
  o.seed = fresh_seed();
  SCOPED_TRACE(seed_note(o.seed));
  Batcher aug_b(ds, true, {}, o);
  const std::vector<float> plain = run_epoch(plain_b, 0), aug = run_epoch(aug_b, 0);
  ASSERT_EQ(aug.size(), plain.size());
  std::vector<float> pad(3);
  for (int c = 0; c < 3; ++c) pad[c] = float((0.0 - ds.mean[c]) / ds.stddev[c]);
  const int64_t n = shape.size();
  std::set<std::tuple<int, int, bool>> used;
  int unchanged = 0;
  for (int i = 0; i < 40; ++i) {
    const std::vector<float> p(plain.begin() + i * n, plain.begin() + (i + 1) * n);
    const std::vector<float> a(aug.begin() + i * n, aug.begin() + (i + 1) * n);
    unchanged += a == p;
    bool found = false;
    for (int dy = -4; dy <= 4 && !found; ++dy) {
      for (int dx = -4; dx <= 4 && !found; ++dx) {
        for (bool flip : {false, true}) {
          if (test::all_close(a, crop_flip(p, shape, dy, dx, flip, pad), 0, 1e-6)) {
            found = true;
            used.insert({dy, dx, flip});
            break;
          }
        }
      }
    }
    EXPECT_TRUE(found) << "image " << i << " is no crop/flip of its original";
  }
  EXPECT_LT(unchanged, 5);
  EXPECT_GT(used.size(), 10u);  // offsets vary from image to image
}

// Images per second of Batcher::next over one epoch (best of three), batch 128.
double batcher_rate(const Dataset& ds, bool augment) {
  BatchOptions o;
  o.batch = 128;
  o.augment = augment;
  Batcher b(ds, true, {}, o);
  std::vector<float> x(size_t(128 * ds.shape.size()));
  std::vector<int32_t> y(128);
  double best = 0;
  for (int epoch = 0; epoch < 3; ++epoch) {
    b.start_epoch(epoch);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t images = 0;
    while (int n = b.next(x.data(), y.data())) images += n;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(images) / s);
    EXPECT_EQ(images, ds.train_size());
  }
  std::printf("[          ] Batcher %s %s, batch 128: %.0f images/s (%.2f GB/s out)\n",
              ds.name.c_str(), augment ? "augmented" : "plain", best,
              best * double(ds.shape.size()) * 4 / 1e9);
  return best;
}

// Throughput on Fashion-MNIST (the real set when installed) and on CIFAR-10-shaped random data.
TEST(Batcher, Throughput) {
  const std::string dir = test::fashion_mnist_dir();
  const Dataset fashion = dir.empty() ? make_synthetic(60000, 10, {1, 28, 28}, 10, 1)
                                      : load_dataset("fashion-mnist:" + dir);
  batcher_rate(fashion, false);
  batcher_rate(fashion, true);
  Dataset cifar;
  cifar.name = "cifar10-shaped";
  cifar.shape = {3, 32, 32};
  cifar.classes = 10;
  cifar.train_images = random_bytes(10000 * 3072, 1);
  cifar.train_labels = random_bytes(10000, 2, 9);
  compute_statistics(cifar);
  batcher_rate(cifar, false);
  batcher_rate(cifar, true);
}

}  // namespace
}  // namespace iotnas
