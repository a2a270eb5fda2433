// Model specs: every kind of bad spec is one iotnas::Error line that names the layer (or the key)
// at fault; analytics (parameters, FLOPs, peak activation bytes) checked against counts worked
// out by hand in the comments; every reference model builds and survives a JSON round trip.
#include <gtest/gtest.h>

#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>

#include "engine/data.hpp"
#include "engine/graph.hpp"
#include "engine/model.hpp"
#include "engine/program.hpp"
#include "engine/reference_models.hpp"
#include "engine/spec.hpp"
#include "engine/trainer.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {
namespace {

// The message of the iotnas::Error `f` throws (a test failure if it throws nothing or another
// type); it must be one line and contain every string in `want`.
template <typename F>
std::string error_of(F&& f, std::initializer_list<const char*> want) {
  std::string msg;
  try {
    f();
    ADD_FAILURE() << "no iotnas::Error thrown";
    return "";
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "error is not one line: " << msg;
  for (const char* w : want) {
    EXPECT_NE(msg.find(w), std::string::npos) << "message lacks \"" << w << "\": " << msg;
  }
  return msg;
}

// A spec's JSON with `layers` spliced in.
std::string spec_json(const std::string& layers, const std::string& input = "[1, 8, 8]") {
  return R"({"format": "iotnas-model/1", "name": "t", "input": )" + input + R"(, "layers": [)" +
         layers + "]}";
}

void parse_and_build(const std::string& json) {
  build_graph(parse_spec(json, "test.json"));
}

// ---- parse errors ------------------------------------------------------------------------------

TEST(SpecParse, AcceptsAMinimalSpecWithDefaults) {
  const ModelSpec s =
      parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 4, "kernel": 3},
                   {"name": "p", "op": "max_pool", "kernel": 2},
                   {"name": "fc", "op": "dense", "units": 10})"),
                 "test.json");
  ASSERT_EQ(s.layers.size(), 3u);
  const Layer& c = s.layers[0];
  EXPECT_EQ(c.op, Op::conv2d);
  EXPECT_EQ(c.stride_h, 1);  // conv stride defaults to 1
  EXPECT_EQ(c.pad_h, 0);     // padding defaults to 0
  EXPECT_EQ(c.groups, 1);
  EXPECT_TRUE(c.bias);
  EXPECT_TRUE(c.inputs.empty());       // the layer before it
  EXPECT_EQ(s.layers[1].stride_h, 2);  // pool stride defaults to the kernel
  EXPECT_EQ(s.layers[1].stride_w, 2);
  EXPECT_EQ(s.layers[2].out_channels, 10);
  // [1,8,8] -conv3-> [4,6,6] -pool2-> [4,3,3] -dense-> [10,1,1]
  const Graph g = build_graph(s);
  EXPECT_EQ(g.nodes[1].out, (Shape{4, 6, 6}));
  EXPECT_EQ(g.nodes[2].out, (Shape{4, 3, 3}));
  EXPECT_EQ(g.output().out, (Shape{10, 1, 1}));
}

TEST(SpecParse, RectangularKernelsStridesAndPadding) {
  const ModelSpec s =
      parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 2, "kernel": [1, 3],
                    "stride": [2, 1], "padding": [0, 1]},
                   {"name": "fc", "op": "dense", "units": 3})",
                           "[1, 7, 5]"),
                 "test.json");
  const Layer& c = s.layers[0];
  EXPECT_EQ(c.kernel_h, 1);
  EXPECT_EQ(c.kernel_w, 3);
  EXPECT_EQ(c.stride_h, 2);
  EXPECT_EQ(c.stride_w, 1);
  EXPECT_EQ(c.pad_h, 0);
  EXPECT_EQ(c.pad_w, 1);
  // H: (7 - 1)/2 + 1 = 4; W: (5 + 2 - 3)/1 + 1 = 5.
  EXPECT_EQ(build_graph(s).nodes[1].out, (Shape{2, 4, 5}));
}

TEST(SpecParse, NotJsonOrNotAnObject) {
  error_of([] { parse_spec("{\"input\": [1, 8, 8], \"layers\": [", "bad.json"); },
           {"bad.json", "not valid JSON"});
  error_of([] { parse_spec("[1, 2, 3]", "bad.json"); }, {"bad.json", "JSON object"});
  error_of([] { parse_spec("", "empty.json"); }, {"empty.json"});
}

