#include "search/law.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/util/fields.hpp"
#include "engine/util/files.hpp"
#include "engine/util/json.hpp"
#include "kernels/base/error.hpp"
#include "kernels/base/parallel.hpp"

namespace iotnas::search {

using nlohmann::json;

Law uniform_law(const Space& space) {
  Law law;
  for (const auto& x : space.vars) law.ranges.push_back({x.min, x.max});
  return law;
}

namespace {

std::string values_hint(const Variable& x) {
  std::string s;
  if (x.step == 1) {
    s = "[";
    s += std::to_string(x.min);
    s += ", ";
    s += std::to_string(x.max);
    return s + "]";
  }
  for (int i = 0; i < x.count(); ++i) {
    if (i) s += ", ";
    s += std::to_string(x.value(i));
  }
  return "{" + s + "}";
}

}  // namespace

void check_law(const Space& space, const Law& law) {
  if (law.ranges.size() != space.vars.size()) {
    fail("a law for space '", space.name, "' needs ", space.vars.size(), " ranges, got ",
         law.ranges.size());
  }
  for (size_t i = 0; i < space.vars.size(); ++i) {
    const Variable& x = space.vars[i];
    const Range& r = law.ranges[i];
    if (r.lo > r.hi) fail(x.name, ": range [", r.lo, ", ", r.hi, "] is reversed (lo > hi)");
    for (int v : {r.lo, r.hi}) {
      if (!x.valid(v)) {
        fail(x.name, ": ", v, " is not a value of this variable of space '", space.name,
             "' (allowed: ", values_hint(x), ")");
      }
    }
  }
}

void draw_vector(const Space& space, const Law& law, Rng& rng, std::span<int> out) {
  for (size_t i = 0; i < space.vars.size(); ++i) {
    const Variable& x = space.vars[i];
    const Range& r = law.ranges[i];
    out[i] = r.lo + x.step * int(rng.below(uint32_t((r.hi - r.lo) / x.step) + 1u));
  }
}

std::vector<Sample> sample_laws(const Space& space, std::span<const Law> laws, int64_t n,
                                const SampleOptions& o) {
  if (laws.empty()) fail("no sampling laws given for space '", space.name, "'");
  if (n < 0) fail("cannot draw a negative number of models (", n, ")");
  if (o.first < 0) fail("the first model's index must not be negative (", o.first, ")");
  for (const Law& law : laws) check_law(space, law);
  check_input(o.input, o.classes);
  std::vector<Sample> out(n);
  const int64_t num_laws = int64_t(laws.size());
  FirstException error;
#pragma omp parallel
  {
    NetBuilder scratch;
#pragma omp for schedule(dynamic, 256)
    for (int64_t i = 0; i < n; ++i) {
      error.run([&] {
        Sample& s = out[i];
        const int64_t index = o.first + i;
        s.law_index = int(index % num_laws);
        s.vars.resize(space.vars.size());
        Rng rng(o.seed, uint64_t(index));
        draw_vector(space, laws[s.law_index], rng, s.vars);
        if (o.with_specs) {
          scratch.reset(o.input, o.classes, true, space.name + vector_string(s.vars));
          space.build(s.vars, scratch);
          s.analytics = scratch.analytics();
          s.spec = scratch.take_spec();
        } else {
          s.analytics = analyze_vars(space, s.vars, o.input, o.classes, scratch);
        }
      });
    }
  }
  error.rethrow();
  return out;
}

// ---- laws files ----------------------------------------------------------------------------

namespace {

json number_or_null(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

[[noreturn]] void file_error(const std::string& origin, const std::string& where,
                             const std::string& msg) {
  fail(origin, ": ", where.empty() ? "" : where + ": ", msg, " (format: docs/search.md)");
}

double optional_number(const std::string& origin, const std::string& where, const json& j,
                       const char* key) {
  if (!j.contains(key) || j[key].is_null()) return NAN;
  if (!j[key].is_number()) file_error(origin, where, std::string("'") + key + "' must be a number");
  return j[key].get<double>();
}

int integer_value(const std::string& origin, const std::string& where, const json& j) {
  if (!j.is_number_integer()) file_error(origin, where, "must be an integer");
  // Not get<int64_t> alone: 2^64 - 1 would wrap to -1.
  if (!fields::integer_in(j, -(int64_t(1) << 30), int64_t(1) << 30))
    file_error(origin, where, "out of range");
  return int(j.get<int64_t>());
}

}  // namespace

std::string laws_to_json(const LawSet& set) {
  const Space& space = find_space(set.space);
  // Written by hand rather than by json::dump(2), which sorts the keys and puts every number of
  // a range on its own line: here the keys keep a reading order and each range takes one line.
  std::string out = "{\n";
  auto field = [&](const char* key, const json& value) {
    out += "  \"" + std::string(key) + "\": " + value.dump() + ",\n";
  };
  field("format", kLawsFormat);
  field("space", set.space);
  if (set.metric) field("metric", metric_name(*set.metric));
  if (set.window_lo && set.window_hi) field("window", {*set.window_lo, *set.window_hi});
  if (set.input) field("input_shape", {set.input->c, set.input->h, set.input->w});
  field("classes", set.classes);
  if (set.seed) field("seed", *set.seed);
  out += "  \"laws\": [";
  for (size_t l = 0; l < set.laws.size(); ++l) {
    const Law& law = set.laws[l];
    out += l ? ",\n" : "\n";
    out += "    {\"cost\": " + number_or_null(law.cost).dump() +
           ", \"mu\": " + number_or_null(law.mu).dump() +
           ", \"sigma\": " + number_or_null(law.sigma).dump() + ",\n     \"ranges\": {";
    for (size_t i = 0; i < space.vars.size(); ++i) {
      out += i ? ",\n                " : "";
      out += json(space.vars[i].name).dump() + ": [" + std::to_string(law.ranges[i].lo) + ", " +
             std::to_string(law.ranges[i].hi) + "]";
    }
    out += "}}";
  }
  out += "\n  ]\n}\n";
  return out;
}

LawSet parse_laws(std::string_view text, const std::string& origin) {
  const json j = parse_json_strict(text, origin, "a laws file is described in docs/search.md");
  if (!j.is_object()) file_error(origin, "", "the top level must be a JSON object");
  static const char* kKeys[] = {"format",      "space",   "metric", "window",
                                "input_shape", "classes", "seed",   "laws"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKeys) known = known || it.key() == k;
    if (!known) {
      file_error(origin, "",
                 "unknown key '" + it.key() +
                     "' (allowed: format, space, metric, window, input_shape, "
                     "classes, seed, laws)");
    }
  }
  if (j.contains("format") &&
      (!j["format"].is_string() || j["format"].get<std::string>() != kLawsFormat)) {
    file_error(origin, "format", std::string("must be \"") + kLawsFormat + "\"");
  }
  LawSet set;
  if (!j.contains("space") || !j["space"].is_string()) {
    file_error(origin, "", "missing 'space' (one of: " + space_names() + ")");
  }
  set.space = j["space"].get<std::string>();
  const Space* space = nullptr;
  for (const auto& s : spaces()) {
    if (s.name == set.space) space = &s;
  }
  if (!space)
    file_error(origin, "space", "unknown space '" + set.space + "' (known: " + space_names() + ")");
  if (j.contains("metric")) {
    const json& m = j["metric"];
    if (!m.is_string() || (m != "params" && m != "flops")) {
      file_error(origin, "metric", "must be \"params\" or \"flops\"");
    }
    set.metric = parse_metric(m.get<std::string>());
  }
  if (j.contains("window")) {
    const json& w = j["window"];
    if (!w.is_array() || w.size() != 2 || !w[0].is_number() || !w[1].is_number()) {
      file_error(origin, "window", "must be [lo, hi], two positive numbers");
    }
    const double lo = w[0].get<double>(), hi = w[1].get<double>();
    if (!(lo > 0) || !(hi > lo) || !std::isfinite(hi)) {
      file_error(origin, "window", "needs 0 < lo < hi");
    }
    set.window_lo = lo;
    set.window_hi = hi;
  }
  if (j.contains("input_shape")) {
    const json& s = j["input_shape"];
    if (!s.is_array() || s.size() != 3) file_error(origin, "input_shape", "must be [C, H, W]");
    Shape shape{integer_value(origin, "input_shape", s[0]),
                integer_value(origin, "input_shape", s[1]),
                integer_value(origin, "input_shape", s[2])};
    if (shape.c < 1 || shape.h < kMinInputSide || shape.w < kMinInputSide || shape.c > 4096 ||
        shape.h > 4096 || shape.w > 4096) {
      file_error(origin, "input_shape",
                 "needs C in [1, 4096] and H, W in [" + std::to_string(kMinInputSide) + ", 4096]");
    }
    set.input = shape;
  }
  if (j.contains("classes")) {
    set.classes = integer_value(origin, "classes", j["classes"]);
    if (set.classes < 2 || set.classes > 100000)
      file_error(origin, "classes", "must be in [2, 100000]");
  }
  if (j.contains("seed")) {
    if (!j["seed"].is_number_unsigned())
      file_error(origin, "seed", "must be a non-negative integer");
    set.seed = j["seed"].get<uint64_t>();
  }
  if (!j.contains("laws") || !j["laws"].is_array() || j["laws"].empty()) {
    file_error(origin, "", "missing 'laws' (a non-empty list of laws)");
  }
  for (size_t li = 0; li < j["laws"].size(); ++li) {
    const json& lj = j["laws"][li];
    const std::string where = "laws[" + std::to_string(li) + "]";
    if (!lj.is_object()) file_error(origin, where, "must be an object with 'ranges'");
    for (auto it = lj.begin(); it != lj.end(); ++it) {
      if (it.key() != "cost" && it.key() != "mu" && it.key() != "sigma" && it.key() != "ranges") {
        file_error(origin, where,
                   "unknown key '" + it.key() + "' (allowed: cost, mu, sigma, ranges)");
      }
    }
    Law law = uniform_law(*space);
    law.cost = optional_number(origin, where, lj, "cost");
    law.mu = optional_number(origin, where, lj, "mu");
    law.sigma = optional_number(origin, where, lj, "sigma");
    if (!lj.contains("ranges") || !lj["ranges"].is_object()) {
      file_error(origin, where, "missing 'ranges' (an object: variable name -> [lo, hi])");
    }
    for (auto it = lj["ranges"].begin(); it != lj["ranges"].end(); ++it) {
      const std::string rwhere = where + ".ranges." + it.key();
      const int vi = space->var_index(it.key());
      if (vi < 0) {
        std::string names;
        for (const auto& x : space->vars) {
          if (!names.empty()) names += ", ";
          names += x.name;
        }
        file_error(origin, rwhere,
                   "space '" + space->name + "' has no variable '" + it.key() +
                       "' (its variables: " + names + ")");
      }
      const json& r = it.value();
      Range range;
      if (r.is_number()) {
        range.lo = range.hi = integer_value(origin, rwhere, r);
      } else if (r.is_array() && r.size() == 2) {
        range.lo = integer_value(origin, rwhere, r[0]);
        range.hi = integer_value(origin, rwhere, r[1]);
      } else {
        file_error(origin, rwhere, "must be [lo, hi] or a single integer");
      }
      law.ranges[vi] = range;
    }
    try {
      check_law(*space, law);
    } catch (const Error& e) {
      file_error(origin, where, e.what());
    }
    set.laws.push_back(std::move(law));
  }
  return set;
}

LawSet load_laws_file(const std::string& path) {
  return parse_laws(read_text_file(path, "laws file"), path);
}

void check_laws_space(const LawSet& set, const Space& space, const std::string& origin) {
  if (set.space != space.name) {
    fail("laws file '", origin, "' holds laws for space '", set.space, "', not '", space.name,
         "'; pass --space ", set.space, " or a laws file of space '", space.name, "'");
  }
}

void save_laws_file(const std::string& path, const LawSet& set) {
  write_file_atomic(path, laws_to_json(set));
}

}  // namespace iotnas::search
