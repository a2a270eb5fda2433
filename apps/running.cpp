#include "apps/running.hpp"

#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

namespace iotnas::apps {

namespace {

constexpr const char* kKind = "running";

}  // namespace

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

void mark_running(Store& store, const std::string& key, const std::string& worker,
                  const std::string& host, int64_t pid) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const nlohmann::json j = {{"worker", worker},
                            {"host", host.empty() ? host_name() : host},
                            {"pid", pid ? pid : int64_t(getpid())},
                            {"since", now}};
  store.put_artifact(kKind, key, j.dump());
}

void clear_running(Store& store, const std::string& key) {
  store.remove_artifact(kKind, key);
}

void clear_all_running(Store& store) {
  store.transaction([&] {
    for (const auto& key : store.artifact_keys(kKind)) store.remove_artifact(kKind, key);
  });
}

std::vector<Running> running(Store& store) {
  std::vector<Running> out;
  for (const auto& key : store.artifact_keys(kKind)) {
    const auto j = nlohmann::json::parse(store.artifact(kKind, key).value_or("{}"), nullptr, false);
    if (!j.is_object()) continue;
    Running r;
    r.key = key;
    r.worker = j.value("worker", std::string("?"));
    r.host = j.value("host", std::string("?"));
    r.pid = j.value("pid", int64_t(0));
    r.since = j.value("since", 0.0);
    out.push_back(r);
  }
  return out;
}

}  // namespace iotnas::apps