TEST(SpecParse, WrongFormatVersion) {
  error_of(
      [] {
        parse_spec(R"({"format": "iotnas-model/2", "input": [1, 8, 8],
                       "layers": [{"name": "fc", "op": "dense", "units": 2}]})",
                   "v2.json");
      },
      {"v2.json", "iotnas-model/2", "iotnas-model/1"});
  error_of(
      [] {
        parse_spec(R"({"format": 1, "input": [1, 8, 8],
                       "layers": [{"name": "fc", "op": "dense", "units": 2}]})",
                   "v.json");
      },
      {"'format'"});
}

TEST(SpecParse, UnknownOpNamesTheLayerAndListsTheOps) {
  error_of([] { parse_spec(spec_json(R"({"name": "weird", "op": "conv3d"})"), "t.json"); },
           {"t.json", "layer 'weird'", "unknown op 'conv3d'", "conv2d", "global_avg_pool"});
  // "input" is the graph's source node, not an op a spec may use.
  error_of([] { parse_spec(spec_json(R"({"name": "x", "op": "input"})"), "t.json"); },
           {"layer 'x'", "unknown op 'input'"});
  error_of([] { parse_spec(spec_json(R"({"name": "x"})"), "t.json"); }, {"layer 'x'", "'op'"});
}

TEST(SpecParse, UnknownKeysNameTheLayerAndTheKey) {
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "c1", "op": "conv2d", "out_channels": 4, "kernel": 3,
                                 "dilation": 2})"),
                   "t.json");
      },
      {"layer 'c1'", "unknown key 'dilation'", "groups"});
  // A key that belongs to another op is unknown here: relu takes no kernel.
  error_of([] { parse_spec(spec_json(R"({"name": "r", "op": "relu", "kernel": 3})"), "t.json"); },
           {"layer 'r'", "unknown key 'kernel'"});
  // dense spells its width "units", not "out_channels".
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "fc", "op": "dense", "out_channels": 3})"), "t.json");
      },
      {"layer 'fc'", "unknown key 'out_channels'"});
  error_of(
      [] {
        parse_spec(R"({"input": [1, 8, 8], "layer": [], "layers": [
                       {"name": "fc", "op": "dense", "units": 2}]})",
                   "t.json");
      },
      {"top level", "unknown key 'layer'"});
}

TEST(SpecParse, MissingAndOutOfRangeValuesNameTheLayer) {
  error_of([] { parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "kernel": 3})"), "t.json"); },
           {"layer 'c'", "out_channels"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 3})"), "t.json");
      },
      {"layer 'c'", "'kernel'"});
  error_of([] { parse_spec(spec_json(R"({"name": "fc", "op": "dense"})"), "t.json"); },
           {"layer 'fc'", "'units'"});
  error_of([] { parse_spec(spec_json(R"({"name": "p", "op": "avg_pool"})"), "t.json"); },
           {"layer 'p'", "'kernel'"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 0, "kernel": 3})"),
                   "t.json");
      },
      {"layer 'c'", "'out_channels' = 0", "out of range"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 3,
                                 "stride": 0})"),
                   "t.json");
      },
      {"layer 'c'", "'stride'"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 2,
                                 "kernel": [3, 3, 3]})"),
                   "t.json");
      },
      {"layer 'c'", "'kernel'"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 2.5})"),
                   "t.json");
      },
      {"layer 'c'", "'kernel'"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "fc", "op": "dense", "units": 2, "bias": 1})"), "t.json");
      },
      {"layer 'fc'", "'bias'", "true or false"});
  error_of(
      [] { parse_spec(spec_json(R"({"name": "bn", "op": "batch_norm", "eps": 0})"), "t.json"); },
      {"layer 'bn'", "'eps'"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "bn", "op": "batch_norm", "momentum": 1.5})"), "t.json");
      },
      {"layer 'bn'", "'momentum'"});
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "p", "op": "max_pool", "kernel": 2, "padding": 2})"),
                   "t.json");
      },
      {"layer 'p'", "padding"});
  error_of([] { parse_spec(spec_json(R"({"name": "r", "op": "relu", "in": 3})"), "t.json"); },
           {"layer 'r'", "'in'"});
  error_of([] { parse_spec(spec_json(R"({"name": "r", "op": "relu", "in": []})"), "t.json"); },
           {"layer 'r'", "'in'"});
  // Without a name the layer is named by its position.
  error_of([] { parse_spec(spec_json(R"({"op": "relu"}, {"op": "relu"})"), "t.json"); },
           {"layers[0]", "'name'"});
  error_of([] { parse_spec(spec_json(R"({"name": "ok", "op": "relu"}, 7)"), "t.json"); },
           {"layers[1]"});
  error_of([] { parse_spec(spec_json(R"({"name": "input", "op": "relu"})"), "t.json"); },
           {"'input'"});
}

