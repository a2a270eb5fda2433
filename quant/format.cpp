#include "quant/format.hpp"

#include <array>
#include <charconv>

#include "kernels/base/error.hpp"

namespace iotnas::quant {

namespace {

struct Named {
  const char* name;
  FloatFormat format;
};
constexpr Named named[] = {
    {"half", kernels::format_half},
    {"bfloat16", kernels::format_bfloat16},
    {"float", kernels::format_float},
};

constexpr std::array<FloatFormat, kernels::format_count> make_grid() {
  std::array<FloatFormat, kernels::format_count> g{};
  int i = 0;
  for (int w = FloatFormat::min_w; w <= FloatFormat::max_w; ++w)
    for (int t = FloatFormat::min_t; t <= FloatFormat::max_t; ++t) g[size_t(i++)] = {w, t};
  return g;
}
constexpr std::array<FloatFormat, kernels::format_count> grid = make_grid();

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// A whole decimal number, or -1.
int parse_int(std::string_view s) {
  int v = -1;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0) return -1;
  return v;
}

constexpr const char* accepted =
    "use half, bfloat16, float or W:T with exponent bits W in 1..8 and trailing significand bits T "
    "in 1..23, e.g. 4:3";

}  // namespace

std::string format_name(FloatFormat f) {
  for (const auto& n : named)
    if (n.format == f) return n.name;
  return std::to_string(f.w) + ":" + std::to_string(f.t);
}

std::string format_label(FloatFormat f) {
  return kernels::format_label(f.w, f.t);
}

FloatFormat parse_format(std::string_view token) {
  for (const auto& n : named)
    if (token == n.name) return n.format;
  const auto colon = token.find(':');
  if (colon == std::string_view::npos) fail("unknown float type '", token, "': ", accepted);
  const int w = parse_int(token.substr(0, colon)), t = parse_int(token.substr(colon + 1));
  if (w < 0 || t < 0)
    fail("float type '", token, "' is not W:T with two whole numbers: ", accepted);
  if (w < FloatFormat::min_w || w > FloatFormat::max_w)
    fail("float type '", token, "': exponent bits W=", w, " is out of range; ", accepted);
  if (t < FloatFormat::min_t || t > FloatFormat::max_t)
    fail("float type '", token, "': trailing significand bits T=", t, " is out of range; ",
         accepted);
  return {w, t};
}

std::span<const FloatFormat> all_formats() {
  return grid;
}

int format_index(FloatFormat f) {
  IOTNAS_ASSERT(f.valid(), format_label(f));
  return (f.w - FloatFormat::min_w) * (FloatFormat::max_t - FloatFormat::min_t + 1) +
         (f.t - FloatFormat::min_t);
}

int64_t weight_bytes(int64_t params, FloatFormat f) {
  if (params < 0) fail("weight_bytes: parameter count ", params, " is negative");
  return (params * f.bits() + 7) / 8;
}

std::vector<FloatFormat> parse_types(std::string_view list) {
  const std::string_view all = trim(list);
  if (all == "all") return {grid.begin(), grid.end()};
  if (all.empty())
    fail("empty list of float types: give 'all' or a comma-separated list; ", accepted);
  std::vector<FloatFormat> out;
  size_t pos = 0;
  for (int entry = 1;; ++entry) {
    const size_t comma = all.find(',', pos);
    const std::string_view token = trim(
        all.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    if (token.empty()) fail("list of float types '", list, "': entry ", entry, " is empty");
    const FloatFormat f = parse_format(token);
    for (FloatFormat g : out)
      if (g == f)
        fail("list of float types '", list, "': '", token, "' is ", format_label(f),
             ", which is listed twice");
    out.push_back(f);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace iotnas::quant
