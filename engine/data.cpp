#include "engine/data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "engine/util/rng.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

namespace fs = std::filesystem;

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
constexpr int kCifarPixels = 3 * 32 * 32;
constexpr int kCifarRecord = 1 + kCifarPixels;
constexpr int kPad = 4;                             // augmentation: random crop from zero padding 4
constexpr int64_t kMaxIdxBytes = int64_t(1) << 33;  // 8 GiB: anything larger is a damaged header

// ---- random streams (engine/util/rng.hpp): one StreamRng per (seed, tag, coordinate)

// Stream tags, so that shuffling, augmentation and the rest never share a stream.
enum : uint64_t {
  kTagShuffle = 0x5348,
  kTagAugment = 0x4155,
  kTagSplit = 0x5350,
  kTagSynthetic = 0x5359,
};

// dst[k] = src[k] * scale + bias: the Batcher's normalisation, (x/255 - mean) / stddev.
void normalise(const uint8_t* __restrict src, float* __restrict dst, int64_t n, float scale,
               float bias) {
  for (int64_t k = 0; k < n; ++k) dst[k] = float(src[k]) * scale + bias;
}

// ---- IDX --------------------------------------------------------------------------------------

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

std::string gz_error(gzFile f) {
  int code = 0;
  const char* msg = gzerror(f, &code);
  return code == Z_ERRNO ? std::strerror(errno) : (msg ? msg : "unknown zlib error");
}

// True when the compressed stream ended early: gzread then returns short reads, not an error.
bool gz_cut_short(gzFile f) {
  int code = 0;
  gzerror(f, &code);
  return code == Z_BUF_ERROR;
}

// Reads up to `n` bytes; returns how many it got (fewer only at the end of the data).
int64_t gz_read(gzFile f, uint8_t* dst, int64_t n, const std::string& path) {
  int64_t got = 0;
  while (got < n) {
    const unsigned chunk = unsigned(std::min<int64_t>(n - got, 1 << 24));
    const int r = gzread(f, dst + got, chunk);
    if (r < 0) {
      fail("'", path, "' cannot be read (", gz_error(f),
           "): the gzip data is damaged; replace the file with a good copy");
    }
    if (r == 0) break;
    got += r;
  }
  return got;
}

// An upper bound on the bytes a file decompresses to, from its size and, for gzip, the stored
// length (mod 2^32) in its last 4 bytes; deflate cannot expand more than 1032 times.
int64_t data_hint(const std::string& path) {
  std::error_code ec;
  const int64_t size = int64_t(fs::file_size(path, ec));
  if (ec) return 0;
  std::ifstream f(path, std::ios::binary);
  uint8_t b[4] = {};
  if (size < 18 || !f.read(reinterpret_cast<char*>(b), 2) || b[0] != 0x1f || b[1] != 0x8b) {
    return size;  // not gzip
  }
  if (!f.seekg(size - 4) || !f.read(reinterpret_cast<char*>(b), 4)) return 0;
  const int64_t stored =
      int64_t(uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24);
  return std::min(stored, 1032 * size);
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::ostringstream os;
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? "x" : "") << dims[i];
  return os.str();
}

// The first of DIR/<prefix>-<kind>-idx<n>-ubyte[.gz] (or "<kind>.idx" as some mirrors name it).
std::string find_idx(const std::string& dir, const std::string& prefix, const std::string& kind,
                     int ndims) {
  const std::string idx = "idx" + std::to_string(ndims) + "-ubyte";
  for (const std::string& base :
       {prefix + "-" + kind + "-" + idx, prefix + "-" + kind + "." + idx}) {
    for (const char* ext : {".gz", ""}) {
      const fs::path p = fs::path(dir) / (base + ext);
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  }
  return "";
}

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
    if (key == "shape") {
      int64_t d[3];
      size_t s = 0;
      for (int i = 0; i < 3; ++i) {
        size_t x = i < 2 ? value.find('x', s) : value.size();
        if (x == std::string::npos) fail("dataset '", spec, "': shape must be CxHxW, e.g. 3x32x32");
        d[i] = parse_int(spec, "shape", value.substr(s, x - s), 1, i == 0 ? 64 : 4096);
        s = x + 1;
      }
      sp.shape = Shape{int(d[0]), int(d[1]), int(d[2])};
    } else if (key == "classes") {
      sp.classes = int(parse_int(spec, key, value, 2, 256));
    } else if (key == "train") {
      sp.n_train = parse_int(spec, key, value, 1, int64_t(1) << 30);
    } else if (key == "test") {
      sp.n_test = parse_int(spec, key, value, 1, int64_t(1) << 30);
    } else if (key == "seed") {
      sp.seed = uint64_t(parse_int(spec, key, value, 0, INT64_MAX));
    } else {
      fail("dataset '", spec, "': unknown key '", key,
           "'; synthetic takes shape=CxHxW, classes=K, train=N, test=M, seed=S");
    }
  }
  if ((sp.n_train + sp.n_test) * sp.shape.size() > (int64_t(1) << 32)) {
    fail("dataset '", spec, "': more than 4 GiB of pixels; ask for fewer or smaller images");
  }
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

