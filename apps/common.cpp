#include "apps/common.hpp"

#include "engine/data.hpp"

namespace iotnas::apps {

DataShape data_shape(const std::string& data) {
  const DatasetInfo info = dataset_info(data);
  return {info.shape, info.classes};
}

}  // namespace iotnas::apps
