// Small helpers shared by the subcommands.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engine/graph.hpp"

namespace iotnas::apps {

nlohmann::json analytics_json(const Analytics& a);

// Input shape and class count of a dataset name as --data takes it, without loading the data.
struct DataShape {
  Shape input;
  int classes = 10;
};
DataShape data_shape(const std::string& data);

}  // namespace iotnas::apps