TEST(SpecParse, InputShapeIsChecked) {
  error_of(
      [] { parse_spec(R"({"layers": [{"name": "fc", "op": "dense", "units": 2}]})", "noin.json"); },
      {"noin.json", "missing 'input'"});
  for (const char* bad : {"[1, 28]", "[0, 28, 28]", "[1, -28, 28]", "[1, 28.5, 28]", "\"1x28x28\"",
                          "[1, 5000, 28]"}) {
    SCOPED_TRACE(bad);
    error_of(
        [&] {
          parse_spec(spec_json(R"({"name": "fc", "op": "dense", "units": 2})", bad), "t.json");
        },
        {"'input'"});
  }
  error_of([] { parse_spec(R"({"input": [1, 8, 8], "layers": []})", "t.json"); }, {"'layers'"});
}

TEST(SpecParse, DuplicateNames) {
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "a", "op": "relu"}, {"name": "a", "op": "relu"})"),
                   "t.json");
      },
      {"layer 'a'", "twice"});
}

// ---- graph errors ------------------------------------------------------------------------------

TEST(SpecGraph, UnknownInputNamesTheLayerAndTheInput) {
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 3},
                                     {"name": "fc", "op": "dense", "units": 2, "in": "cc"})"));
      },
      {"layer 'fc'", "input 'cc'"});
}

TEST(SpecGraph, Cycles) {
  // a -> b -> a, both feeding the output through an add.
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "a", "op": "relu", "in": "b"},
                                     {"name": "b", "op": "relu", "in": "a"},
                                     {"name": "out", "op": "add", "in": ["a", "b"]})"));
      },
      {"cycle", "layer 'a'"});
  // A longer cycle through a conv, and a self-loop.
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 1, "kernel": 1,
                                      "in": "r2"},
                                     {"name": "r1", "op": "relu"},
                                     {"name": "r2", "op": "relu"},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"cycle"});
  error_of([] { parse_and_build(spec_json(R"({"name": "self", "op": "relu", "in": "self"})")); },
           {"layer 'self'", "cycle"});
}

TEST(SpecGraph, AddOfDifferentShapes) {
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "a", "op": "conv2d", "out_channels": 4, "kernel": 3,
                                      "padding": 1, "in": "input"},
                                     {"name": "b", "op": "conv2d", "out_channels": 5, "kernel": 3,
                                      "padding": 1, "in": "input"},
                                     {"name": "sum", "op": "add", "in": ["a", "b"]},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'sum'", "[4, 8, 8]", "[5, 8, 8]"});
  // Same channels, different spatial size (padding 1 vs none).
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "a", "op": "conv2d", "out_channels": 4, "kernel": 3,
                                      "padding": 1, "in": "input"},
                                     {"name": "b", "op": "conv2d", "out_channels": 4, "kernel": 3,
                                      "in": "input"},
                                     {"name": "sum", "op": "add", "in": ["a", "b"]},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'sum'", "[4, 6, 6]"});
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "sum", "op": "add", "in": ["input"]},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'sum'", "takes 2 to 1000 inputs, not 1"});
}

TEST(SpecGraph, ConcatOfDifferentHeightOrWidth) {
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "a", "op": "conv2d", "out_channels": 3, "kernel": 1,
                                      "in": "input"},
                                     {"name": "b", "op": "max_pool", "kernel": 2, "in": "input"},
                                     {"name": "cat", "op": "concat", "in": ["a", "b"]},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'cat'", "[3, 8, 8]", "[1, 4, 4]"});
  // Only the width differs: [1,7,8] vs [1,7,7].
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "a", "op": "conv2d", "out_channels": 1,
                                      "kernel": [2, 1], "in": "input"},
                                     {"name": "b", "op": "conv2d", "out_channels": 1, "kernel": 2,
                                      "in": "input"},
                                     {"name": "cat", "op": "concat", "in": ["a", "b"]},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'cat'", "height/width"});
}

