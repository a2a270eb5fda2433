// Run configs (apps/config.cpp): parse and validate as `iotnas run --config` does, then write
// back and parse again.
#include "apps/config.hpp"
#include "fuzz/fuzz_target.hpp"
#include "kernels/base/error.hpp"

IOTNAS_FUZZ_TARGET(run_config) {
  using namespace iotnas;
  const apps::RunConfig c = apps::parse_run_config(fuzz::as_text(data), "fuzz-config.json");
  apps::validate(c, "fuzz-config.json");
  try {
    apps::parse_run_config(apps::run_config_to_json(c).dump(), "round trip");
  } catch (const Error&) {
    fuzz::finding("the config run_config_to_json writes does not parse");
  }
}
