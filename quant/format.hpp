// Float formats T(w,t) by name, the 184-type grid of the precision sweep, and weight memory per
// format (DESIGN.md section 4). The format itself and rounding live in kernels/round/.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/round/format.hpp"

namespace iotnas::quant {

using kernels::FloatFormat;

// "half" = T(5,10), "bfloat16" = T(8,7), "float" = T(8,23); "W:T" (e.g. "4:3") for the others.
// parse_format(format_name(f)) == f.
std::string format_name(FloatFormat f);
// "T(w,t)", for tables and plots.
std::string format_label(FloatFormat f);

// Parses one type: "half", "bfloat16", "float" or "W:T" (decimal, w in 1..8, t in 1..23).
// Throws iotnas::Error naming the token and saying what is accepted.
FloatFormat parse_format(std::string_view token);

// The 184 types in the sweep's fixed order: w = 1..8 outer, t = 1..23 inner.
std::span<const FloatFormat> all_formats();
// Position of f in all_formats(): (w - 1) * 23 + (t - 1). f must be valid.
int format_index(FloatFormat f);

// Bytes to store `params` values in f, bit-packed: ceil(params * (1 + w + t) / 8). params >= 0.
int64_t weight_bytes(int64_t params, FloatFormat f);

// A --types value: "all" (the 184 types in grid order) or a comma-separated list of types as
// parse_format takes them, kept in the given order (spaces around entries are ignored). Throws
// iotnas::Error naming the bad entry for an empty list or entry, an unknown type, or a type
// listed twice.
std::vector<FloatFormat> parse_types(std::string_view list);

}  // namespace iotnas::quant
