#include "engine/spec.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/util/json.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

using nlohmann::json;

namespace {

constexpr const char* kOpNames[kNumOps] = {
    "input",           "conv2d", "batch_norm", "relu",    "max_pool", "avg_pool",
    "global_avg_pool", "add",    "concat",     "flatten", "dense",
};

// Limits that keep every derived quantity far inside int64 and every buffer allocatable.
constexpr int kMaxDim = 4096;
constexpr int kMaxChannels = 1 << 16;
constexpr int kMaxKernel = 64;
constexpr size_t kMaxLayers = 10000;
constexpr size_t kMaxInputs = 1000;  // of one add or concat

// An integer JSON value inside [lo, hi]; unsigned values past int64 are out of range, not wrapped.
bool in_range(const json& v, int64_t lo, int64_t hi) {
  if (v.is_number_unsigned()) {  // hi >= 0 for every range here
    const uint64_t x = v.get<uint64_t>();
    return x <= uint64_t(hi) && (lo <= 0 || x >= uint64_t(lo));
  }
  const int64_t x = v.get<int64_t>();
  return x >= lo && x <= hi;
}

// Names (the model's, layers', inputs') appear in every message and report: printable, one line.
constexpr size_t kMaxNameBytes = 200;
std::string name_problem(const std::string& name) {
  if (name.size() > kMaxNameBytes) return "is longer than 200 bytes";
  for (unsigned char ch : name) {
    if (ch < 0x20 || ch == 0x7f) return "contains a control character (newline, tab, escape, ...)";
  }
  return "";
}

class Reader {
 public:
  Reader(const std::string& origin, const json& obj, std::string where)
      : origin_(origin), obj_(obj), where_(std::move(where)) {}

  [[noreturn]] void error(const std::string& msg) const { fail(origin_, ": ", where_, ": ", msg); }

  bool has(const char* key) const { return obj_.contains(key); }

  int integer(const char* key, int lo, int hi) const {
    const json& v = obj_.at(key);
    if (!v.is_number_integer()) error(std::string("'") + key + "' must be an integer");
    if (!in_range(v, lo, hi)) {
      error(std::string("'") + key + "' = " + v.dump() + " is out of range [" + std::to_string(lo) +
            ", " + std::to_string(hi) + "]");
    }
    return int(v.get<int64_t>());
  }

  // An integer or a pair [h, w].
  std::pair<int, int> pair(const char* key, int lo, int hi) const {
    const json& v = obj_.at(key);
    auto check = [&](const json& e) {
      if (!e.is_number_integer()) {
        error(std::string("'") + key + "' must be an integer or a pair of integers [h, w]");
      }
      if (!in_range(e, lo, hi)) {
        error(std::string("'") + key + "' value " + e.dump() + " is out of range [" +
              std::to_string(lo) + ", " + std::to_string(hi) + "]");
      }
      return int(e.get<int64_t>());
    };
    if (v.is_array()) {
      if (v.size() != 2) error(std::string("'") + key + "' must be an integer or [h, w]");
      return {check(v[0]), check(v[1])};
    }
    int x = check(v);
    return {x, x};
  }

  bool boolean(const char* key) const {
    const json& v = obj_.at(key);
    if (!v.is_boolean()) error(std::string("'") + key + "' must be true or false");
    return v.get<bool>();
  }

  float number(const char* key, double lo, double hi) const {
    const json& v = obj_.at(key);
    if (!v.is_number()) error(std::string("'") + key + "' must be a number");
    double x = v.get<double>();
    if (!(x >= lo && x <= hi)) {
      std::ostringstream os;
      os << "'" << key << "' = " << x << " is out of range [" << lo << ", " << hi << "]";
      error(os.str());
    }
    return float(x);
  }

  std::string string(const char* key) const {
    const json& v = obj_.at(key);
    if (!v.is_string()) error(std::string("'") + key + "' must be a string");
    return v.get<std::string>();
  }

  void only_keys(const std::set<std::string>& allowed) const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (!allowed.count(it.key())) {
        std::string list;
        for (const auto& k : allowed) list += (list.empty() ? "" : ", ") + k;
        error("unknown key '" + it.key() + "' (allowed here: " + list + ")");
      }
    }
  }

 private:
  const std::string& origin_;
  const json& obj_;
  std::string where_;
};

