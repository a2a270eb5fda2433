// `iotnas quant round`'s stream reader: the first two bytes choose w and t (a few out of range),
// the rest is the float32 stream.
#include <cstdio>

#include "apps/round_stream.hpp"
#include "fuzz/fuzz_target.hpp"

IOTNAS_FUZZ_TARGET(quant_round) {
  if (data.size() < 2) return;
  static std::FILE* sink = std::fopen("/dev/null", "wb");
  const int w = data[0] % 10, t = data[1] % 25;  // 0 and 9, 0 and 24 are out of range
  std::span<const uint8_t> rest = data.subspan(2);
  std::FILE* in = rest.empty() ? std::fopen("/dev/null", "rb")
                               : fmemopen(const_cast<uint8_t*>(rest.data()), rest.size(), "rb");
  if (!in || !sink) iotnas::fuzz::finding("cannot open the in-memory streams");
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{in};
  const int status = iotnas::apps::round_stream(in, sink, w, t);
  if (status != 0 && status != 2) iotnas::fuzz::finding("quant round: exit status not 0 or 2");
}
