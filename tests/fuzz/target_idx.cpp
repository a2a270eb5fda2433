// The IDX reader (gzip or plain), as images (3 dimensions) and as labels (1).
#include "engine/data.hpp"
#include "fuzz/fuzz_target.hpp"
#include "kernels/base/error.hpp"

IOTNAS_FUZZ_TARGET(idx) {
  using namespace iotnas;
  for (int ndims : {1, 3}) {
    try {
      const IdxArray a = parse_idx(data, ndims, "fuzz-idx" + std::to_string(ndims) + "-ubyte");
      int64_t count = 1;
      for (int64_t d : a.dims) count *= d;
      if (int64_t(a.data.size()) != count)
        fuzz::finding("IDX data size is not the product of dims");
    } catch (const Error&) {
    }
  }
}
