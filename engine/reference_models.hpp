// Built-in reference models, addressable as `ref:NAME` wherever a model spec is expected.
#pragma once

#include <string>
#include <vector>

#include "engine/spec.hpp"

namespace iotnas {

struct ReferenceModel {
  std::string name;         // without the "ref:" prefix
  std::string description;  // one line
};

// Smallest (by parameters, for the default input) first.
std::vector<ReferenceModel> reference_models();

// The model for an input shape ([1, 28, 28] for Fashion-MNIST, [3, 32, 32] for CIFAR-10) and a
// class count. Throws iotnas::Error for an unknown name, listing the known ones.
ModelSpec reference_model(const std::string& name, Shape input = {1, 28, 28}, int classes = 10);

// Resolves "ref:NAME" or a file path to a spec. With `input` given (c > 0), a ref: model is built
// for that shape; a file's input shape is kept as written.
ModelSpec resolve_model(const std::string& ref_or_path, Shape input = {}, int classes = 10);

}  // namespace iotnas
