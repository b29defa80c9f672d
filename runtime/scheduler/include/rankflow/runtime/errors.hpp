// The scheduler layer's error: a user function or task that failed. The
// whole hierarchy is listed in rankflow/tracking/errors.hpp; its root,
// rankflow::error, is core's (rankflow/core/error.hpp).
#pragma once

#include <cstdint>
#include <string>

#include <rankflow/core/error.hpp>

namespace rankflow {

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

}  // namespace rankflow
