// IDX files as MNIST and Fashion-MNIST ship them (gzip-compressed or plain) and the loader of
// those two datasets.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>

#include "engine/data/formats.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

namespace fs = std::filesystem;
using detail::ParsedSpec;

constexpr int64_t kMaxIdxBytes = int64_t(1) << 33;  // 8 GiB: anything larger is a damaged header

// The bytes of an IDX file held in memory, inflated on the fly when it is gzip-compressed. A gzip
// file may hold several members (as `cat a.gz b.gz` makes); anything after the last member that is
// not another member is refused (zlib's gzread would skip it silently).
class IdxBytes {
 public:
  IdxBytes(std::span<const uint8_t> file, const std::string& path)
      : file_(file), path_(path), gzip_(file.size() >= 2 && file[0] == 0x1f && file[1] == 0x8b) {
    if (gzip_ && inflateInit2(&z_, 15 + 16) != Z_OK) fail("zlib cannot inflate '", path, "'");
    z_.next_in = const_cast<uint8_t*>(file.data());
  }
  ~IdxBytes() {
    if (gzip_) inflateEnd(&z_);
  }
  IdxBytes(const IdxBytes&) = delete;
  IdxBytes& operator=(const IdxBytes&) = delete;

  // The most bytes the data can hold: deflate expands at most 1032 times.
  int64_t bound() const { return gzip_ ? 1032 * int64_t(file_.size()) : int64_t(file_.size()); }

  // Reads up to `n` bytes; returns how many it got (fewer only at the end of the data).
  int64_t read(uint8_t* dst, int64_t n) {
    if (!gzip_) {
      const int64_t got = std::min<int64_t>(n, int64_t(file_.size() - at_));
      if (got > 0) std::memcpy(dst, file_.data() + at_, size_t(got));
      at_ += size_t(got);
      return got;
    }
    int64_t got = 0;
    while (got < n && !ended_) {
      z_.avail_in = uInt(std::min<size_t>(left(), UINT32_MAX));
      z_.next_out = dst + got;
      z_.avail_out = uInt(std::min<int64_t>(n - got, 1 << 30));
      const uInt before = z_.avail_out;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      got += before - z_.avail_out;
      if (rc == Z_STREAM_END) {
        next_member();
      } else if (rc == Z_BUF_ERROR && left() == 0) {
        cut_short_ = ended_ = true;  // the compressed data ends inside a member
      } else if (rc != Z_OK) {
        fail("'", path_, "' cannot be read (", z_.msg ? z_.msg : "zlib error",
             "): the gzip data is damaged; replace the file with a good copy");
      }
    }
    return got;
  }

  // True when the gzip data ended inside a member (a short read then means a truncated file).
  bool cut_short() const { return cut_short_; }

 private:
  // Compressed bytes not yet given to zlib.
  size_t left() const { return size_t(file_.data() + file_.size() - z_.next_in); }

  // After a member's end: another member follows, or nothing may.
  void next_member() {
    if (left() == 0) {
      ended_ = true;
    } else if (left() >= 2 && z_.next_in[0] == 0x1f && z_.next_in[1] == 0x8b) {
      inflateReset(&z_);
    } else {
      fail("'", path_, "' has ", left(),
           " bytes after the end of its gzip data that are not another gzip member: the file "
           "is damaged or two files were joined; replace it with a good copy");
    }
  }

  std::span<const uint8_t> file_;
  std::string path_;
  bool gzip_;
  z_stream z_{};
  size_t at_ = 0;  // plain files: the next byte
  bool ended_ = false, cut_short_ = false;
};

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

IdxArray parse_idx(std::span<const uint8_t> file, int ndims, const std::string& path) {
  IOTNAS_ASSERT(ndims >= 1 && ndims <= 4);
  IdxBytes in(file, path);
  const char* what = ndims == 1 ? "labels" : "images";
  const uint32_t want_magic = 0x800u | uint32_t(ndims);
  uint8_t head[4 + 4 * 4];
  const int64_t header_bytes = 4 + 4 * int64_t(ndims);
  const int64_t got_head = in.read(head, 4);
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
  const int64_t got_dims = in.read(head + 4, 4 * ndims);
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
  // At most what the file can hold: a damaged header cannot make us allocate gigabytes.
  out.data.resize(size_t(std::min(count, in.bound())));
  const int64_t got = in.read(out.data.data(), int64_t(out.data.size()));
  if (got < count) {
    fail("'", path, "' is truncated: its header (", what, " ", dims_string(out.dims), ") needs ",
         header_bytes + count, " bytes, found ", header_bytes + got,
         in.cut_short() ? " (the gzip stream ends early)" : "",
         "; replace it with a complete copy");
  }
  uint8_t extra = 0;
  if (in.read(&extra, 1) != 0) {
    fail("'", path, "' is longer than its header (", what, " ", dims_string(out.dims), ", ",
         header_bytes + count, " bytes) says: not a valid IDX file; replace it with a good copy");
  }
  if (in.cut_short()) {
    fail("'", path, "' is truncated: the gzip stream ends before its checksum; replace it with a ",
         "complete copy");
  }
  return out;
}

IdxArray read_idx(const std::string& path, int ndims) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("IDX file '", path, "' does not exist or is not a file");
  const int64_t size = int64_t(fs::file_size(path, ec));
  if (ec) fail("cannot read IDX file '", path, "': ", ec.message());
  if (size > kMaxIdxBytes + 20) {
    fail("IDX file '", path, "' is ", size, " bytes, more than 8 GiB: not a dataset iotnas reads");
  }
  std::vector<uint8_t> file(size_t(size), 0);
  std::ifstream f(path, std::ios::binary);
  if (!f || !f.read(reinterpret_cast<char*>(file.data()), std::streamsize(size))) {
    fail("cannot read IDX file '", path, "': ", std::strerror(errno));
  }
  return parse_idx(file, ndims, path);
}

}  // namespace iotnas
