#include "engine/util/fields.hpp"

#include <cstdio>

#include "kernels/base/error.hpp"

namespace iotnas::fields {

using nlohmann::json;

namespace {

[[noreturn]] void type_error(const std::string& origin, const std::string& name, const char* want) {
  fail(origin, ": ", name, " must be ", want);
}

// Integers written as 1e4 are accepted when exact.
int64_t read_int64(const json& v, const std::string& origin, const std::string& name) {
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
    type_error(origin, name, "an integer below 2^63");
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
      std::fabs(v.get<double>()) < 9e15)
    return int64_t(v.get<double>());
  type_error(origin, name, "an integer");
}

struct ReadValue {
  const json& v;
  const std::string& origin;
  const std::string& name;

  void operator()(std::string* out) const {
    if (!v.is_string()) type_error(origin, name, "a string");
    *out = v.get<std::string>();
  }
  void operator()(bool* out) const {
    if (!v.is_boolean()) type_error(origin, name, "true or false");
    *out = v.get<bool>();
  }
  void operator()(double* out) const {
    if (!v.is_number()) type_error(origin, name, "a number");
    *out = v.get<double>();
  }
  void operator()(int* out) const {
    const int64_t x = read_int64(v, origin, name);
    if (x < INT32_MIN || x > INT32_MAX) type_error(origin, name, "an integer of at most 10 digits");
    *out = int(x);
  }
  void operator()(int64_t* out) const { *out = read_int64(v, origin, name); }
  void operator()(uint64_t* out) const {
    if (v.is_number_unsigned()) {
      *out = v.get<uint64_t>();
      return;
    }
    const int64_t x = read_int64(v, origin, name);
    if (x < 0) type_error(origin, name, "a non-negative integer");
    *out = uint64_t(x);
  }
  void operator()(std::vector<std::string>* out) const {
    if (!v.is_array()) type_error(origin, name, "an array of strings");
    out->clear();
    for (const auto& e : v) {
      if (!e.is_string()) type_error(origin, name, "an array of strings");
      out->push_back(e.get<std::string>());
    }
  }
};

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// "must be in [1, 1000]", "must be >= 0", "must be a, b or c".
std::string default_rule(double min, double max, bool min_open, bool max_open,
                         std::span<const char* const> choices) {
  if (!choices.empty()) {
    std::string s = "must be ";
    for (size_t i = 0; i < choices.size(); ++i)
      s += std::string(i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
    return s;
  }
  if (std::isfinite(min) && std::isfinite(max))
    return "must be in " + std::string(min_open ? "(" : "[") + number(min) + ", " + number(max) +
           (max_open ? ")" : "]");
  if (std::isfinite(min)) return std::string("must be ") + (min_open ? "> " : ">= ") + number(min);
  if (std::isfinite(max)) return std::string("must be ") + (max_open ? "< " : "<= ") + number(max);
  return "is not allowed";
}

}  // namespace

Reader::Reader(const json& j, std::string where, std::string origin)
    : j_(j), where_(std::move(where)), origin_(std::move(origin)) {
  if (!j.is_object()) fail(origin_, ": ", name(""), " must be a JSON object");
}

void Reader::get(const char* key, Ref out) {
  seen_.insert(key);
  auto it = j_.find(key);
  if (it == j_.end()) return;
  std::visit(ReadValue{*it, origin_, name(key)}, out);
}

const json* Reader::sub(const char* key) {
  seen_.insert(key);
  auto it = j_.find(key);
  return it == j_.end() ? nullptr : &*it;
}

std::string Reader::name(const std::string& key) const {
  if (where_.empty()) return key.empty() ? "the config" : "\"" + key + "\"";
  return "\"" + where_ + (key.empty() ? "" : "." + key) + "\"";
}

void Reader::finish() const {
  std::string known;
  for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
  for (auto it = j_.begin(); it != j_.end(); ++it)
    if (!seen_.count(it.key()))
      fail(origin_, ": unknown key ", name(it.key()), "; known keys here: ", known);
}

bool integer_in(const json& v, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) return false;
  const int64_t x = v.get<int64_t>();
  return x >= lo && x <= hi;
}

void throw_flag_error(std::string_view flag, const std::string& value, const std::string& rule) {
  fail(flag, " ", value, " ", rule);
}

json to_json(Ref r) {
  return std::visit([](auto* p) { return json(*p); }, r);
}

std::string broken_rule(Ref r, double min, double max, bool min_open, bool max_open,
                        std::span<const char* const> choices, bool also, const char* rule) {
  size_t n = 0;
  while (n < choices.size() && choices[n]) ++n;
  choices = choices.first(n);
  bool ok = also;
  if (auto* s = std::get_if<std::string*>(&r)) {
    if (!choices.empty()) {
      bool found = false;
      for (const char* c : choices) found = found || **s == c;
      ok = ok && found;
    }
  } else if (!std::holds_alternative<bool*>(r) &&
             !std::holds_alternative<std::vector<std::string>*>(r)) {
    const double v = std::visit(
        [](auto* p) -> double {
          if constexpr (std::is_arithmetic_v<std::remove_pointer_t<decltype(p)>>) {
            return double(*p);
          } else {
            return 0.0;
          }
        },
        r);
    ok = ok && (min_open ? v > min : v >= min) && (max_open ? v < max : v <= max);
  }
  if (ok) return "";
  return *rule ? std::string(rule) : default_rule(min, max, min_open, max_open, choices);
}

void check_value(Ref r, const std::string& origin, const std::string& name, double min, double max,
                 bool min_open, bool max_open, std::span<const char* const> choices, bool also,
                 const char* rule) {
  const std::string broken = broken_rule(r, min, max, min_open, max_open, choices, also, rule);
  if (!broken.empty()) fail(origin, ": \"", name, "\" ", broken);
}

}  // namespace iotnas::fields