TEST(SpecGraph, KernelLargerThanInput) {
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "big", "op": "conv2d", "out_channels": 2,
                                      "kernel": 9},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'big'", "9x9", "[1, 8, 8]"});
  // With padding 1 the 9x9 kernel fits the 8x8 image ((8 + 2 - 9) + 1 = 2 outputs per side).
  EXPECT_NO_THROW(parse_and_build(spec_json(R"({"name": "big", "op": "conv2d", "out_channels": 2,
                                    "kernel": 9, "padding": 1},
                                   {"name": "fc", "op": "dense", "units": 2})")));
  // Pooling windows too; and anything spatial after a dense layer's [units, 1, 1] output.
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "p1", "op": "max_pool", "kernel": 4},
                                     {"name": "p2", "op": "avg_pool", "kernel": 3},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'p2'", "3x3", "[1, 2, 2]"});
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "fc1", "op": "dense", "units": 16},
                                     {"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 3},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'c'", "[16, 1, 1]"});
}

TEST(SpecGraph, GroupsMustDivideChannels) {
  // 6 input channels, 4 groups.
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "c1", "op": "conv2d", "out_channels": 6, "kernel": 1},
                                     {"name": "g", "op": "conv2d", "out_channels": 8, "kernel": 3,
                                      "groups": 4},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'g'", "6 channels", "groups 4"});
  // out_channels 6 is not a multiple of groups 4 (caught while parsing).
  error_of(
      [] {
        parse_spec(spec_json(R"({"name": "g", "op": "conv2d", "out_channels": 6, "kernel": 3,
                                 "groups": 4})",
                             "[8, 8, 8]"),
                   "t.json");
      },
      {"layer 'g'", "groups 4"});
  // Depthwise (groups == in == out) is fine.
  EXPECT_NO_THROW(parse_and_build(spec_json(
      R"({"name": "dw", "op": "conv2d", "out_channels": 8, "kernel": 3, "groups": 8},
         {"name": "fc", "op": "dense", "units": 2})",
      "[8, 8, 8]")));
}

TEST(SpecGraph, ArityUnusedLayersAndOutputPosition) {
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 1},
                                     {"name": "r", "op": "relu", "in": ["c", "input"]},
                                     {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'r'", "exactly one input"});
  // "dead" feeds nothing: a silently ignored branch would skew the analytics.
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "dead", "op": "conv2d", "out_channels": 2,
                                      "kernel": 1},
                                     {"name": "fc", "op": "dense", "units": 2, "in": "input"})"));
      },
      {"layer 'dead'", "not used"});
  // The last layer is the output: a layer that consumes it cannot come later.
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "r", "op": "relu", "in": "fc"},
                                     {"name": "fc", "op": "dense", "units": 2, "in": "input"})"));
      },
      {"layer 'fc'", "output"});
}

TEST(SpecGraph, LayersOutOfOrderAreSorted) {
  // "head" is written first but reads "body"; the graph orders them.
  const Graph g = build_graph(parse_spec(spec_json(R"({"name": "head", "op": "relu", "in": "body"},
                   {"name": "body", "op": "conv2d", "out_channels": 3, "kernel": 3, "in": "input"},
                   {"name": "fc", "op": "dense", "units": 2, "in": "head"})"),
                                         "t.json"));
  ASSERT_EQ(g.nodes.size(), 4u);
  EXPECT_EQ(g.nodes[1].layer.name, "body");
  EXPECT_EQ(g.nodes[2].layer.name, "head");
  EXPECT_EQ(g.nodes[2].inputs, std::vector<int>{1});
}

// A dense classifier of the wrong width for the dataset fails before any training.
TEST(SpecGraph, OutputMustMatchTheDatasetClasses) {
  const Dataset ds = make_synthetic(20, 10, {1, 8, 8}, 4, 1);
  ModelSpec s{"m", {1, 8, 8}, {}};
  s.layers.push_back(conv("c", 2, 3));
  s.layers.push_back(global_avg_pool("gap"));
  s.layers.push_back(dense("fc", 5));
  error_of([&] { check_model_fits(make_model(s, 0), ds); }, {"'m'", "[5, 1, 1]", "4 classes"});
  // A spatial output is not a classifier.
  s.layers.pop_back();
  s.layers.pop_back();
  s.layers.back().out_channels = 4;
  error_of([&] { check_model_fits(make_model(s, 0), ds); }, {"[4, 8, 8]"});
  ModelSpec wrong_input{"w", {1, 9, 8}, {dense("fc", 4)}};
  error_of([&] { check_model_fits(make_model(wrong_input, 0), ds); }, {"[1, 9, 8]", "[1, 8, 8]"});
}

