#include "apps/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace iotnas::apps {

std::string format_duration(double s) {
  char buf[32];
  if (!(s >= 0)) return "?";
  const long t = long(s + 0.5);
  if (t < 60) {
    std::snprintf(buf, sizeof buf, "%lds", t);
  } else if (t < 3600) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  }
  return buf;
}

Progress::Progress(double interval)
    : tty_(isatty(STDERR_FILENO)), interval_(interval), last_(std::chrono::steady_clock::now()) {}

void Progress::update(const std::string& text) {
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    std::fflush(stderr);
    dirty_ = true;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_).count() < interval_) return;
  last_ = now;
  std::fprintf(stderr, "%s\n", text.c_str());
}

void Progress::line(const std::string& text) {
  if (tty_ && dirty_) std::fprintf(stderr, "\r\033[K");
  dirty_ = false;
  std::fprintf(stderr, "%s\n", text.c_str());
  last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (tty_ && dirty_) std::fprintf(stderr, "\r\033[K");
}

}  // namespace iotnas::apps