// ---- loaders ----------------------------------------------------------------------------------

void check_labels(const std::vector<uint8_t>& labels, int classes, const std::string& path,
                  const char* hint) {
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= classes) {
      fail("'", path, "': label ", int(labels[i]), " of item ", i, " is outside 0..", classes - 1,
           ": ", hint);
    }
  }
}

void load_idx_split(const ParsedSpec& p, const std::string& prefix, std::vector<uint8_t>& images,
                    std::vector<uint8_t>& labels) {
  const bool fashion_default = p.info.name == "fashion-mnist";
  auto locate = [&](const std::string& kind, int nd) {
    std::string path = find_idx(p.dir, prefix, kind, nd);
    if (!path.empty()) return path;
    const std::string want = prefix + "-" + kind + "-idx" + std::to_string(nd) + "-ubyte[.gz]";
    if (fashion_default) {
      fail("fashion-mnist: no ", want, " in '", p.dir,
           "'; install the dataset with `apt-get install dataset-fashion-mnist`, or set "
           "IOTNAS_FASHION_MNIST (or use fashion-mnist:DIR) to a directory holding its IDX files");
    }
    fail(p.info.name, ": no ", want, " in '", p.dir,
         "'; the directory must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, "
         "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may end in .gz)");
  };
  const std::string image_path = locate("images", 3), label_path = locate("labels", 1);
  IdxArray im = read_idx(image_path, 3);
  IdxArray lb = read_idx(label_path, 1);
  const Shape& s = p.info.shape;
  if (im.dims[1] != s.h || im.dims[2] != s.w) {
    fail("'", image_path, "' holds ", im.dims[1], "x", im.dims[2], " images; ", p.info.name,
         " images are ", s.h, "x", s.w, ": not a ", p.info.name, " file");
  }
  if (lb.dims[0] != im.dims[0]) {
    fail("'", label_path, "' holds ", lb.dims[0], " labels but '", image_path, "' holds ",
         im.dims[0],
         " images: the two files do not belong together; replace them with a matching "
         "pair");
  }
  check_labels(lb.data, p.info.classes, label_path,
               "the file is damaged or not a 10-class label file");
  images = std::move(im.data);
  labels = std::move(lb.data);
}

const std::vector<std::string> kFashionNames = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                "Bag",         "Ankle boot"};
const std::vector<std::string> kCifarNames = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

Dataset load_idx_dataset(const ParsedSpec& p) {
  Dataset ds;
  ds.name = p.info.name;
  ds.origin = p.dir;
  ds.shape = p.info.shape;
  ds.classes = p.info.classes;
  if (ds.name == "fashion-mnist") {
    ds.class_names = kFashionNames;
  } else {
    for (int c = 0; c < 10; ++c) ds.class_names.push_back(std::to_string(c));
  }
  load_idx_split(p, "train", ds.train_images, ds.train_labels);
  load_idx_split(p, "t10k", ds.test_images, ds.test_labels);
  return ds;
}

void read_cifar_batch(const std::string& path, std::vector<uint8_t>& images,
                      std::vector<uint8_t>& labels) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail("cifar10: '", path, "' is missing; a CIFAR-10 directory holds data_batch_1.bin .. ",
         "data_batch_5.bin and test_batch.bin (unpack cifar-10-binary.tar.gz there)");
  }
  const uintmax_t size = fs::file_size(path, ec);
  if (ec || size == 0 || size % kCifarRecord != 0) {
    fail("cifar10: '", path, "' is ", ec ? 0 : size, " bytes, not a whole number of ", kCifarRecord,
         "-byte records (1 label byte + 3072 pixels): truncated or not a CIFAR-10 binary batch; "
         "replace it with a complete copy");
  }
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> raw(size);
  if (!f.read(reinterpret_cast<char*>(raw.data()), std::streamsize(size))) {
    fail("cifar10: cannot read '", path, "': ", std::strerror(errno));
  }
  const int64_t n = int64_t(size / kCifarRecord);
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

Dataset load_cifar10(const ParsedSpec& p) {
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
    std::ifstream f(meta);
    std::string line;
    while (std::getline(f, line)) {
      const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
      if (b != std::string::npos) ds.class_names.push_back(line.substr(b, e - b + 1));
    }
    if (ds.class_names.size() != 10) {
      fail("cifar10: '", meta.string(), "' names ", ds.class_names.size(),
           " classes, CIFAR-10 has 10: replace the file or remove it (the standard names are used "
           "then)");
    }
  } else {
    ds.class_names = kCifarNames;
  }
  return ds;
}

}  // namespace

// ---- public -----------------------------------------------------------------------------------

DatasetInfo dataset_info(const std::string& spec) {
  return parse_dataset_spec(spec).info;
}

