// iotnas quant round: float32 values on stdin rounded to T(w,t), float32 on stdout.
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "apps/commands.hpp"
#include "apps/round_stream.hpp"
#include "kernels/base/error.hpp"
#include "kernels/round/round.hpp"
#include "quant/format.hpp"

namespace iotnas::apps {

namespace {

using kernels::FloatFormat;

static_assert(std::endian::native == std::endian::little,
              "quant round reads and writes little-endian float32 as it is in memory");

// A usage error: one line on stderr, exit status 2 (as for a bad flag).
int usage_error(const std::string& msg) {
  std::fprintf(stderr, "iotnas: error: %s (run `iotnas quant round --help`)\n", msg.c_str());
  return 2;
}

}  // namespace

int round_stream(std::FILE* in, std::FILE* out, int w, int t) {
  const FloatFormat f{w, t};
  if (w < FloatFormat::min_w || w > FloatFormat::max_w)
    return usage_error("--w " + std::to_string(w) + " is out of range: exponent bits are 1..8");
  if (t < FloatFormat::min_t || t > FloatFormat::max_t)
    return usage_error("--t " + std::to_string(t) +
                       " is out of range: trailing significand bits are 1..23");
  const kernels::RoundParams p = kernels::make_round_params(f);
  constexpr size_t chunk_floats = size_t(1) << 16;  // 256 KiB
  std::vector<float> buf(chunk_floats);
  char* bytes = reinterpret_cast<char*>(buf.data());
  size_t held = 0;  // bytes in buf not yet written (at most 3 carried from the last read)
  int64_t total = 0;
  for (;;) {
    const size_t got = std::fread(bytes + held, 1, chunk_floats * 4 - held, in);
    if (std::ferror(in)) fail("reading stdin: ", std::strerror(errno));
    held += got;
    const size_t n = held / 4;
    kernels::round_array(buf.data(), buf.data(), int64_t(n), p);
    if (std::fwrite(bytes, 4, n, out) != n) fail("writing stdout: ", std::strerror(errno));
    total += int64_t(n) * 4;
    std::memmove(bytes, bytes + n * 4, held - n * 4);
    held -= n * 4;
    if (got == 0 || std::feof(in)) break;
  }
  if (std::fflush(out) != 0) fail("writing stdout: ", std::strerror(errno));
  if (held != 0)
    return usage_error("stdin ended with " + std::to_string(held) + " stray byte(s) after " +
                       std::to_string(total / 4) +
                       " float32 value(s): the input must be little-endian float32, a multiple "
                       "of 4 bytes (the whole values were written)");
  return 0;
}

void add_quant_command(CLI::App& app, Action& action) {
  auto* quant = app.add_subcommand("quant", "Reduced-precision float formats T(w,t)");
  quant->require_subcommand(1);
  auto* round = quant->add_subcommand(
      "round",
      "Round little-endian float32 values read from stdin (until EOF) to the format T(w,t) and "
      "write them to stdout as float32, same count and order, streaming.");
  auto w = std::make_shared<int>(0), t = std::make_shared<int>(0);
  round->add_option("--w", *w, "Exponent bits w, 1..8 (half: 5, bfloat16: 8)")->required();
  round->add_option("--t", *t, "Trailing significand bits t, 1..23 (half: 10, bfloat16: 7)")
      ->required();
  round->footer(
      "T(w,t) has 1 sign bit, w exponent bits (bias 2^(w-1)-1) and t trailing significand bits.\n"
      "Rounding is to nearest, ties to even; subnormals and signed zeros are kept; +-Inf stay;\n"
      "NaN stays NaN (quiet); values that round to 2^(bias+1) or more become +-Inf.\n"
      "T(8,23) leaves every float32 unchanged. Exit status 2 for an out-of-range w or t or an\n"
      "input that is not a multiple of 4 bytes.\n"
      "Example: iotnas quant round --w 5 --t 10 < weights.f32 > weights_half.f32");
  round->callback(
      [&action, w, t] { action = [w, t] { return round_stream(stdin, stdout, *w, *t); }; });
}

}  // namespace iotnas::apps
