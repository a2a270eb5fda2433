// One table per settings struct: each field's JSON key, member, allowed range or values, help text
// and command-line flag. The table drives strict JSON reading (unknown keys, wrong types and
// out-of-range values are one error line naming the source and the key), JSON writing and
// validation; apps/cli_fields.hpp turns the same table into command-line options.
//
//   const std::vector<fields::Field<Eval>> kEvalFields = {
//       {.key = "images", .ref = fields::at<&Eval::images>, .help = "test images", .min = 0},
//   };
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace iotnas::fields {

// Where a field's value lives inside one struct.
using Ref = std::variant<int*, int64_t*, uint64_t*, double*, bool*, std::string*,
                         std::vector<std::string>*>;

template <class M>
struct MemberOf;
template <class S, class V>
struct MemberOf<V S::*> {
  using Struct = S;
};

template <class T>
T& follow(T& v) {
  return v;
}
template <class T, class M, class... Ms>
auto& follow(T& v, M m, Ms... ms) {
  return follow(v.*m, ms...);
}

// The value at a member, or at a member of a member: at<&Run::training, &Recipe::epochs>.
template <auto M, auto... Ms>
Ref at(typename MemberOf<decltype(M)>::Struct& s) {
  return Ref(&follow(s, M, Ms...));
}

inline constexpr double kNoLimit = std::numeric_limits<double>::infinity();

template <class S>
struct Field {
  const char* key;  // JSON key
  Ref (*ref)(S&);   // the member (fields::at<...>)
  const char* help = "";
  // Numbers: the allowed range, closed unless marked open (an open infinite bound rejects
  // infinity). Strings: the allowed values (empty: any).
  double min = -kNoLimit, max = kNoLimit;
  bool min_open = false, max_open = false;
  std::array<const char*, 4> choices = {};  // unused entries are null
  // A rule between fields (e.g. clusters <= n_init), checked after the range.
  bool (*also)(const S&) = nullptr;
  // The error text when the value breaks the rules, after the key ("must be at least 2");
  // empty: made from the range or the choices.
  const char* rule = "";
  const char* flag = "";  // command-line flag that sets it ("" where none exists)
};

// Reads one JSON object's keys, each at most once; finish() rejects keys nobody asked for.
// Errors: "<origin>: \"<where>.<key>\" must be ..." (iotnas::Error).
class Reader {
 public:
  Reader(const nlohmann::json& j, std::string where, std::string origin);
  // Reads `key` into `out` when present (strict type); absent keys leave `out` as it is.
  void get(const char* key, Ref out);
  template <class T>
  void get(const char* key, T& out) {
    get(key, Ref(&out));
  }
  // The value of `key` when present (read by the caller), else nullptr.
  const nlohmann::json* sub(const char* key);
  // "\"where.key\"" (or "the config" for the top object).
  std::string name(const std::string& key) const;
  void finish() const;
  const std::string& origin() const { return origin_; }

 private:
  const nlohmann::json& j_;
  std::string where_;
  std::string origin_;
  std::set<std::string> seen_;
};

// Throws iotnas::Error "<flag> <value> <rule>".
[[noreturn]] void throw_flag_error(std::string_view flag, const std::string& value,
                                   const std::string& rule);
// Whether `v` is a JSON integer in [lo, hi]; unlike nlohmann's get<int>, which wraps 2^40 to 0,
// nothing is truncated (readers of saved files use it for indices and counts).
bool integer_in(const nlohmann::json& v, int64_t lo, int64_t hi);
// The JSON value of a member, with the member's own type (integer, unsigned, float, ...).
nlohmann::json to_json(Ref r);
// The rule `r` breaks ("must be in [1, 100]"), or "" when it is within the field's range,
// choices and rule between fields (`also`).
std::string broken_rule(Ref r, double min, double max, bool min_open, bool max_open,
                        std::span<const char* const> choices, bool also, const char* rule);
// "<origin>: \"<prefix>.<key>\" <rule>" when `r` is outside the field's range or choices.
void check_value(Ref r, const std::string& origin, const std::string& name, double min, double max,
                 bool min_open, bool max_open, std::span<const char* const> choices, bool also,
                 const char* rule);

// S's fields present in the reader's object, read into `s`.
template <class S>
void read(Reader& r, std::span<const Field<S>> table, S& s) {
  for (const Field<S>& f : table) r.get(f.key, f.ref(s));
}

// Every field of `s` into the object `out`.
template <class S>
void write(std::span<const Field<S>> table, const S& s, nlohmann::json& out) {
  // ref() gives a mutable pointer; it is only read here.
  for (const Field<S>& f : table) out[f.key] = to_json(f.ref(const_cast<S&>(s)));
}
template <class S>
nlohmann::json to_json(std::span<const Field<S>> table, const S& s) {
  nlohmann::json j = nlohmann::json::object();
  write(table, s, j);
  return j;
}

// Checks every field's range, choices and rule; keys are named "<prefix>.<key>" ("<key>" when
// prefix is empty). Throws iotnas::Error.
template <class S>
void validate(std::span<const Field<S>> table, const S& s, const std::string& origin,
              const std::string& prefix) {
  for (const Field<S>& f : table)
    check_value(f.ref(const_cast<S&>(s)), origin, prefix.empty() ? f.key : prefix + "." + f.key,
                f.min, f.max, f.min_open, f.max_open, f.choices, !f.also || f.also(s), f.rule);
}

// Checks the fields that have a command-line flag, each named by its flag: "--epochs 0 must be in
// [1, 10000]". Throws iotnas::Error.
template <class S>
void validate_flags(std::span<const Field<S>> table, const S& s) {
  for (const Field<S>& f : table) {
    if (!*f.flag) continue;
    const Ref r = f.ref(const_cast<S&>(s));
    const std::string broken = broken_rule(r, f.min, f.max, f.min_open, f.max_open, f.choices,
                                           !f.also || f.also(s), f.rule);
    if (broken.empty()) continue;
    const std::string_view flag = f.flag;
    throw_flag_error(flag.substr(0, flag.find(',')), to_json(r).dump(), broken);
  }
}

}  // namespace iotnas::fields
