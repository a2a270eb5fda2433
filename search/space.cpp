#include "search/space.hpp"

#include "kernels/base/error.hpp"

namespace iotnas::search {

int Space::var_index(std::string_view var_name) const {
  for (size_t i = 0; i < vars.size(); ++i) {
    if (vars[i].name == var_name) return int(i);
  }
  return -1;
}

std::vector<int> Space::min_vector() const {
  std::vector<int> v;
  for (const auto& x : vars) v.push_back(x.min);
  return v;
}

std::vector<int> Space::max_vector() const {
  std::vector<int> v;
  for (const auto& x : vars) v.push_back(x.max);
  return v;
}

void Space::check_vector(std::span<const int> v) const {
  if (v.size() != vars.size()) {
    fail("space '", name, "' has ", vars.size(), " variables but the vector has ", v.size());
  }
  for (size_t i = 0; i < vars.size(); ++i) {
    const Variable& x = vars[i];
    if (!x.valid(v[i])) {
      fail("space '", name, "': ", x.name, " = ", v[i], " is outside [", x.min, ", ", x.max, "]",
           x.step > 1 ? " or off its step " + std::to_string(x.step) : std::string());
    }
  }
}

void check_input(Shape input, int classes) {
  if (input.c < 1 || input.c > 4096 || input.h < kMinInputSide || input.w < kMinInputSide ||
      input.h > 4096 || input.w > 4096) {
    fail("input shape ", to_string(input), " is not supported by the search spaces (need C in [1, ",
         "4096] and H, W in [", kMinInputSide, ", 4096])");
  }
  if (classes < 2 || classes > 100000) fail("class count ", classes, " must be in [2, 100000]");
}

const std::vector<Space>& spaces() {
  static const std::vector<Space> all = {make_plain_space(), make_resnet_space(),
                                         make_inception_space(), make_densenet_space(),
                                         make_mobilenet_space()};
  return all;
}

std::string space_names() {
  std::string s;
  for (const auto& sp : spaces()) {
    if (!s.empty()) s += ", ";
    s += sp.name;
  }
  return s;
}

const Space& find_space(std::string_view name) {
  for (const auto& sp : spaces()) {
    if (sp.name == name) return sp;
  }
  fail("unknown search space '", name, "' (known: ", space_names(), ")");
}

const char* metric_name(Metric m) {
  return m == Metric::params ? "params" : "flops";
}

Metric parse_metric(std::string_view name) {
  if (name == "params") return Metric::params;
  if (name == "flops") return Metric::flops;
  fail("unknown metric '", name, "' (use params or flops)");
}

std::string vector_string(std::span<const int> vars) {
  std::string s = "[";
  for (size_t i = 0; i < vars.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(vars[i]);
  }
  return s + "]";
}

ModelSpec build_spec(const Space& space, std::span<const int> vars, Shape input, int classes) {
  space.check_vector(vars);
  check_input(input, classes);
  NetBuilder b;
  b.reset(input, classes, true, space.name + vector_string(vars));
  space.build(vars, b);
  return b.take_spec();
}

Analytics analyze_vars(const Space& space, std::span<const int> vars, Shape input, int classes,
                       NetBuilder& scratch) {
  scratch.reset(input, classes, false);
  space.build(vars, scratch);
  return scratch.analytics();
}

Analytics analyze_vars(const Space& space, std::span<const int> vars, Shape input, int classes) {
  NetBuilder b;
  return analyze_vars(space, vars, input, classes, b);
}

Reach reachable_range(const Space& space, Metric metric, Shape input, int classes) {
  return {metric_value(analyze_vars(space, space.min_vector(), input, classes), metric),
          metric_value(analyze_vars(space, space.max_vector(), input, classes), metric)};
}

}  // namespace iotnas::search
