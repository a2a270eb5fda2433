// MPI inside `iotnas run` (docs/cluster.md). Started by mpirun or srun, rank 0 makes the plan
// (search, calibration, selection: apps/pipeline.hpp) alone, sends it to the other ranks, and hands
// out the plan's items (a candidate's train and sweep units) one at a time to whichever rank asks
// next, its own worker thread included. Rank 0 is the only writer of DIR/iotnas.sqlite: a worker
// sends each finished unit (a training run with its weights, a format's accuracy, a sweep) as a
// message, and rank 0 commits it on arrival, so a rank that dies loses only the unit in its hands.
// A plain `iotnas run` never touches MPI; a build without MPI (IOTNAS_MPI=OFF) refuses to run
// under mpirun with a clear message.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "apps/pipeline.hpp"

namespace iotnas::apps {

// Whether this process was started by mpirun or srun as a rank of an MPI job (OpenMPI's and
// PMIx/PMI's environment variables say so).
bool launched_by_mpi();
// Whether this build has MPI.
bool mpi_built();

// What rank 0 measured of its hand-out: for `iotnas run`'s last lines and the store's "mpi"
// artifact.
struct DispatchStats {
  int ranks = 0;
  std::vector<int> units_per_rank;  // train and sweep units finished, by rank
  double cpu_seconds = 0;           // rank 0's hand-out thread, from the plan's send to the end
  double busy_cpu_seconds = 0;      // of which handing out and handling messages (not waiting)
  double wall_seconds = 0;
};

// MPI_Init on construction (MPI_THREAD_FUNNELED: only the main thread calls MPI), MPI_Finalize on
// destruction. Throws iotnas::Error in a build without MPI.
class MpiJob {
 public:
  MpiJob();
  ~MpiJob();
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }

  // Rank 0: the Executor that sends the plan to the ranks and hands out its items (`threads`:
  // OpenMP threads of rank 0's own worker; 0 leaves OpenMP's default).
  Executor executor(int threads, DispatchStats& stats);
  // Rank 0: tells ranks waiting for a plan that there is none (an error, --plan-only); they exit.
  void release_workers();
  // Ranks > 0: waits for the plan, runs the items rank 0 hands out until it says stop, returns the
  // exit status. `stop` (SIGTERM) ends the work after the unit in hand.
  int work(int threads, const std::atomic<bool>* stop);

 private:
  int rank_ = 0, size_ = 1;
  bool released_ = false;
};

}  // namespace iotnas::apps
