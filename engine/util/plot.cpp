#include "engine/util/plot.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace iotnas {

std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::string p = path;
  size_t start = 0;
  while (start <= p.size()) {
    const size_t end = std::min(p.find(':', start), p.size());
    const std::string dir = p.substr(start, end - start);
    if (!dir.empty()) {
      const std::string exe = dir + "/gnuplot";
      if (::access(exe.c_str(), X_OK) == 0) return exe;
    }
    start = end + 1;
  }
  return "";
}

std::string run_gnuplot(const std::string& gnuplot, const std::string& dir,
                        const std::string& script) {
  const pid_t pid = ::fork();
  if (pid < 0) return "cannot start gnuplot (fork failed)";
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    // gnuplot's warnings would mix with our output; a failure is reported by the exit status.
    if (!std::freopen("/dev/null", "w", stdout) || !std::freopen("/dev/null", "w", stderr)) {
      ::_exit(126);
    }
    ::execl(gnuplot.c_str(), gnuplot.c_str(), script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return "cannot wait for gnuplot";
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return "gnuplot " + script + " failed (exit status " +
         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + "); run it by hand in " +
         dir + " to see why";
}

}  // namespace iotnas