TEST(SpecFile, MissingFileNamesThePath) {
  error_of([] { load_spec_file("/nonexistent/model.json"); }, {"/nonexistent/model.json"});
  error_of([] { resolve_model("ref:nope"); }, {"ref:nope", "ref:plain-1k"});
}

// ---- hostile input: limits, overflow, strict JSON (the hardening issue) -----------------------

// `count` copies of `name`, as a JSON list.
std::string repeated(const std::string& name, int count) {
  std::string list = "[";
  for (int i = 0; i < count; ++i) list += (i ? ", \"" : "\"") + name + "\"";
  return list + "]";
}

TEST(SpecLimits, ChannelCountsThatWrap32BitsAreRefused) {
  // 64 -> 64,000 -> 64,000,000 -> 4,352,000,000 channels: the last wrapped an int before.
  const std::string layers = R"({"name": "c1", "op": "concat", "in": )" + repeated("input", 1000) +
                             R"(}, {"name": "c2", "op": "concat", "in": )" + repeated("c1", 1000) +
                             R"(}, {"name": "c3", "op": "concat", "in": )" + repeated("c2", 68) +
                             R"(}, {"name": "fc", "op": "dense", "units": 10})";
  error_of([&] { parse_and_build(spec_json(layers, "[64, 1, 1]")); },
           {"layer 'c3'", "exceeds 2147483647", "docs/model-spec.md"});
}

TEST(SpecLimits, InputsAndWeightsPastTheLimitsAreRefused) {
  // 4096 x 1024 x 1025 elements (> 2^32): flattened it wrapped to a small size.
  error_of(
      [] {
        parse_and_build(
            spec_json(R"({"name": "fc", "op": "dense", "units": 2})", "[4096, 1024, 1025]"));
      },
      {"layer 'input'", "exceeds 2147483647"});
  // 2^30 inputs x 4096 units = 2^42 weights.
  error_of(
      [] {
        parse_and_build(
            spec_json(R"({"name": "fc", "op": "dense", "units": 4096})", "[1024, 1024, 1024]"));
      },
      {"layer 'fc'", "weight count exceeds"});
  // Many layers each under the limit, together over it.
  std::string layers;
  for (int i = 0; i < 40; ++i) {
    layers += R"({"name": "c)" + std::to_string(i) +
              R"(", "op": "conv2d", "out_channels": 4096, "kernel": [64, 1], "padding": [32, 0]},)";
  }
  layers += R"({"name": "fc", "op": "dense", "units": 2})";
  error_of([&] { parse_and_build(spec_json(layers, "[4096, 1, 1]")); },
           {"parameter count exceeds"});
}

TEST(SpecLimits, HugeIntegersAreQuotedNotWrapped) {
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "c", "op": "conv2d",
      "out_channels": 18446744073709551615, "kernel": 1})"));
      },
      {"layer 'c'", "18446744073709551615", "out of range"});
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "fc", "op": "dense", "units": 2})",
                                  "[18446744073709551615, 8, 8]"));
      },
      {"'input'", "18446744073709551615"});
}

TEST(SpecLimits, AddAndConcatTakeTwoToAThousandInputs) {
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "a", "op": "add", "in": )" + repeated("input", 1001) +
                                  R"(}, {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'a'", "1001 inputs", "at most 1000"});
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "a", "op": "add", "in": ["input"]},
                                             {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"layer 'a'", "takes 2 to 1000 inputs, not 1"});
}

TEST(SpecLimits, BatchesPastTheAddressSpaceAreRefusedBeforeAllocating) {
  // 2047 * 2^20 floats per map: a batch of 2^31 - 1 maps needs more than 2^63 bytes, past a
  // 64-bit (and a 32-bit) machine's address space.
  const Graph g = build_graph(parse_spec(spec_json(R"({"name": "g", "op": "global_avg_pool"},
                                                       {"name": "fc", "op": "dense", "units": 2})",
                                                   "[2047, 1024, 1024]"),
                                         "t"));
  ProgramOptions o;
  o.batch = 2147483647;
  error_of([&] { compile(g, o, {}); }, {"layer 'input'", "more than this machine can address"});
}

TEST(SpecStrictJson, RepeatedKeysAndHugeNumbersNameTheFile) {
  error_of(
      [] { parse_spec(R"({"input": [1, 8, 8], "input": [1, 9, 9], "layers": []})", "m.json"); },
      {"m.json", "\"input\" appears twice"});
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "b", "op": "batch_norm", "eps": 1e-5,
                                             "eps": 1e-3}, {"name": "fc", "op": "dense",
                                             "units": 2})"));
      },
      {"\"eps\" appears twice"});
  error_of(
      [] {
        parse_and_build(spec_json(R"({"name": "b", "op": "batch_norm", "eps": 1e400},
                                             {"name": "fc", "op": "dense", "units": 2})"));
      },
      {"test.json", "1e400", "double"});
}

