// iotnas: constrained neural architecture search for IoT devices, with precision analysis and
// hardware calibration, in one binary.
#include <cstdio>
#include <exception>

#include "apps/commands.hpp"
#include "kernels/base/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "iotnas: find the best neural network (and number format) for an IoT device's memory and "
      "latency limits.\nRun `iotnas COMMAND --help` for the options of a command."};
  app.require_subcommand(1);
  app.fallthrough(false);
  iotnas::apps::Action action;
  iotnas::apps::add_info_command(app, action);
  iotnas::apps::add_spec_command(app, action);
  iotnas::apps::add_train_command(app, action);
  iotnas::apps::add_eval_command(app, action);
  iotnas::apps::add_quant_command(app, action);
  iotnas::apps::add_laws_command(app, action);
  iotnas::apps::add_search_command(app, action);
  iotnas::apps::add_sample_command(app, action);
  iotnas::apps::add_sweep_command(app, action);
  iotnas::apps::add_calib_command(app, action);
  iotnas::apps::add_run_commands(app, action);
  iotnas::apps::add_cluster_commands(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "iotnas: error: %s (run `iotnas --help` or `iotnas COMMAND --help`)\n",
                 e.what());
    return 2;
  }
  if (!action) return 0;
  try {
    return action();
  } catch (const iotnas::Error& e) {
    std::fprintf(stderr, "iotnas: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "iotnas: error: out of memory; try a smaller --batch or model\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "iotnas: internal error: %s\n", e.what());
    return 70;
  }
}
