#include "apps/store/lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kernels/base/error.hpp"

namespace iotnas::apps {

namespace {

// "pid@host" of this process.
std::string holder_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown-host");
  return std::to_string(::getpid()) + "@" + host;
}

// What the lock file says of its holder ("" when it has not written it yet).
std::string read_holder(int fd) {
  char buf[300] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s(buf, size_t(n > 0 ? n : 0));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

int lock_store(const std::string& store_path) {
  const std::string path = store_path + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    fail("cannot write ", store_path, ": cannot create its lock file ", path, ": ",
         std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = read_holder(fd);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      fail(store_path, " is being written by ",
           holder.empty() ? "another process" : "process " + holder, " (lock file ", path,
           "); one run writes a store at a time: wait for it to finish, or give another --out "
           "directory (reading commands need no lock)");
    }
    fail("cannot lock ", path, " for writing ", store_path, ": ", std::strerror(err),
         err == ENOSYS || err == ENOLCK || err == EOPNOTSUPP
             ? " (this file system has no file locks: Lustre needs the `flock` mount option, NFS "
               "its lock service); put the run directory on a file system with locks"
             : "");
  }
  const std::string me = holder_name() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != ssize_t(me.size())) {
    const int err = errno;
    ::close(fd);
    fail("cannot write the lock file ", path, ": ", std::strerror(err));
  }
  return fd;
}

}  // namespace iotnas::apps
