// rankflow's one error hierarchy. Everything rankflow throws derives from
// rankflow::error, which derives from std::runtime_error, so `catch (const
// std::exception&)` in a user's main still sees the full message.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace rankflow {

/// Base of every exception rankflow throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A flag, argument or call that cannot be honoured (bad --max-workers, more
/// foreach items than --max-num-splits, ...). The message says what to change.
class usage_error : public error {
 public:
  using error::error;
};

/// Not enough memory (or another resource) for what was asked; thrown before
/// anything is allocated or run.
class resource_error : public error {
 public:
  using error::error;
};

/// An MPI call returned an error code (rankflow sets MPI_ERRORS_RETURN).
class mpi_error : public error {
 public:
  mpi_error(const std::string& routine, int code);
  const std::string& routine() const noexcept { return routine_; }
  int code() const noexcept { return code_; }

 private:
  std::string routine_;
  int code_;
};

/// A user function threw inside a collective call (parallel_map, mapreduce,
/// foreach) and its retries ran out. Thrown on every rank of the call with the
/// same message, which names the rank, host, item index and original message.
class task_error : public error {
 public:
  struct details {
    std::string step;       ///< collective call, e.g. "parallel_map" or a user step name
    int rank = -1;          ///< rank the last attempt ran on
    std::string host;       ///< that rank's host name
    std::int64_t item = -1; ///< index of the failing item within the call
    std::int64_t partition = -1;
    int attempts = 0;       ///< attempts made, retries included
    std::string message;    ///< what() of the original exception (with its type)
    std::int64_t task_id = -1;  ///< tasks (Scheduler::submit): the task's id; item and partition are -1
  };

  explicit task_error(details d);
  const details& info() const noexcept { return d_; }
  int rank() const noexcept { return d_.rank; }
  const std::string& host() const noexcept { return d_.host; }
  std::int64_t item() const noexcept { return d_.item; }
  const std::string& original_message() const noexcept { return d_.message; }

 private:
  details d_;
};

/// A time-limit or cancellation signal (SIGTERM, SIGUSR1) arrived: the
/// collective call in progress was stopped on every rank. Programs usually
/// let it end main() with a distinct exit code (bigsum: 75, EX_TEMPFAIL).
class interrupted : public error {
 public:
  interrupted(int sig, const std::string& what) : error(what), signal_(sig) {}
  int signal() const noexcept { return signal_; }

 private:
  int signal_;
};

namespace detail {
/// "<what> '<path>': <strerror(errno)>", the one message for a failed system
/// call on a file (read errno before anything else can change it).
std::string sys_error(const std::string& what, const std::string& path);
}  // namespace detail

}  // namespace rankflow
