#include "watchdog.hpp"

#include <rankflow/core/log.hpp>
#include <rankflow/core/detail/transport.hpp>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace rankflow::detail {

namespace {
constexpr int tag_beat = 1;
constexpr int tag_bye = 2;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

watchdog::watchdog(MPI_Comm comm, int rank, int size, std::vector<std::string> hosts, double timeout_s)
    : rank_(rank), size_(size), hosts_(std::move(hosts)), timeout_s_(timeout_s) {
  check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  thread_ = std::thread([this] { loop(); });
}

watchdog::~watchdog() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  // Leaving on purpose: the peers stop watching this rank. Not waited for:
  // a peer that is gone must not hold this rank up.
  static const char bye = 0;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_ || (rank_ != 0 && r != 0)) continue;
    MPI_Request req;
    if (MPI_Isend(&bye, 1, MPI_CHAR, r, tag_bye, comm_, &req) == MPI_SUCCESS) MPI_Request_free(&req);
  }
  // Take in what peers sent meanwhile, so little is left unreceived at MPI_Finalize.
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st) != MPI_SUCCESS || !flag) break;
    char b;
    MPI_Recv(&b, 1, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, comm_, MPI_STATUS_IGNORE);
  }
  MPI_Comm_free(&comm_);
}

void watchdog::lost(int peer, double silent_s) {
  const std::string& host = hosts_[static_cast<std::size_t>(peer)];
  log::error() << "rank " << peer << " (host " << host << ") has not been heard from for "
               << static_cast<int>(silent_s * 10) / 10.0 << " s (--peer-timeout " << timeout_s_
               << "): its node is down or cut off from rank " << rank_ << "'s (host "
               << hosts_[static_cast<std::size_t>(rank_)]
               << "). Ending the job instead of hanging; a tracked run's journal keeps what it recorded, and "
                  "--resume continues it";
  std::fflush(nullptr);
  MPI_Abort(MPI_COMM_WORLD, 70);
  std::_Exit(70);  // if MPI_Abort cannot reach the launcher
}

void watchdog::loop() {
  // Beat a few times per timeout; rank 0 beats to every rank, the others to rank 0.
  // A rank beats even with the watch off (timeout 0), so that peers which
  // have it on do not take it for lost.
  const double interval = timeout_s_ > 0 ? std::clamp(timeout_s_ / 5, 0.05, 2.0) : 2.0;
  const double start = now_s();
  std::vector<double> seen(static_cast<std::size_t>(size_), start);
  std::vector<char> gone(static_cast<std::size_t>(size_), 0);  // not watched (itself, others, left)
  std::vector<char> left(static_cast<std::size_t>(size_), 0);  // said goodbye: no more beats to it
  gone[static_cast<std::size_t>(rank_)] = 1;
  if (rank_ != 0)
    for (int r = 1; r < size_; ++r) gone[static_cast<std::size_t>(r)] = 1;  // workers watch rank 0 only
  std::vector<MPI_Request> out(static_cast<std::size_t>(size_), MPI_REQUEST_NULL);
  static const char beat = 1;  // outlives requests freed unfinished
  double next_beat = 0;
  while (!stop_.load()) {
    const double now = now_s();
    if (now >= next_beat) {
      next_beat = now + interval;
      for (int r = 0; r < size_; ++r) {
        if (r == rank_ || (rank_ != 0 && r != 0) || (rank_ == 0 && left[static_cast<std::size_t>(r)])) continue;
        auto& req = out[static_cast<std::size_t>(r)];
        int done = 1;
        if (req != MPI_REQUEST_NULL) MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        // A beat still in flight (the peer is slow or unreachable) is not
        // stacked behind another: the watch is about silence, not backlog.
        if (done) MPI_Isend(&beat, 1, MPI_CHAR, r, tag_beat, comm_, &req);
      }
    }
    for (;;) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st);
      if (!flag) break;
      char b;
      MPI_Recv(&b, 1, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, comm_, MPI_STATUS_IGNORE);
      seen[static_cast<std::size_t>(st.MPI_SOURCE)] = now_s();
      if (st.MPI_TAG == tag_bye)
        gone[static_cast<std::size_t>(st.MPI_SOURCE)] = left[static_cast<std::size_t>(st.MPI_SOURCE)] = 1;
    }
    for (int r = 0; r < size_; ++r) {
      if (gone[static_cast<std::size_t>(r)] || timeout_s_ <= 0) continue;
      const double silent = now_s() - seen[static_cast<std::size_t>(r)];
      if (silent > timeout_s_) lost(r, silent);
    }
    timespec ts{0, 20'000'000};  // 20 ms: cheap, and well inside any useful timeout
    nanosleep(&ts, nullptr);
  }
  for (auto& req : out) {
    if (req != MPI_REQUEST_NULL) MPI_Request_free(&req);  // completes on its own
  }
}

}  // namespace rankflow::detail
