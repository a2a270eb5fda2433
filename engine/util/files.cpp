#include "engine/util/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail_errno(const std::string& path, const char* what = "cannot write") {
  fail(what, " '", path, "': ", std::strerror(errno));
}

// Writes all of text to fd; false (errno set) on a failed write.
bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(size_t(n));
  }
  return true;
}

// Standard output, a device or a FIFO: written where it is. Whatever the streams hold goes first.
void write_through(const std::string& path, std::string_view text) {
  const bool out = path == "-";
  if (out) {
    std::cout.flush();
    std::fflush(stdout);
  }
  const int fd = out ? STDOUT_FILENO : ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) fail_errno(path);
  const bool ok = write_all(fd, text);
  const int err = errno;
  if (!out && ::close(fd) != 0 && ok) fail_errno(path);
  errno = err;
  if (!ok) fail_errno(out ? std::string("standard output") : path);
}

// A new file beside path, by a name no other writer uses (mode 0666 less the umask); its name in
// tmp.
int create_temporary(const std::string& path, std::string& tmp) {
  static std::atomic<unsigned> counter{0};
  for (int tries = 0; tries < 100; ++tries) {
    tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

// A regular file (or none yet) at path: a temporary file beside it, synced, renamed over it.
// `mode`: the permission bits to give it (those of the file it replaces), or -1 for the default.
void write_replacing(const std::string& path, std::string_view text, int mode) {
  std::string tmp;
  const int fd = create_temporary(path, tmp);
  if (fd < 0) fail_errno(path);
  const bool written =
      (mode < 0 || ::fchmod(fd, mode_t(mode)) == 0) && write_all(fd, text) && ::fsync(fd) == 0;
  const int err = errno;
  const bool closed = ::close(fd) == 0;
  if (!written) errno = err;
  if (!written || !closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int reason = errno;
    ::unlink(tmp.c_str());
    errno = reason;
    fail_errno(path);
  }
  // The rename itself is durable once the folder is synced (best effort: not every file system
  // lets a folder be opened for that).
  const std::string dir = fs::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// path with its symbolic links followed (the last one may point at nothing yet).
std::string follow_links(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::error_code ec;
    const fs::path target = fs::read_symlink(p, ec);
    if (ec) fail("cannot write '", path, "': cannot read the link ", p, ": ", ec.message());
    p = (target.is_absolute() ? target : fs::path(p).parent_path() / target).string();
  }
  errno = ELOOP;
  fail_errno(path);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view text) {
  if (path == "-") return write_through(path, text);
  const std::string target = follow_links(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0) {
    if (errno != ENOENT) fail_errno(path);
    return write_replacing(target, text, -1);
  }
  if (S_ISREG(st.st_mode)) return write_replacing(target, text, int(st.st_mode & 07777));
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode))
    return write_through(target, text);
  if (S_ISDIR(st.st_mode))
    fail("cannot write '", path, "': ", target == path ? "it" : target,
         " is a directory; give a file name");
  fail("cannot write '", path, "': ", target, " is neither a file, a device nor a FIFO");
}

}  // namespace iotnas
