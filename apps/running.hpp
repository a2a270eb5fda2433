// Which items are running where, for `iotnas status` (docs/cluster.md): while an item runs, its
// store (the run's, or a shard's) holds an artifact of kind "running" keyed by the item's key,
// {"worker": "rank 2" | "shard 1" | "this process", "host", "pid", "since": Unix seconds}. The
// process that holds a store clears what a killed predecessor left there when it starts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apps/store/store.hpp"

namespace iotnas::apps {

struct Running {
  std::string key;  // the item's key
  std::string worker, host;
  int64_t pid = 0;
  double since = 0;  // Unix seconds
};

void mark_running(Store& store, const std::string& key, const std::string& worker,
                  const std::string& host = "", int64_t pid = 0);
void clear_running(Store& store, const std::string& key);
void clear_all_running(Store& store);
std::vector<Running> running(Store& store);

// This machine's host name.
std::string host_name();

}  // namespace iotnas::apps
