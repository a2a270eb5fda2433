// Narrow search spaces (paper §3.1, DESIGN.md §5): named integer variables with absolute bounds,
// a builder from a variable vector and the input shape to a model, and named reference models
// that are members of the space. Every vector inside the bounds builds a valid model for any
// input of at least 28x28 pixels, and params and FLOPs never decrease when one variable grows
// (so the reachable range is [f(all minima), f(all maxima)]); tests check both.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/graph.hpp"
#include "engine/spec.hpp"
#include "search/net_builder.hpp"

namespace iotnas::search {

// An integer variable taking the values min, min + step, ..., max.
struct Variable {
  std::string name;
  int min = 0, max = 0, step = 1;
  std::string help;  // one line: what the value means
  int count() const { return (max - min) / step + 1; }
  int value(int index) const { return min + index * step; }
  int index(int value) const { return (value - min) / step; }
  bool valid(int v) const { return v >= min && v <= max && (v - min) % step == 0; }
};

// A named member of a space (M_i in S_i): the vector that rebuilds a known model.
struct Reference {
  std::string name;
  std::string description;
  std::vector<int> vars;
};

struct Space {
  std::string name;
  std::string description;
  std::vector<Variable> vars;
  std::vector<Reference> references;
  // Builds the model for `vars` (one value per variable, each valid) into `b`, which was reset
  // with the input shape and class count.
  void (*build)(std::span<const int> vars, NetBuilder& b) = nullptr;

  int var_index(std::string_view var_name) const;  // -1 when unknown
  std::vector<int> min_vector() const;
  std::vector<int> max_vector() const;
  // Throws iotnas::Error naming the variable when a value is out of bounds or off its step.
  void check_vector(std::span<const int> vars) const;
};

// Inputs must be at least this many pixels high and wide (three 2x2 poolings deep); every space
// builds a valid model for every vector on any such input.
inline constexpr int kMinInputSide = 8;
// Throws iotnas::Error for an input shape or class count the spaces cannot build for.
void check_input(Shape input, int classes);

// The spaces, in a fixed order: plain, resnet, inception, densenet, mobilenet.
const std::vector<Space>& spaces();
// Throws iotnas::Error for an unknown name, listing the known ones.
const Space& find_space(std::string_view name);
std::string space_names();  // "plain, resnet, ..."

enum class Metric { params, flops };
const char* metric_name(Metric m);
// "params" or "flops"; throws iotnas::Error otherwise.
Metric parse_metric(std::string_view name);
inline double metric_value(const Analytics& a, Metric m) {
  return m == Metric::params ? double(a.params) : double(a.flops);
}

// The model spec for a vector (checked); its name is "<space>[v1,v2,...]".
ModelSpec build_spec(const Space& space, std::span<const int> vars, Shape input, int classes);
// The analytic properties of that model, without building a spec or a graph (~1 us).
// `scratch` is reused between calls to avoid allocation; vars are not checked.
Analytics analyze_vars(const Space& space, std::span<const int> vars, Shape input, int classes,
                       NetBuilder& scratch);
Analytics analyze_vars(const Space& space, std::span<const int> vars, Shape input, int classes);

// The smallest and largest value of a metric over the whole space (monotone spaces: the models
// of the all-minimum and all-maximum vectors).
struct Reach {
  double min = 0, max = 0;
};
Reach reachable_range(const Space& space, Metric metric, Shape input, int classes);

// "[v1, v2, ...]" for messages and model names.
std::string vector_string(std::span<const int> vars);

// Space definitions, one file each (space_<name>.cpp).
Space make_plain_space();
Space make_resnet_space();
Space make_inception_space();
Space make_densenet_space();
Space make_mobilenet_space();

}  // namespace iotnas::search