TEST(SpecStrictJson, NamesWithControlCharactersAreRefusedOnOneLine) {
  const std::string msg = error_of(
      [] {
        parse_and_build(
            spec_json("{\"name\": \"c\\n\\u001b[31mred\", \"op\": \"relu\"}, "
                      "{\"name\": \"fc\", \"op\": \"dense\", \"units\": 2}"));
      },
      {"control character", "c\\n\\x1b[31mred"});
  EXPECT_EQ(msg.find('\x1b'), std::string::npos) << msg;
  error_of(
      [] {
        parse_and_build(
            spec_json("{\"name\": \"r\", \"op\": \"relu\", \"in\": \"a\\tb\"}, "
                      "{\"name\": \"fc\", \"op\": \"dense\", \"units\": 2}"));
      },
      {"layer 'r'", "control character"});
  error_of(
      [] {
        parse_and_build(spec_json("{\"name\": \"" + std::string(201, 'x') +
                                  "\", \"op\": \"relu\"}, {\"name\": \"fc\", \"op\": "
                                  "\"dense\", \"units\": 2}"));
      },
      {"longer than 200 bytes"});
}

TEST(SpecFile, ADirectoryIsNamedAsOne) {
  error_of([] { load_spec_file("/tmp"); }, {"'/tmp' is a directory"});
}

// ---- analytics, counted by hand ----------------------------------------------------------------

TEST(SpecAnalytics, ConvReluDense) {
  // [1,5,5] -conv 3x3, 2 out, no padding-> [2,3,3] -relu-> -dense 4->
  //   conv:  params 2*1*3*3 + 2 = 20;  FLOPs 2 * (2*3*3 outputs) * (1*3*3 taps) = 324
  //   dense: params 4*18 + 4 = 76;     FLOPs 2 * 4*18 = 144
  // Peak (batch 1, float32): while the conv runs, its input (25 values) and output (18) are
  // alive: 43 * 4 = 172 bytes; later steps hold at most 18 + 18.
  ModelSpec s{"a", {1, 5, 5}, {conv("c", 2, 3, 1, 0), relu("r"), dense("fc", 4)}};
  const Analytics a = analyze(s);
  EXPECT_EQ(a.params, 96);
  EXPECT_EQ(a.inference_params, 96);
  EXPECT_EQ(a.flops, 468);
  EXPECT_EQ(a.peak_activation_bytes, 172);
  EXPECT_EQ(a.total_activation_bytes, (25 + 18 + 18 + 4) * 4);
  EXPECT_EQ(a.num_layers, 2);
}

TEST(SpecAnalytics, BranchesAndConcat) {
  // [1,4,4] -> a: conv 1x1 3 out (params 6, FLOPs 2*48 = 96), b: conv 1x1 5 out (10, 160),
  // cat [8,4,4], gap [8,1,1], fc 2 (params 18, FLOPs 32).
  // Peak: when cat runs, a (48 values), b (80) and cat (128) are alive: 256 * 4 = 1024 bytes
  // (the image, 16 values, was freed after b, its last reader).
  ModelSpec s{"b", {1, 4, 4}, {}};
  s.layers.push_back(from(conv("a", 3, 1, 1, 0), {"input"}));
  s.layers.push_back(from(conv("b", 5, 1, 1, 0), {"input"}));
  s.layers.push_back(concat("cat", {"a", "b"}));
  s.layers.push_back(global_avg_pool("gap"));
  s.layers.push_back(dense("fc", 2));
  const Analytics a = analyze(s);
  EXPECT_EQ(a.params, 34);
  EXPECT_EQ(a.flops, 288);
  EXPECT_EQ(a.peak_activation_bytes, 1024);
  const Graph g = build_graph(s);
  EXPECT_EQ(g.nodes[3].out, (Shape{8, 4, 4}));
}

