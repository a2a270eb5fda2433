// Checkpoints: one versioned binary file holding a model spec, its parameters, its batch-norm
// state and the training record, with a CRC-32 over the content. Byte layout:
// docs/checkpoint-format.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/spec.hpp"

namespace iotnas {

inline constexpr uint32_t kCheckpointVersion = 1;  // the format this build writes and reads

struct Checkpoint {
  ModelSpec spec;             // the model
  std::vector<float> params;  // build_graph(spec).num_params values, in the graph's layout
  std::vector<float> state;   // build_graph(spec).num_state values (batch-norm running stats)
  std::string record_json;    // the training record, a JSON document ("" for none)
};

// Writes `ckpt` to `path` atomically: a temporary file in the same directory, flushed to disk,
// then renamed over `path`, so a crash leaves the old file or the new one, never half of one.
// Checks that the sizes match the spec and that record_json is JSON. Throws iotnas::Error.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

// Reads and validates a checkpoint (magic, version, length, checksum, sections, sizes against
// build_graph(spec)). Every failure is one iotnas::Error line naming the file and the fix.
Checkpoint load_checkpoint(const std::string& path);
// The same from the file's bytes in memory; `path` names them in errors.
Checkpoint parse_checkpoint(std::string_view bytes, const std::string& path);

}  // namespace iotnas
