// iotnas info: version, build options, backends, CPU features, threads.
#include <omp.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "engine/backend.hpp"
#include "iotnas/config.hpp"
#include "kernels/cpu_features.hpp"

namespace iotnas::apps {

void add_info_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("info", "Print version, build options, backends, CPU and threads");
  auto json_out = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json_out, "One JSON object on stdout");
  cmd->callback([&action, json_out] {
    action = [json_out] {
      const auto& cpu = kernels::cpu_features();
      nlohmann::json j;
      j["version"] = IOTNAS_VERSION;
      j["build"] = {{"type", IOTNAS_BUILD_TYPE},       {"compiler", IOTNAS_COMPILER},
                    {"arch", IOTNAS_SYSTEM_PROCESSOR}, {"dnnl", bool(IOTNAS_DNNL)},
                    {"cuda", bool(IOTNAS_CUDA)},       {"sanitize", bool(IOTNAS_SANITIZE)},
                    {"native", bool(IOTNAS_NATIVE)}};
      j["cpu"] = {
          {"model", cpu.model}, {"isa", cpu.isa_list()}, {"logical_cpus", cpu.logical_cpus}};
      j["threads"] = omp_get_max_threads();
      j["backends"] = nlohmann::json::array();
      for (const auto& b : backends()) {
        nlohmann::json o = {{"name", b.name}, {"built", b.built}, {"usable", b.usable}};
        if (!b.version.empty()) o["version"] = b.version;
        if (!b.why_not.empty()) o["why_not"] = b.why_not;
        j["backends"].push_back(o);
      }
      if (*json_out) {
        std::cout << j.dump() << "\n";
        return 0;
      }
      std::cout << "iotnas " << IOTNAS_VERSION << " (" << IOTNAS_BUILD_TYPE << ", "
                << IOTNAS_COMPILER << ", " << IOTNAS_SYSTEM_PROCESSOR << ")\n"
                << "cpu      " << cpu.model << "\n"
                << "isa      " << cpu.isa_list() << "\n"
                << "threads  " << omp_get_max_threads() << " (OpenMP; set with --threads or "
                << "OMP_NUM_THREADS)\n";
      for (const auto& b : backends()) {
        std::cout << "backend  " << b.name << ": " << (b.usable ? "yes" : "no")
                  << (b.version.empty() ? "" : " (" + b.version + ")")
                  << (b.why_not.empty() ? "" : " - " + b.why_not) << "\n";
      }
      return 0;
    };
  });
}

}  // namespace iotnas::apps