TEST(SpecAnalytics, ResidualKeepsTheSkipAlive) {
  // [2,6,6]: c1 conv 3x3 pad 1 -> [2,6,6]; c2 conv 3x3 pad 1 -> [2,6,6]; sum = add(input, c2).
  // The image (72 values) lives until the add, so when c2 runs the image, c1 and c2 are alive:
  // 3 * 72 * 4 = 864 bytes; at the add: image, c2 and sum = 864 again.
  ModelSpec s{"r", {2, 6, 6}, {}};
  s.layers.push_back(conv("c1", 2, 3));
  s.layers.push_back(conv("c2", 2, 3));
  s.layers.push_back(add("sum", {"input", "c2"}));
  s.layers.push_back(flatten("fl"));
  s.layers.push_back(dense("fc", 3, false));
  const Analytics a = analyze(s);
  // convs: 2*2*9 + 2 = 38 params and 2 * 72 * 18 = 2592 FLOPs each; fc: 3*72 = 216, no bias.
  EXPECT_EQ(a.params, 38 + 38 + 216);
  EXPECT_EQ(a.flops, 2592 * 2 + 2 * 216);
  EXPECT_EQ(a.peak_activation_bytes, 864);
}

TEST(SpecAnalytics, GroupsStrideAndBatchNorm) {
  // [4,7,7]: g = conv 3x3, stride 2, pad 1, 8 out, groups 2, no bias:
  //   out (7 + 2 - 3)/2 + 1 = 4 -> [8,4,4]; params 8 * (4/2) * 9 = 144;
  //   FLOPs 2 * 128 outputs * 18 taps = 4608.
  // bn: 2 * 8 = 16 params (gamma, beta) and 16 state values (running mean, var); folded into g,
  //   which gains a bias of 8: inference params 144 + 8.
  // dw = depthwise 3x3 pad 1 with bias: 8 * 1 * 9 + 8 = 80 params, FLOPs 2 * 128 * 9 = 2304.
  // p = max pool 2 (stride 2): [8,2,2]; fc 3: 3*32 + 3 = 99 params, 192 FLOPs.
  ModelSpec s{"g", {4, 7, 7}, {}};
  s.layers.push_back(conv("g", 8, 3, 2, 1, 2, false));
  s.layers.push_back(batch_norm("bn"));
  s.layers.push_back(conv("dw", 8, 3, 1, 1, 8));
  s.layers.push_back(max_pool("p", 2));
  s.layers.push_back(dense("fc", 3));
  const Graph g = build_graph(s);
  EXPECT_EQ(g.nodes[1].out, (Shape{8, 4, 4}));
  EXPECT_EQ(g.nodes[4].out, (Shape{8, 2, 2}));
  EXPECT_EQ(g.num_state, 16);
  const Analytics a = analyze(g);
  EXPECT_EQ(a.params, 144 + 16 + 80 + 99);
  EXPECT_EQ(a.inference_params, 144 + 8 + 80 + 99);
  EXPECT_EQ(a.flops, 4608 + 2304 + 192);
  EXPECT_EQ(a.num_layers, 3);
}

TEST(SpecAnalytics, PoolingShapes) {
  // avg pool 3, stride 2, pad 1 on 9x9: (9 + 2 - 3)/2 + 1 = 5; max pool 2 on 5x5: floor -> 2.
  ModelSpec s{"p", {3, 9, 9}, {avg_pool("a", 3, 2, 1), max_pool("m", 2), flatten("f")}};
  const Graph g = build_graph(s);
  EXPECT_EQ(g.nodes[1].out, (Shape{3, 5, 5}));
  EXPECT_EQ(g.nodes[2].out, (Shape{3, 2, 2}));
  EXPECT_EQ(g.nodes[3].out, (Shape{12, 1, 1}));
  const Analytics a = analyze(g);
  EXPECT_EQ(a.params, 0);
  EXPECT_EQ(a.flops, 0);  // only multiply-adds of conv2d and dense count
}

// The parameter counts in ../shared/FACTS.md were measured on PyTorch's versions of these nets;
// ResNet-20 (option B: 1x1 projection + batch norm where the width changes) by hand:
//   stem 3*16*9 + 32 = 464; stage 1: 3 * (2 * 16*16*9 + 64) = 14,016;
//   stage 2: 16*32*9 + 32*32*9 + 128 + (16*32 + 64) + 2 * (2 * 32*32*9 + 128) = 51,648;
//   stage 3: 32*64*9 + 64*64*9 + 256 + (32*64 + 128) + 2 * (2 * 64*64*9 + 256) = 205,696;
//   fc 64*10 + 10 = 650; total 272,474.
TEST(SpecAnalytics, ReferenceModelsHaveTheirKnownSizes) {
  EXPECT_EQ(analyze(reference_model("plain-1k")).params, 1086);
  EXPECT_EQ(analyze(reference_model("plain-14k")).params, 14378);
  EXPECT_EQ(analyze(reference_model("plain-120k")).params, 119530);
  EXPECT_EQ(analyze(reference_model("plain-960k")).params, 962926);
  EXPECT_EQ(analyze(reference_model("resnet20", {3, 32, 32}, 10)).params, 272474);
  // plain-1k FLOPs: conv1 2*8*784*9 = 112,896; conv2 (14x14) 2*12*196*72 = 338,688; fc 240.
  EXPECT_EQ(analyze(reference_model("plain-1k")).flops, 112896 + 338688 + 240);
}

