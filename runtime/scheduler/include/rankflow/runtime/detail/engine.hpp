// The type-erased scheduling engine behind parallel_map, mapreduce and foreach.
// The typed front-ends in runtime.hpp wrap the user's function into a `job`;
// everything about messages, retries, failure and progress lives in engine.cpp.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include <rankflow/runtime/config.hpp>
#include <rankflow/core/serialize.hpp>
#include <rankflow/runtime/partition.hpp>

namespace rankflow::detail {

/// What every rank knows about itself; owned by rankflow::Runtime.
struct runtime_state {
  MPI_Comm comm = MPI_COMM_NULL;  ///< private duplicate of MPI_COMM_WORLD: our tags never meet the user's
  int rank = 0;
  int size = 1;
  std::string host;
  std::vector<std::string> hosts;  ///< host of every rank
  config cfg;
  std::string command_line;  ///< argv as given, before rankflow's flags were removed
  int thread_level = 0;      ///< what MPI_Init_thread provided
  std::uint64_t op = 0;      ///< collective calls made so far; must agree across ranks
  /// Seconds per partition the last call of each call site took (job::site),
  /// the same on every rank: it decides which calls are small (small_call.cpp).
  std::unordered_map<std::uint64_t, double> call_cost;
  std::uint64_t small_calls = 0;  ///< calls that ran as small calls
  /// Rank 0: per rank, its partition copies that a backup elsewhere beat,
  /// over the whole program (a rank that keeps losing is logged).
  std::vector<std::int64_t> lost_copies;
  /// Rank 0, over the program, in dynamic calls: protocol messages (batches
  /// of assignments sent; result, failure and done frames received),
  /// partitions completed, and the time spent in poll rounds that handled or
  /// sent a message (serving, not waiting). Read by Runtime::rank0_load().
  std::uint64_t rank0_messages = 0;
  std::uint64_t rank0_partitions = 0;
  std::int64_t rank0_busy_ns = 0;
};

/// A call site: the call's signature hash and the type of its function (a
/// lambda's type names its place in the code), never 0. The same on every
/// rank of one binary.
inline std::uint64_t site_of(std::uint64_t signature, const std::type_info& fn) noexcept {
  return (signature ^ (static_cast<std::uint64_t>(fn.hash_code()) * 0x9E3779B97F4A7C15ull)) | 1;
}

/// Thrown by a partition function: which item failed and why.
struct item_failure {
  std::int64_t item;
  std::string message;
};

/// "what() (type)" of the exception being handled, for error messages.
std::string describe_current_exception();

/// How one partition ended, for the run's ledger (rank 0).
struct partition_outcome {
  std::int64_t partition = 0;
  int rank = 0;
  double start = 0;  ///< Unix seconds, on the rank that ran it
  double end = 0;
  int attempts = 1;
  bool ok = true;
  std::int64_t item = -1;  ///< failures: the item that threw
  std::string message;     ///< failures: what it threw
  /// A backup copy that lost (ok is false): another copy of the partition
  /// finished first; `message` says which.
  bool lost = false;
};

struct job {
  std::string step;
  /// The call site: a hash of the call's signature without its number, so
  /// that the same call made again (a time step, an iteration) finds the cost
  /// its last execution measured. 0: not learned.
  std::uint64_t site = 0;
  partition_plan plan;
  schedule sched = schedule::dynamic;
  int retries = 0;
  /// Backup copies of slow partitions (dynamic only; map_options::backups).
  bool backups = false;
  int active_ranks = 1;  ///< ranks [0, active_ranks) run partitions (dynamic only)
  /// Ranks whose capacity meets map_options::need (1 each); empty: every rank.
  std::vector<std::uint8_t> eligible;
  /// Rank 0: run partition p and keep its result; when `encoded` is not null
  /// (the call is recorded in a ledger) also append the encoded result to it.
  /// Throws item_failure.
  std::function<void(std::int64_t p, bytes* encoded)> run_local;
  /// Other ranks: run partition p and append its encoded result. Throws item_failure.
  std::function<void(std::int64_t p, bytes& out)> run_remote;
  /// Rank 0: take the encoded result of partition p computed elsewhere.
  std::function<void(std::int64_t p, const char* data, std::size_t n)> accept;
  /// Other ranks, while they have no partition of their own: work the call
  /// has for this rank outside the protocol (a team member running its
  /// leader's partition, teams.hpp). Returns true when it did some.
  std::function<bool()> idle_poll;

  // ---- the active run's ledger (set by Runtime; all empty when no run is tracked)
  /// Every rank: an earlier execution of the run may have finished some of
  /// this call's partitions; rank 0 broadcasts which before scheduling.
  bool resuming = false;
  /// Rank 0, when resuming: seconds per partition the earlier execution
  /// measured for this call (its ledger), -1 when unknown.
  double recorded_cost = -1;
  /// Rank 0, when resuming: partition -> encoded result recorded earlier.
  /// May throw usage_error (the call does not match the recorded one).
  std::function<std::map<std::int64_t, std::string>()> recall;
  /// Rank 0: one partition's final outcome and, for a success, its encoded result.
  std::function<void(const partition_outcome&, const char* data, std::size_t n)> record;
  /// Rank 0: hand recorded outcomes on to the run when due (force: now).
  std::function<void(bool force)> flush_record;
};

/// Runs `j` on every rank (collective). Returns when every partition has a
/// result on rank 0; throws task_error on every rank when one partition
/// failed all its attempts.
void execute(runtime_state& st, const job& j);

}  // namespace rankflow::detail
