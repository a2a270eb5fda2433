// IDX files as MNIST and Fashion-MNIST ship them (gzip-compressed or plain) and the loader of
// those two datasets.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/data/formats.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

namespace fs = std::filesystem;
using detail::ParsedSpec;

constexpr int64_t kMaxIdxBytes = int64_t(1) << 33;  // 8 GiB: anything larger is a damaged header

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

}  // namespace

Dataset detail::load_idx_dataset(const ParsedSpec& p) {
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

}  // namespace iotnas
