// Progress lines for long work: a self-overwriting line on a terminal, plain periodic lines (at
// most one per `interval` seconds) in a log. Always on stderr.
#pragma once

#include <chrono>
#include <string>

namespace iotnas::apps {

std::string format_duration(double seconds);  // "42s", "3m05s", "1h02m"

class Progress {
 public:
  explicit Progress(double log_interval_seconds = 10.0);
  // A transient status (overwritten on a terminal, rate-limited in a log).
  void update(const std::string& line);
  // A line that stays (ends any transient line first).
  void line(const std::string& text);
  ~Progress();

 private:
  bool tty_;
  bool dirty_ = false;
  double interval_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace iotnas::apps
