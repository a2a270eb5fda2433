// iotnas spec: print a model spec's analytic properties, or a reference model's JSON.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "engine/graph.hpp"
#include "engine/reference_models.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

void print_table(const Graph& g, const Analytics& a) {
  std::printf("model %s, input %s\n", g.name.empty() ? "(unnamed)" : g.name.c_str(),
              to_string(g.input).c_str());
  std::printf("%-24s %-16s %-16s %12s %14s\n", "layer", "op", "output", "params", "FLOPs");
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    std::printf("%-24s %-16s %-16s %12lld %14lld\n", n.layer.name.c_str(), op_name(n.layer.op),
                to_string(n.out).c_str(), (long long)n.params, (long long)n.flops);
  }
  std::printf("params                 %lld\n", (long long)a.params);
  std::printf("inference params       %lld (batch norm folded)\n", (long long)a.inference_params);
  std::printf("FLOPs per image        %lld (2 per multiply-add)\n", (long long)a.flops);
  std::printf("peak activation bytes  %lld (batch 1, float32)\n",
              (long long)a.peak_activation_bytes);
}

}  // namespace

nlohmann::json analytics_json(const Analytics& a) {
  return {{"params", a.params},
          {"inference_params", a.inference_params},
          {"flops", a.flops},
          {"peak_activation_bytes", a.peak_activation_bytes},
          {"total_activation_bytes", a.total_activation_bytes}};
}

void add_spec_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand(
      "spec",
      "Check a model spec and print its analytic properties (parameters, FLOPs, activation "
      "bytes). For ref:NAME, print the reference model's spec JSON (analytics go to stderr).");
  struct Opts {
    std::string model, data = "fashion-mnist";
    bool list = false, json = false, analytics = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("model", o->model, "A spec file (JSON, docs/model-spec.md) or ref:NAME");
  cmd->add_flag("--list", o->list,
                "Print the reference models, one ref:NAME per line, smallest first");
  cmd->add_flag("--json", o->json, "Print the analytic properties as one JSON object");
  cmd->add_flag("--analytics", o->analytics,
                "For ref:NAME, print the analytics table instead of JSON");
  cmd->add_option("--data", o->data, "Dataset whose input shape ref: models are built for")
      ->capture_default_str();
  cmd->callback([&action, o] {
    action = [o] {
      const DataShape ds = data_shape(o->data);
      if (o->list) {
        std::vector<std::pair<int64_t, std::string>> rows;
        for (const auto& r : reference_models()) {
          rows.emplace_back(analyze(reference_model(r.name, ds.input, ds.classes)).params, r.name);
        }
        std::stable_sort(rows.begin(), rows.end());
        for (const auto& [p, name] : rows) std::cout << "ref:" << name << "\n";
        return 0;
      }
      if (o->model.empty()) fail("spec: give a model (a JSON file or ref:NAME) or --list");
      const ModelSpec spec = resolve_model(o->model, ds.input, ds.classes);
      const Graph g = build_graph(spec);
      const Analytics a = analyze(g);
      const bool is_ref = o->model.rfind("ref:", 0) == 0;
      if (o->json) {
        auto j = analytics_json(a);
        j["name"] = spec.name;
        j["input"] = {spec.input.c, spec.input.h, spec.input.w};
        std::cout << j.dump() << "\n";
      } else if (is_ref && !o->analytics) {
        std::cout << spec_to_json(spec) << "\n";
        std::fprintf(stderr, "%s: %lld params, %lld FLOPs per image\n", spec.name.c_str(),
                     (long long)a.params, (long long)a.flops);
      } else {
        print_table(g, a);
      }
      return 0;
    };
  });
}

}  // namespace iotnas::apps
