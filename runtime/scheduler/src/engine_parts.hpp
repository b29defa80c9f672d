// Private to the engine (engine.cpp and small_call.cpp): how a partition's
// failure travels between ranks and becomes the error every rank throws.
#pragma once

#include <cstdint>
#include <string>

#include <rankflow/core/clock.hpp>
#include <rankflow/core/error.hpp>
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
