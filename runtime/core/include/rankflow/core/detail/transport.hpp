// Point-to-point and broadcast of byte buffers of any size over MPI.
//
// MPI counts are `int`, so a single message cannot carry 2 GiB or more. Every
// buffer here is framed: its first 8 bytes hold the total length, and a buffer
// longer than the segment size goes out as one first message on `tag` and the
// rest in segments on `tag + 1`. Receivers use matched probes (MPI_Improbe /
// MPI_Mrecv) so a probe and its receive can never be split by another thread
// or another receive on the same communicator.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <rankflow/core/serialize.hpp>

namespace rankflow::detail {

/// Throws mpi_error naming `routine` when `rc` is not MPI_SUCCESS.
void check_mpi(int rc, const char* routine);

/// Bytes reserved at the front of every frame for the length.
inline constexpr std::size_t frame_header_bytes = sizeof(std::uint64_t);

/// A new frame: the length slot followed by nothing yet.
inline bytes new_frame() { return bytes(frame_header_bytes, 0); }

/// An in-flight send; owns its buffer until the send completes.
class pending_send {
 public:
  pending_send() = default;
  pending_send(pending_send&&) noexcept = default;
  pending_send& operator=(pending_send&&) noexcept = default;
  pending_send(const pending_send&) = delete;
  pending_send& operator=(const pending_send&) = delete;
  ~pending_send();

  /// True once every segment has been handed to MPI's buffers or delivered.
  bool test();
  void wait();
  /// Waits, then hands the frame's buffer back for reuse (its capacity is
  /// kept: a sender that reuses buffers touches no fresh memory).
  bytes release();

 private:
  friend pending_send isend_frame(MPI_Comm, int, int, bytes&&, std::size_t);
  bytes buf_;
  std::vector<MPI_Request> reqs_;
};

/// Starts sending `frame` (made by new_frame() and then appended to) to `dest`.
pending_send isend_frame(MPI_Comm comm, int dest, int tag, bytes&& frame, std::size_t segment_bytes);

/// A received frame; payload() skips the length slot.
struct frame_in {
  int source = -1;
  bytes buf;
  const char* payload() const { return buf.data() + frame_header_bytes; }
  std::size_t payload_size() const { return buf.size() - frame_header_bytes; }
};

/// Receives a frame from `source` (or MPI_ANY_SOURCE) on `tag` if one is
/// waiting; returns false at once otherwise.
bool try_recv_frame(MPI_Comm comm, int source, int tag, std::size_t segment_bytes, frame_in& out);

/// Broadcasts a frame from `root`; on other ranks `frame` is replaced.
void bcast_frame(MPI_Comm comm, int root, bytes& frame, std::size_t segment_bytes);

/// Capped exponential backoff for polling loops: a few free polls, then sleeps
/// from 1 us doubling to `max_us`. Waiting ranks sleep instead of spinning, so
/// oversubscribed runs (64 ranks on 2 cores) do not starve the working ones.
///
/// With `spin_us`, the first spin_us microseconds after the free polls yield the
/// CPU (sched_yield) instead of sleeping: a nanosleep of 1 us really lasts
/// about 50 us (the kernel's timer slack), which would dominate a
/// request/reply exchange of a few microseconds. Yielding still lets other
/// runnable threads and processes on the core go first.
class backoff {
 public:
  explicit backoff(unsigned max_us = 1000, unsigned spin_us = 0) : max_us_(max_us), spin_us_(spin_us) { reset(); }
  void reset() noexcept;
  void wait();

 private:
  unsigned max_us_;
  unsigned spin_us_;
  unsigned polls_ = 0;
  unsigned sleep_us_ = 0;
  std::int64_t since_ns_ = 0;
};

/// Waits for `n` requests by polling (MPI_Testall) paced by a backoff with
/// `spin_us`: a rank that arrives first yields its core to the ranks still
/// computing instead of busy-waiting in MPI (oversubscribed runs).
void wait_polled(int n, MPI_Request* reqs, unsigned spin_us);

}  // namespace rankflow::detail