// The worked example of docs/model-spec.md parses and has the analytics the document states
// (worked out by hand there).
TEST(SpecDocs, WorkedExampleMatchesTheDocument) {
  std::ifstream f(std::string(IOTNAS_SOURCE_DIR) + "/docs/model-spec.md");
  ASSERT_TRUE(f) << "docs/model-spec.md not found";
  const std::string doc((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t begin = doc.find("```json\n");
  ASSERT_NE(begin, std::string::npos);
  const size_t end = doc.find("```", begin + 8);
  const ModelSpec s = parse_spec(doc.substr(begin + 8, end - begin - 8), "docs/model-spec.md");
  const Graph g = build_graph(s);
  const Analytics a = analyze(g);
  EXPECT_EQ(a.params, 1346);
  EXPECT_EQ(a.inference_params, 1338);
  EXPECT_EQ(a.flops, 564640);
  EXPECT_EQ(a.peak_activation_bytes, 50176);
  EXPECT_EQ(g.output().out, (Shape{10, 1, 1}));
  EXPECT_NE(doc.find("Total: 1,346 parameters (1,338 for inference"), std::string::npos)
      << "the document's totals changed: update this test with them";
}

TEST(SpecReference, EveryReferenceModelBuildsAndRoundTrips) {
  ASSERT_GE(reference_models().size(), 4u);
  for (const auto& r : reference_models()) {
    for (Shape in : {Shape{1, 28, 28}, Shape{3, 32, 32}}) {
      SCOPED_TRACE("ref:" + r.name + " on " + to_string(in));
      const ModelSpec s = reference_model(r.name, in, 10);
      const Graph g = build_graph(s);
      EXPECT_EQ(g.output().out, (Shape{10, 1, 1}));
      const ModelSpec back = parse_spec(spec_to_json(s), "roundtrip");
      EXPECT_EQ(spec_to_json(back), spec_to_json(s));
      const Analytics a = analyze(s), b = analyze(back);
      EXPECT_EQ(a.params, b.params);
      EXPECT_EQ(a.flops, b.flops);
      EXPECT_EQ(a.peak_activation_bytes, b.peak_activation_bytes);
      EXPECT_EQ(resolve_model("ref:" + r.name, in, 10).layers.size(), s.layers.size());
    }
  }
}

TEST(SpecReference, RoundTripKeepsEveryNonDefaultKey) {
  ModelSpec s{"all", {3, 11, 9}, {}};
  s.layers.push_back(conv_hw("c", 6, 1, 3, 2, 3, false));
  Layer bn = batch_norm("bn");
  bn.eps = 1e-3f;
  bn.momentum = 0.2f;
  s.layers.push_back(bn);
  s.layers.push_back(avg_pool("ap", 3, 1, 1));
  s.layers.push_back(max_pool("mp", 2, 1));
  s.layers.push_back(dense("fc", 4, false));
  const ModelSpec back = parse_spec(spec_to_json(s), "roundtrip");
  ASSERT_EQ(back.layers.size(), s.layers.size());
  const Layer& c = back.layers[0];
  EXPECT_EQ(c.kernel_h, 1);
  EXPECT_EQ(c.kernel_w, 3);
  EXPECT_EQ(c.stride_h, 2);
  EXPECT_EQ(c.pad_w, 1);
  EXPECT_EQ(c.groups, 3);
  EXPECT_FALSE(c.bias);
  EXPECT_FLOAT_EQ(back.layers[1].eps, 1e-3f);
  EXPECT_FLOAT_EQ(back.layers[1].momentum, 0.2f);
  EXPECT_EQ(back.layers[2].stride_h, 1);
  EXPECT_EQ(back.layers[2].pad_h, 1);
  EXPECT_EQ(back.layers[3].stride_w, 1);
  EXPECT_FALSE(back.layers[4].bias);
  EXPECT_EQ(back.input, s.input);
}

}  // namespace
}  // namespace iotnas
