// Private to the engine (engine.cpp and small_call.cpp): how a partition's
// failure travels between ranks and becomes the error every rank throws.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include <rankflow/core/clock.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/core/serialize.hpp>
#include <rankflow/runtime/errors.hpp>
#include <rankflow/runtime/detail/engine.hpp>

namespace rankflow::detail {

/// A partition's final failure, or an interruption (partition ==
/// interrupted_partition, the signal number in `attempts`).
struct failure_info {
  int rank = -1;
  int attempts = 0;
  std::int64_t item = -1;
  std::int64_t partition = -1;
  std::string message;
  double start = 0;  // not sent in the body: a failure message's header carries them
  double end = 0;
};

/// failure_info::partition of a call stopped by a signal rather than a task.
inline constexpr std::int64_t interrupted_partition = -2;

/// A partition's result as it travels to rank 0, alone (small calls) or in a
/// batch: i64 partition, u32 attempt, f64 start, f64 end, u64 size, then
/// `size` bytes of encoded results. One layout, written and read only here.
struct result_entry {
  std::int64_t partition = 0;
  std::uint32_t attempt = 0;
  double start = 0, end = 0;
  std::uint64_t size = 0;
  const char* data = nullptr;
};
inline constexpr std::size_t result_entry_head = 8 + 4 + 8 + 8 + 8;

/// Starts an entry for partition p at the end of `out` (its end time and size
/// are filled by close_result once the partition's results follow it);
/// returns where it starts.
inline std::size_t open_result(bytes& out, std::int64_t p, std::uint32_t attempt, double start) {
  const std::size_t at = out.size();
  encode(out, p);
  encode(out, attempt);
  encode(out, start);
  encode(out, 0.0);               // end
  encode(out, std::uint64_t{0});  // size
  return at;
}
inline void close_result(bytes& out, std::size_t at, double end) {
  const std::uint64_t size = out.size() - at - result_entry_head;
  std::memcpy(out.data() + at + 20, &end, sizeof end);
  std::memcpy(out.data() + at + 28, &size, sizeof size);
}
/// Reads the entry at d[0, n) and advances past it; throws naming `rank` when
/// the bytes cannot be an entry of a call of `count` partitions.
inline result_entry next_result(const char*& d, std::size_t& n, std::int64_t count, int rank) {
  auto bad = [&] { return error("rankflow: malformed results from rank " + std::to_string(rank)); };
  if (n < result_entry_head) throw bad();
  result_entry e;
  std::memcpy(&e.partition, d, 8);
  std::memcpy(&e.attempt, d + 8, 4);
  std::memcpy(&e.start, d + 12, 8);
  std::memcpy(&e.end, d + 20, 8);
  std::memcpy(&e.size, d + 28, 8);
  d += result_entry_head;
  n -= result_entry_head;
  if (e.size > n || e.partition < 0 || e.partition >= count) throw bad();
  e.data = d;
  d += e.size;
  n -= e.size;
  return e;
}

/// A failure's wire form: i32 rank, i32 attempts, i64 item, i64 partition, message.
void append_failure(bytes& f, const failure_info& fi);
/// Throws error on a body shorter than the fixed part.
failure_info read_failure(const char* d, std::size_t n);

/// The failure of a call stopped by signal `sig` on `rank`.
failure_info interruption(int rank, int sig);

task_error make_task_error(const runtime_state& st, const job& j, const failure_info& fi);
/// Throws what every rank throws for `fi`: interrupted, or task_error.
[[noreturn]] void raise_failure(const runtime_state& st, const job& j, const failure_info& fi);

/// Small calls (small_call.cpp): true when every rank runs `j` as one
/// static split and one exchange (see there). The same on every rank.
bool is_small_call(const runtime_state& st, const job& j);
void run_small_call(runtime_state& st, const job& j);
/// Every rank, at the end of a call: what its partitions cost (seconds
/// each, < 0 when unknown or the call failed), the same value on every rank.
void learn_call_cost(runtime_state& st, const job& j, double seconds_per_partition);

}  // namespace rankflow::detail