Layer parse_layer(const std::string& origin, const json& j, size_t index) {
  if (!j.is_object()) fail(origin, ": layers[", index, "] must be an object");
  std::string where = "layers[" + std::to_string(index) + "]";
  if (j.contains("name") && j["name"].is_string()) {
    where = "layer '" + printable(j["name"].get<std::string>()) + "'";
  }
  Reader r(origin, j, where);
  Layer l;
  if (!r.has("name")) r.error("missing 'name'");
  l.name = r.string("name");
  if (l.name.empty() || l.name == "input")
    r.error("a layer name must be non-empty and not 'input'");
  if (auto problem = name_problem(l.name); !problem.empty()) r.error("the name " + problem);
  if (!r.has("op")) r.error("missing 'op' (one of: " + op_names_list() + ")");
  std::string op = r.string("op");
  auto parsed = op_from_name(op);
  if (!parsed || *parsed == Op::input) {
    r.error("unknown op '" + op + "' (known ops: " + op_names_list() + ")");
  }
  l.op = *parsed;

  if (r.has("in")) {
    const json& in = j["in"];
    if (in.is_string()) {
      l.inputs.push_back(in.get<std::string>());
    } else if (in.is_array() && !in.empty()) {
      if (in.size() > kMaxInputs) {
        r.error("'in' lists " + std::to_string(in.size()) + " inputs; at most " +
                std::to_string(kMaxInputs) + " are allowed");
      }
      for (const auto& e : in) {
        if (!e.is_string()) r.error("'in' must be a layer name or a list of layer names");
        l.inputs.push_back(e.get<std::string>());
      }
    } else {
      r.error("'in' must be a layer name or a non-empty list of layer names");
    }
    for (const auto& name : l.inputs) {
      if (auto problem = name_problem(name); !problem.empty()) {
        r.error("an input name in 'in' " + problem);
      }
    }
  }

  std::set<std::string> keys = {"name", "op", "in"};
  switch (l.op) {
    case Op::conv2d: {
      keys.insert({"out_channels", "kernel", "stride", "padding", "groups", "bias"});
      r.only_keys(keys);
      if (!r.has("out_channels")) r.error("conv2d needs 'out_channels'");
      if (!r.has("kernel")) r.error("conv2d needs 'kernel' (an integer or [h, w])");
      l.out_channels = r.integer("out_channels", 1, kMaxChannels);
      std::tie(l.kernel_h, l.kernel_w) = r.pair("kernel", 1, kMaxKernel);
      if (r.has("stride")) std::tie(l.stride_h, l.stride_w) = r.pair("stride", 1, kMaxKernel);
      if (r.has("padding")) std::tie(l.pad_h, l.pad_w) = r.pair("padding", 0, kMaxKernel);
      if (r.has("groups")) l.groups = r.integer("groups", 1, kMaxChannels);
      if (r.has("bias")) l.bias = r.boolean("bias");
      if (l.out_channels % l.groups != 0) {
        r.error("out_channels " + std::to_string(l.out_channels) + " is not a multiple of groups " +
                std::to_string(l.groups));
      }
      break;
    }
    case Op::max_pool:
    case Op::avg_pool: {
      keys.insert({"kernel", "stride", "padding"});
      r.only_keys(keys);
      if (!r.has("kernel")) r.error(std::string(op_name(l.op)) + " needs 'kernel'");
      std::tie(l.kernel_h, l.kernel_w) = r.pair("kernel", 1, kMaxKernel);
      l.stride_h = l.kernel_h;
      l.stride_w = l.kernel_w;
      if (r.has("stride")) std::tie(l.stride_h, l.stride_w) = r.pair("stride", 1, kMaxKernel);
      if (r.has("padding")) std::tie(l.pad_h, l.pad_w) = r.pair("padding", 0, kMaxKernel);
      if (l.pad_h >= l.kernel_h || l.pad_w >= l.kernel_w) {
        r.error("padding must be smaller than the kernel");
      }
      break;
    }
    case Op::dense: {
      keys.insert({"units", "bias"});
      r.only_keys(keys);
      if (!r.has("units")) r.error("dense needs 'units'");
      l.out_channels = r.integer("units", 1, kMaxChannels);
      if (r.has("bias")) l.bias = r.boolean("bias");
      break;
    }
    case Op::batch_norm: {
      keys.insert({"eps", "momentum"});
      r.only_keys(keys);
      if (r.has("eps")) l.eps = r.number("eps", 1e-12, 1.0);
      if (r.has("momentum")) l.momentum = r.number("momentum", 0.0, 1.0);
      break;
    }
    default:
      r.only_keys(keys);
      break;
  }
  return l;
}

}  // namespace

