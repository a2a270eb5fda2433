// `iotnas quant round`'s stream: little-endian float32 values in, the same count rounded out.
#pragma once

#include <cstdio>

namespace iotnas::apps {

// Reads `in` until its end in chunks (memory: one chunk whatever the input size), rounds each
// float32 to T(w,t) and writes it to `out`. Returns the exit status: 0, or 2 (with one line on
// stderr) for a w or t out of range or an input that is not a multiple of 4 bytes (the whole
// values are written first). Throws iotnas::Error when reading or writing fails.
int round_stream(std::FILE* in, std::FILE* out, int w, int t);

}  // namespace iotnas::apps
