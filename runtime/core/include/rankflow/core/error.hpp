// rankflow's one error hierarchy, core's part. Everything rankflow throws
// derives from rankflow::error, which derives from std::runtime_error, so
// `catch (const std::exception&)` in a user's main still sees the full
// message. The layers above add theirs: rankflow/tracking/errors.hpp
// (storage, format, tracking and type errors; it lists the whole hierarchy)
// and rankflow/runtime/errors.hpp (task_error).
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
