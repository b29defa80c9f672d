#include <rankflow/core/clock.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/core/detail/transport.hpp>

#include <sched.h>

#include <chrono>

#include <time.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

namespace rankflow::detail {

void check_mpi(int rc, const char* routine) {
  if (rc != MPI_SUCCESS) throw mpi_error(routine, rc);
}

namespace {
// Segments never exceed INT_MAX bytes, whatever the configuration says.
std::size_t clamp_segment(std::size_t s) { return std::clamp<std::size_t>(s, 64, INT_MAX); }
}  // namespace

pending_send::~pending_send() {
  // A send still in flight owns memory MPI reads from: finish it before freeing.
  if (!reqs_.empty()) {
    MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE);
  }
}

bool pending_send::test() {
  if (reqs_.empty()) return true;
  int done = 0;
  check_mpi(MPI_Testall(static_cast<int>(reqs_.size()), reqs_.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  if (done) reqs_.clear();
  return done != 0;
}

void pending_send::wait() {
  if (reqs_.empty()) return;
  check_mpi(MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  reqs_.clear();
}

bytes pending_send::release() {
  wait();
  return std::move(buf_);
}

pending_send isend_frame(MPI_Comm comm, int dest, int tag, bytes&& frame, std::size_t segment_bytes) {
  const std::size_t seg = clamp_segment(segment_bytes);
  const std::uint64_t total = frame.size();
  std::memcpy(frame.data(), &total, sizeof total);
  pending_send s;
  s.buf_ = std::move(frame);
  const char* p = s.buf_.data();
  std::size_t off = 0;
  while (off < total) {
    const std::size_t n = std::min<std::size_t>(seg, total - off);
    MPI_Request r{};
    check_mpi(MPI_Isend(p + off, static_cast<int>(n), MPI_BYTE, dest, off == 0 ? tag : tag + 1, comm, &r), "MPI_Isend");
    s.reqs_.push_back(r);
    off += n;
  }
  return s;
}

bool try_recv_frame(MPI_Comm comm, int source, int tag, std::size_t segment_bytes, frame_in& out) {
  int flag = 0;
  MPI_Message msg{};
  MPI_Status st{};
  check_mpi(MPI_Improbe(source, tag, comm, &flag, &msg, &st), "MPI_Improbe");
  if (!flag) return false;
  int count = 0;
  check_mpi(MPI_Get_count(&st, MPI_BYTE, &count), "MPI_Get_count");
  const std::size_t first = static_cast<std::size_t>(count);
  if (first < frame_header_bytes) throw error("rankflow: malformed frame (" + std::to_string(first) + " bytes)");
  // The first segment tells the total; read it into a small buffer first only
  // when the frame is segmented, otherwise receive straight into place.
  std::uint64_t total = first;
  out.source = st.MPI_SOURCE;
  out.buf.resize(first);
  check_mpi(MPI_Mrecv(out.buf.data(), count, MPI_BYTE, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
  std::memcpy(&total, out.buf.data(), sizeof total);
  if (total > first) {
    const std::size_t seg = clamp_segment(segment_bytes);
    out.buf.resize(total);
    std::size_t off = first;
    while (off < total) {
      const std::size_t n = std::min<std::size_t>(seg, total - off);
      check_mpi(
          MPI_Recv(out.buf.data() + off, static_cast<int>(n), MPI_BYTE, out.source, tag + 1, comm, MPI_STATUS_IGNORE),
          "MPI_Recv");
      off += n;
    }
  }
  return true;
}

void bcast_frame(MPI_Comm comm, int root, bytes& frame, std::size_t segment_bytes) {
  int rank = 0;
  check_mpi(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  // The first broadcast carries the size and the first bytes: the result of
  // a small call (a sum, a few values) needs one collective, not two.
  constexpr std::size_t first_bytes = 248;
  std::array<char, sizeof(std::uint64_t) + first_bytes> first{};
  std::uint64_t total = frame.size();
  if (rank == root) {
    std::memcpy(first.data(), &total, sizeof total);
    if (total > 0) std::memcpy(first.data() + sizeof total, frame.data(), std::min<std::size_t>(total, first_bytes));
  }
  check_mpi(MPI_Bcast(first.data(), static_cast<int>(first.size()), MPI_BYTE, root, comm), "MPI_Bcast");
  if (rank != root) {
    std::memcpy(&total, first.data(), sizeof total);
    frame.resize(total);
    if (total > 0) std::memcpy(frame.data(), first.data() + sizeof total, std::min<std::size_t>(total, first_bytes));
  }
  const std::size_t seg = clamp_segment(segment_bytes);
  for (std::size_t off = std::min<std::size_t>(total, first_bytes); off < total;) {
    const std::size_t n = std::min<std::size_t>(seg, total - off);
    check_mpi(MPI_Bcast(frame.data() + off, static_cast<int>(n), MPI_BYTE, root, comm), "MPI_Bcast");
    off += n;
  }
}

void backoff::reset() noexcept {
  polls_ = 0;
  sleep_us_ = 0;
  since_ns_ = 0;
}

void backoff::wait() {
  if (polls_ < 16) {
    ++polls_;
    return;
  }
  // The spin window starts after the free polls, read from the clock only
  // then: most waits of a small call end within them, and a clock read per
  // wait was ~10% of such a call.
  if (spin_us_ && since_ns_ == 0) since_ns_ = steady_ns();
  if (spin_us_ && steady_ns() - since_ns_ < std::int64_t{spin_us_} * 1000) {
    sched_yield();
    return;
  }
  sleep_us_ = sleep_us_ == 0 ? 1 : std::min(sleep_us_ * 2, max_us_);
  timespec ts{0, static_cast<long>(sleep_us_) * 1000L};
  nanosleep(&ts, nullptr);
}

void wait_polled(int n, MPI_Request* reqs, unsigned spin_us) {
  backoff idle(1000, spin_us);
  for (int done = 0;;) {
    check_mpi(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) return;
    idle.wait();
  }
}

}  // namespace rankflow::detail