IdxArray read_idx(const std::string& path, int ndims) {
  IOTNAS_ASSERT(ndims >= 1 && ndims <= 4);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("IDX file '", path, "' does not exist or is not a file");
  GzFile gz;
  gz.f = gzopen(path.c_str(), "rb");  // reads plain (uncompressed) files too
  if (!gz.f) fail("cannot open IDX file '", path, "': ", std::strerror(errno));
  gzbuffer(gz.f, 1 << 17);
  const char* what = ndims == 1 ? "labels" : "images";
  const uint32_t want_magic = 0x800u | uint32_t(ndims);
  uint8_t head[4 + 4 * 4];
  const int64_t header_bytes = 4 + 4 * int64_t(ndims);
  const int64_t got_head = gz_read(gz.f, head, 4, path);
  const uint32_t magic =
      got_head < 4 ? 0 : (uint32_t(head[0]) << 24 | head[1] << 16 | head[2] << 8 | head[3]);
  if (got_head < 4 || magic != want_magic) {
    std::ostringstream hex;
    hex << std::hex << magic;
    fail("'", path, "' is not an IDX ", what, " file (magic 0x", got_head < 4 ? "?" : hex.str(),
         ", expected 0x", std::hex, want_magic, std::dec,
         "); check the file name (images and labels swapped?) and replace it with a good copy");
  }
  IdxArray out;
  const int64_t got_dims = gz_read(gz.f, head + 4, 4 * ndims, path);
  if (got_dims < 4 * ndims) {
    fail("'", path, "' is truncated: expected a ", header_bytes, "-byte IDX header, found ",
         4 + got_dims, " bytes; replace it with a complete copy");
  }
  int64_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    const uint8_t* b = head + 4 + 4 * d;
    const int64_t dim = int64_t(uint32_t(b[0]) << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    out.dims.push_back(dim);
    if (dim == 0) fail("'", path, "' holds no ", what, " (dimension ", d, " is 0)");
    if (dim > kMaxIdxBytes / count) {
      fail("'", path, "': header dimensions ", dims_string(out.dims),
           " claim more than 8 GiB: the header is damaged; replace the file with a good copy");
    }
    count *= dim;
  }
  // Allocate what the file can hold, and grow as data arrives beyond that, so that a damaged
  // header cannot make us allocate gigabytes up front.
  int64_t got = 0;
  out.data.resize(size_t(std::min<int64_t>(count, std::max<int64_t>(1 << 20, data_hint(path)))));
  while (got < count) {
    if (got == int64_t(out.data.size())) {
      out.data.resize(size_t(std::min<int64_t>(count, 2 * got)));
    }
    const int64_t r = gz_read(gz.f, out.data.data() + got, int64_t(out.data.size()) - got, path);
    got += r;
    if (r == 0) break;
  }
  if (got < count) {
    fail("'", path, "' is truncated: its header (", what, " ", dims_string(out.dims), ") needs ",
         header_bytes + count, " bytes, found ", header_bytes + got,
         gz_cut_short(gz.f) ? " (the gzip stream ends early)" : "",
         "; replace it with a complete copy");
  }
  uint8_t extra = 0;
  if (gz_read(gz.f, &extra, 1, path) != 0) {
    fail("'", path, "' is longer than its header (", what, " ", dims_string(out.dims), ", ",
         header_bytes + count, " bytes) says: not a valid IDX file; replace it with a good copy");
  }
  if (gz_cut_short(gz.f)) {
    fail("'", path, "' is truncated: the gzip stream ends before its checksum; replace it with a ",
         "complete copy");
  }
  return out;
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
    ds = load_cifar10(p);
  } else {
    ds = load_idx_dataset(p);
  }
  compute_statistics(ds);
  return ds;
}

Dataset make_synthetic(int64_t n_train, int64_t n_test, Shape shape, int classes, uint64_t seed) {
  if (n_train < 0 || n_test < 0 || shape.c < 1 || shape.h < 1 || shape.w < 1 || classes < 2 ||
      classes > 256) {
    fail("synthetic dataset: need n_train, n_test >= 0, a positive shape and 2..256 classes (got ",
         n_train, ", ", n_test, ", ", to_string(shape), ", ", classes, ")");
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
    StreamRng order(stream_key(seed, kTagSynthetic, split));
    shuffle(labels, order);
    images.resize(n * size);
    const double pi = 3.14159265358979323846;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      StreamRng rng(stream_key(seed, split * 0x100000000ULL + kTagSynthetic, uint64_t(i)));
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
    StreamRng rng(stream_key(seed, kTagSplit, uint64_t(c)));
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

// ---- Batcher ----------------------------------------------------------------------------------

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
    StreamRng rng(stream_key(options_.seed, kTagShuffle, uint64_t(int64_t(epoch))));
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
  const uint64_t epoch_key = stream_key(options_.seed, kTagAugment, uint64_t(int64_t(epoch_)));
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
