// Private to the engine: the messages of the scheduling protocol (tags,
// batching limits, the header every message starts with) and how they are
// sent. See engine.cpp for the protocol itself.
#pragma once

#include <algorithm>
#include <csignal>
#include <rankflow/core/detail/agreement.hpp>
#include <rankflow/core/clock.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/detail/transport.hpp>

#include <rankflow/core/signals.hpp>
#include <rankflow/runtime/detail/engine.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>
#include <typeinfo>


#include "engine_parts.hpp"
#include "progress.hpp"

namespace rankflow::detail {


constexpr int tag_ctrl = 100;  // rank 0 -> workers (101: continuation segments)
constexpr int tag_data = 200;  // workers -> rank 0 (201: continuation segments)
// Partitions assigned ahead per worker. Rank 0 answers only between its own
// partitions, so a worker needs enough queued work to cover that delay; with
// 2, workers ran dry and slept (bigsum stream at -n 2: 246 ms, 1.65x over
// -n 1); with 4, 201 ms (1.97x). More would only unbalance the tail.
constexpr int window = 4;
// The largest batch of partitions in one assignment. Guided batches start at
// left / (2 * ranks): bounded, so that a huge call still spreads its first
// partitions over time and a CANCEL has little to drop.
constexpr std::int64_t max_batch = 1024;
// ... and at most about this much work, by the partitions' measured cost
// (before any is known: `window` partitions). A guided batch sized by count
// alone would hand a quarter of a call to a rank that may be ten times
// slower; by time, a slow rank holds at most ~0.25 ms of the others' work
// (1 ms made the tail of parallel_map over 1M items, auto chunk, 15% slower).
constexpr double batch_work_s = 250e-6;
// ... or, with many workers, this much per worker: rank 0 serves every
// worker, so each one's batches must carry enough work that the messages of
// all of them fit in rank 0's time (docs/design.md, "Rank 0 at scale"). At
// 1,024 workers a batch holds ~16 ms of work (164 partitions of 100 us),
// where 250 us would be 2-3 partitions and a message or more for each.
// Below 16 workers nothing changes.
constexpr double batch_work_per_worker_s = 16e-6;
inline double batch_work_for(int workers) noexcept {
  return std::max(batch_work_s, batch_work_per_worker_s * workers);
}
// A worker sends the results it holds when its queue is empty, or when the
// oldest has waited this long, or when they grow past these sizes: trivial
// partitions share one message, and a partition that takes milliseconds is
// reported as soon as it ends (rank 0 refills and records from results).
// Batches stay small in bytes: a message past MPI's eager limit is pulled in
// fragments that need both sides in MPI, and rank 0 waited in MPI_Mrecv for
// a worker busy computing (1 MiB batches: parallel_map 1M items 40% slower).
constexpr double result_batch_s = 200e-6;
// With many workers, half a batch's work (batch_work_for): two result
// messages per batch, the first early enough for rank 0 to refill before the
// worker runs dry.
inline double result_batch_for(int workers) noexcept {
  return std::max(result_batch_s, 0.5 * batch_work_for(workers));
}
constexpr std::int64_t result_batch_entries = 256;
// A poll for messages (MPI_Improbe) costs ~2 us here (MPI_THREAD_MULTIPLE,
// every transport progressed), 20 times a trivial partition: a rank with
// partitions to run polls at most this often, and at once when it has none.
constexpr std::int64_t poll_every_ns = 10'000;

constexpr std::size_t result_batch_bytes = std::size_t{16} << 10;

// assign: body = u32 n, then n x (i64 partition, u32 attempt).
// result: header.partition = n entries; body = n x (i64 partition, u32
//         attempt, f64 start, f64 end, u64 size, size bytes of result).
// done:   blocked: the worker's block is finished; dynamic: after a CANCEL,
//         body = i64 partitions it dropped unstarted.
enum class kind : std::uint32_t { assign = 1, cancel, stop, result, fail, done };

struct header {
  kind k;
  std::uint32_t attempt;
  std::uint64_t op;
  std::int64_t partition;
  std::int64_t partitions;  // lets a worker check that it runs the same call
  double start = 0;         // result, fail: when the worker began the partition (Unix seconds)
  double end = 0;           // ... and when it ended (for the run's ledger)
  // The call site (job::site: kind, item count, chunk, result type, step,
  // and the function's type), so that a message of another call is refused
  // even where the op numbers match. Set by frame_with.
  std::uint64_t site = 0;
};



inline bytes frame_with(const job& j, header h) {
  h.site = j.site;
  bytes f = new_frame();
  const auto* p = reinterpret_cast<const char*>(&h);
  f.insert(f.end(), p, p + sizeof h);
  return f;
}

inline header read_header(const frame_in& in) {
  if (in.payload_size() < sizeof(header)) throw error("rankflow: short message from rank " + std::to_string(in.source));
  header h{};
  std::memcpy(&h, in.payload(), sizeof h);
  return h;
}

inline const char* body(const frame_in& in) { return in.payload() + sizeof(header); }
inline std::size_t body_size(const frame_in& in) { return in.payload_size() - sizeof(header); }


// Small control messages go out with a blocking send: they fit MPI's eager
// limit, so MPI_Send returns at once.
inline void send_small(const runtime_state& st, int dest, int tag, bytes&& f) {
  const std::uint64_t total = f.size();
  std::memcpy(f.data(), &total, sizeof total);
  if (f.size() > st.cfg.segment_bytes) {
    isend_frame(st.comm, dest, tag, std::move(f), st.cfg.segment_bytes).wait();
    return;
  }
  check_mpi(MPI_Send(f.data(), static_cast<int>(f.size()), MPI_BYTE, dest, tag, st.comm), "MPI_Send");
}

[[noreturn]] inline void protocol_error(const runtime_state& st, const header& h, const job& j) {
  auto hex = [](std::uint64_t v) {
    char b[20];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return std::string(b);
  };
  throw usage_error("rank " + std::to_string(st.rank) + " is in collective call #" + std::to_string(st.op) + " over " +
                    std::to_string(j.plan.count) + " partitions (signature " + hex(j.site) +
                    ") but a message for call #" + std::to_string(h.op) + " over " + std::to_string(h.partitions) +
                    " partitions (signature " + hex(h.site) + ") came from rank 0 or a worker" +
                    ": every rank must make the same rankflow calls, with the same arguments, in the same order");
}





/// Rank 0's side of one call under the protocol (engine_rank0.cpp).
void run_rank0(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused);
/// A worker's side of one call under the protocol (engine_worker.cpp).
void run_worker(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused);

}  // namespace rankflow::detail
