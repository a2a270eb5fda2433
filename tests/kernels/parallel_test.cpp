// No exception may leave an OpenMP region (it calls std::terminate): FirstException carries the
// first one out, and portable::parallel_for rethrows it after the region.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <new>

#include "kernels/base/error.hpp"
#include "kernels/base/parallel.hpp"
#include "kernels/portable/internal.hpp"

namespace iotnas {
namespace {

TEST(ParallelErrors, FirstExceptionLeavesTheRegionAndIsRethrown) {
  for (int threads : {1, 4}) {
    FirstException error;
    std::atomic<int> ran{0};
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int i = 0; i < 1000; ++i) {
      error.run([&] {
        ++ran;
        if (i == 7) throw std::bad_alloc();
      });
    }
    EXPECT_TRUE(error.failed());
    EXPECT_THROW(error.rethrow(), std::bad_alloc) << threads << " threads";
    // One thread runs in order: the bodies after the failure are skipped. With four, how many
    // ran depends on scheduling (a loaded machine may run all others before i == 7).
    if (threads == 1) EXPECT_EQ(ran.load(), 8) << "bodies after the failure are skipped";
  }
  FirstException none;
#pragma omp parallel for
  for (int i = 0; i < 100; ++i) none.run([] {});
  EXPECT_FALSE(none.failed());
  EXPECT_NO_THROW(none.rethrow());
}

TEST(ParallelErrors, ParallelForRethrowsTheBodysError) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(4);  // a team even on a one-core machine
  for (bool parallel : {false, true}) {
    try {
      kernels::portable::detail::parallel_for(64, parallel, [](int64_t i) {
        if (i == 5) fail("item ", i, " failed");
      });
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "item 5 failed");
    }
  }
  omp_set_num_threads(threads);
}

}  // namespace
}  // namespace iotnas
