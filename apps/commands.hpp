// The `iotnas` subcommands. Each add_*_command registers one subcommand on the app; its parsed
// options are captured and `action` is set to the function that runs it after parsing.
// Commands are thin: parse flags -> build a config -> call one library function -> report.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace iotnas::apps {

// Runs after a successful parse; returns the process exit status. Throwing iotnas::Error
// prints "iotnas: error: <message>" and exits with status 1.
using Action = std::function<int()>;

void add_info_command(CLI::App& app, Action& action);
void add_spec_command(CLI::App& app, Action& action);
void add_train_command(CLI::App& app, Action& action);
void add_eval_command(CLI::App& app, Action& action);
void add_quant_command(CLI::App& app, Action& action);
void add_laws_command(CLI::App& app, Action& action);
void add_search_command(CLI::App& app, Action& action);
void add_sample_command(CLI::App& app, Action& action);
void add_sweep_command(CLI::App& app, Action& action);
void add_calib_command(CLI::App& app, Action& action);
void add_run_commands(CLI::App& app, Action& action);      // run, solve, front, export, report
void add_cluster_commands(CLI::App& app, Action& action);  // merge, status, slurm

}  // namespace iotnas::apps
