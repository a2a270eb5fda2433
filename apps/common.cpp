#include "apps/common.hpp"

#include "kernels/error.hpp"

namespace iotnas::apps {

DataShape data_shape(const std::string& data) {
  const std::string kind = data.substr(0, data.find(':'));
  if (kind == "fashion-mnist" || kind == "mnist") return {{1, 28, 28}, 10};
  if (kind == "cifar10") return {{3, 32, 32}, 10};
  fail("unknown dataset '", data, "' (use fashion-mnist, mnist:DIR or cifar10:DIR)");
}

}  // namespace iotnas::apps
