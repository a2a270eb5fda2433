// The writer's lock on a store (docs/store.md, "One writer"): flock(2) on PATH.lock, a file beside
// the store that holds "pid@host" of its holder for the message of the next writer. The lock goes
// with the process that holds it (killed included); the file stays.
#pragma once

#include <string>

namespace iotnas::apps {

// Takes the lock of the store at `store_path` without waiting; returns its descriptor (close it to
// let go). Throws iotnas::Error when another process holds it (naming that process and its host),
// or when the file system has no locks (Lustre without the flock mount option: ENOSYS).
int lock_store(const std::string& store_path);

}  // namespace iotnas::apps
