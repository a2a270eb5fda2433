// Exceptions and OpenMP: an exception that leaves a parallel region (or one iteration of an
// `omp for`) calls std::terminate, so a bad_alloc or an iotnas::Error thrown by a worker would
// abort the whole program. Every region whose body can throw runs it through a FirstException:
//
//   FirstException error;
//   #pragma omp parallel for
//   for (int64_t i = 0; i < n; ++i) error.run([&] { work(i); });
//   error.rethrow();  // after the region, on the calling thread
//
// The first exception thrown (by any thread) is kept and rethrown; later ones are dropped, and
// once one is kept the remaining bodies are skipped (the region still ends normally).
#pragma once

#include <atomic>
#include <exception>

namespace iotnas {

class FirstException {
 public:
  // Runs body() unless an earlier body failed; keeps what it throws. Never throws.
  template <typename F>
  void run(F&& body) noexcept {
    if (failed()) return;
    try {
      body();
    } catch (...) {
      keep(std::current_exception());
    }
  }
  bool failed() const noexcept { return claimed_.load(std::memory_order_relaxed); }
  // Rethrows the kept exception, if any. Call after the region (its end is a barrier).
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void keep(std::exception_ptr e) noexcept {
    if (!claimed_.exchange(true)) error_ = std::move(e);  // only the first thread writes
  }
  std::atomic<bool> claimed_{false};
  std::exception_ptr error_;
};

}  // namespace iotnas
