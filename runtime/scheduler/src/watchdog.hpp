// Liveness of the ranks. MPI over TCP does not notice a node whose network is
// cut: the job just hangs (Open MPI 4.1 has no failure detector for this; see
// docs/multinode.md). Every rank's watchdog thread sends a small heartbeat to
// rank 0 and rank 0's to every rank, on a private communicator; a rank not
// heard from for `timeout` seconds ends the job with an error that names it.
#pragma once

#include <mpi.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace rankflow::detail {

class watchdog {
 public:
  /// Collective over `comm` (duplicates it). timeout_s == 0: beats but never
  /// judges (the peers may still watch this rank).
  watchdog(MPI_Comm comm, int rank, int size, std::vector<std::string> hosts, double timeout_s);
  /// Stops the thread and tells the peers this rank is leaving on purpose.
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

 private:
  void loop();
  [[noreturn]] void lost(int peer, double silent_s);
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_;
  int size_;
  std::vector<std::string> hosts_;
  double timeout_s_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace rankflow::detail