const char* op_name(Op op) {
  return kOpNames[static_cast<int>(op)];
}

std::optional<Op> op_from_name(std::string_view name) {
  for (int i = 0; i < kNumOps; ++i) {
    if (name == kOpNames[i]) return static_cast<Op>(i);
  }
  return std::nullopt;
}

std::string op_names_list() {
  std::string s;
  for (int i = 1; i < kNumOps; ++i) s += (i > 1 ? ", " : "") + std::string(kOpNames[i]);
  return s;
}

std::string to_string(const Shape& s) {
  std::ostringstream os;
  os << '[' << s.c << ", " << s.h << ", " << s.w << ']';
  return os.str();
}

ModelSpec parse_spec(std::string_view text, const std::string& origin) {
  const json j =
      parse_json_strict(text, origin, "a model spec is a JSON object, see docs/model-spec.md");
  if (!j.is_object())
    fail(origin, ": a model spec must be a JSON object with 'input' and 'layers'");
  Reader r(origin, j, "top level");
  r.only_keys({"format", "name", "input", "layers"});
  if (r.has("format") && r.string("format") != kSpecFormat) {
    r.error("format '" + r.string("format") + "' is not supported (this iotnas reads '" +
            kSpecFormat + "')");
  }
  ModelSpec spec;
  if (r.has("name")) spec.name = r.string("name");
  if (auto problem = name_problem(spec.name); !problem.empty()) r.error("'name' " + problem);
  if (!r.has("input")) r.error("missing 'input': the image shape [C, H, W], e.g. [1, 28, 28]");
  const json& in = j["input"];
  if (!in.is_array() || in.size() != 3 ||
      !std::all_of(in.begin(), in.end(), [](const json& e) { return e.is_number_integer(); })) {
    r.error("'input' must be [C, H, W], three positive integers");
  }
  int64_t c = in[0].get<int64_t>(), h = in[1].get<int64_t>(), w = in[2].get<int64_t>();
  if (c < 1 || c > kMaxChannels || h < 1 || h > kMaxDim || w < 1 || w > kMaxDim) {
    r.error("'input' " + in.dump() + " is out of range (C in [1, 65536], H and W in [1, 4096])");
  }
  spec.input = Shape{int(c), int(h), int(w)};
  if (!r.has("layers") || !j["layers"].is_array() || j["layers"].empty()) {
    r.error("'layers' must be a non-empty list of layers");
  }
  if (j["layers"].size() > kMaxLayers) r.error("more than 10000 layers");
  std::set<std::string> names;
  for (size_t i = 0; i < j["layers"].size(); ++i) {
    Layer l = parse_layer(origin, j["layers"][i], i);
    if (!names.insert(l.name).second) {
      fail(origin, ": layer '", l.name, "' is defined twice; layer names must be unique");
    }
    spec.layers.push_back(std::move(l));
  }
  return spec;
}

ModelSpec load_spec_file(const std::string& path) {
  return parse_spec(read_text_file(path, "model spec"), path);
}

std::string spec_to_json(const ModelSpec& spec, int indent) {
  json j;
  j["format"] = kSpecFormat;
  if (!spec.name.empty()) j["name"] = spec.name;
  j["input"] = {spec.input.c, spec.input.h, spec.input.w};
  json layers = json::array();
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const Layer& l = spec.layers[i];
    json o;
    o["name"] = l.name;
    o["op"] = op_name(l.op);
    if (l.inputs.size() == 1) o["in"] = l.inputs[0];
    if (l.inputs.size() > 1) o["in"] = l.inputs;
    auto pair = [](int a, int b) { return a == b ? json(a) : json::array({a, b}); };
    switch (l.op) {
      case Op::conv2d:
        o["out_channels"] = l.out_channels;
        o["kernel"] = pair(l.kernel_h, l.kernel_w);
        if (l.stride_h != 1 || l.stride_w != 1) o["stride"] = pair(l.stride_h, l.stride_w);
        if (l.pad_h != 0 || l.pad_w != 0) o["padding"] = pair(l.pad_h, l.pad_w);
        if (l.groups != 1) o["groups"] = l.groups;
        if (!l.bias) o["bias"] = false;
        break;
      case Op::max_pool:
      case Op::avg_pool:
        o["kernel"] = pair(l.kernel_h, l.kernel_w);
        if (l.stride_h != l.kernel_h || l.stride_w != l.kernel_w) {
          o["stride"] = pair(l.stride_h, l.stride_w);
        }
        if (l.pad_h != 0 || l.pad_w != 0) o["padding"] = pair(l.pad_h, l.pad_w);
        break;
      case Op::dense:
        o["units"] = l.out_channels;
        if (!l.bias) o["bias"] = false;
        break;
      case Op::batch_norm:
        if (l.eps != 1e-5f) o["eps"] = l.eps;
        if (l.momentum != 0.1f) o["momentum"] = l.momentum;
        break;
      default:
        break;
    }
    layers.push_back(std::move(o));
  }
  j["layers"] = std::move(layers);
  return j.dump(indent);
}

// ---- builders ----------------------------------------------------------------------------------

Layer conv(std::string name, int out_channels, int kernel, int stride, int pad, int groups,
           bool bias) {
  Layer l;
  l.name = std::move(name);
  l.op = Op::conv2d;
  l.out_channels = out_channels;
  l.kernel_h = l.kernel_w = kernel;
  l.stride_h = l.stride_w = stride;
  l.pad_h = l.pad_w = pad < 0 ? kernel / 2 : pad;
  l.groups = groups;
  l.bias = bias;
  return l;
}

Layer conv_hw(std::string name, int out_channels, int kernel_h, int kernel_w, int stride,
              int groups, bool bias) {
  Layer l = conv(std::move(name), out_channels, 1, stride, 0, groups, bias);
  l.kernel_h = kernel_h;
  l.kernel_w = kernel_w;
  l.pad_h = kernel_h / 2;
  l.pad_w = kernel_w / 2;
  return l;
}

static Layer simple(std::string name, Op op) {
  Layer l;
  l.name = std::move(name);
  l.op = op;
  return l;
}

Layer relu(std::string name) {
  return simple(std::move(name), Op::relu);
}
Layer batch_norm(std::string name) {
  return simple(std::move(name), Op::batch_norm);
}
Layer global_avg_pool(std::string name) {
  return simple(std::move(name), Op::global_avg_pool);
}
Layer flatten(std::string name) {
  return simple(std::move(name), Op::flatten);
}

static Layer pool(std::string name, Op op, int kernel, int stride, int pad) {
  Layer l = simple(std::move(name), op);
  l.kernel_h = l.kernel_w = kernel;
  l.stride_h = l.stride_w = stride < 0 ? kernel : stride;
  l.pad_h = l.pad_w = pad;
  return l;
}
Layer max_pool(std::string name, int kernel, int stride, int pad) {
  return pool(std::move(name), Op::max_pool, kernel, stride, pad);
}
Layer avg_pool(std::string name, int kernel, int stride, int pad) {
  return pool(std::move(name), Op::avg_pool, kernel, stride, pad);
}

Layer dense(std::string name, int units, bool bias) {
  Layer l = simple(std::move(name), Op::dense);
  l.out_channels = units;
  l.bias = bias;
  return l;
}

Layer add(std::string name, std::vector<std::string> inputs) {
  return from(simple(std::move(name), Op::add), std::move(inputs));
}
Layer concat(std::string name, std::vector<std::string> inputs) {
  return from(simple(std::move(name), Op::concat), std::move(inputs));
}
Layer from(Layer layer, std::vector<std::string> inputs) {
  layer.inputs = std::move(inputs);
  return layer;
}

}  // namespace iotnas
