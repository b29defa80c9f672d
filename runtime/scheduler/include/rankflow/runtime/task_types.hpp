// What a task is given: where its artifact arguments come from, its options,
// and the context it runs in (rankflow/runtime/tasks.hpp defines and submits tasks).
#pragma once

#include <mpi.h>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <vector>

#include <rankflow/core/error.hpp>
#include <rankflow/runtime/errors.hpp>
#include <rankflow/core/serialize.hpp>
#include <rankflow/tracking/detail/store.hpp>
#include <rankflow/tracking/types.hpp>
#include <rankflow/runtime/resources.hpp>

namespace rankflow {

/// A run in an experiment file whose artifacts fill artifact() arguments
/// (lazyscribe's experiment). `run` is a run id ("RUN-3"), a run name (its
/// latest run) or empty (the latest run in the file).
struct source {
  std::string experiment;
  std::string run;
};

/// An argument to be replaced, on the worker before the task runs, by the
/// value of field `name` of a source run (spacecadet's substitution).
struct artifact_ref {
  std::string name;
  std::optional<source> from;  ///< else the submit's or the task's source
};
inline artifact_ref artifact(std::string name) { return {std::move(name), std::nullopt}; }
inline artifact_ref artifact(std::string name, source from) { return {std::move(name), std::move(from)}; }

/// Defaults of a task, set by define() and overridden per submit.
struct task_options {
  resources need{};
  std::vector<std::string> labels;  ///< required labels (all of them)
  int retries = 0;                  ///< extra attempts after a failure
  double backoff_s = 0.5;           ///< wait before the first retry; doubles, at most 60 s
  std::optional<source> from;       ///< where artifact() arguments are looked up
};

/// What a running task knows about itself: the cores it holds (use them as its
/// thread count), its GPUs, where it runs and which attempt this is.
class task_context {
 public:
  unsigned threads() const noexcept { return threads_; }
  const std::vector<int>& gpus() const noexcept { return gpus_; }
  int rank() const noexcept { return rank_; }
  const std::string& host() const noexcept { return *host_; }
  const std::string& name() const noexcept { return *name_; }
  std::uint64_t id() const noexcept { return id_; }
  int attempt() const noexcept { return attempt_; }  ///< 1 for the first

  /// Multi-rank tasks (resources::ranks): a communicator of just the task's
  /// ranks, member 0 first (MPI_COMM_SELF for a one-rank task). Made with
  /// MPI_Comm_create_group over the job's ranks, never a spawn; freed when
  /// the task ends on this rank.
  MPI_Comm comm() const noexcept { return comm_; }
  /// This rank's place in the task (0 .. members() - 1); member 0's return
  /// value is the task's result, the others' are discarded.
  int member() const noexcept { return member_; }
  int members() const noexcept { return members_; }
  /// Waits for `request` (an operation on comm()) like MPI_Wait, but throws
  /// rankflow::error when another member of the task failed meanwhile:
  /// a blocking call on comm() would wait forever for the failed member.
  void wait(MPI_Request& request) const;
  /// MPI_Barrier on comm() that another member's failure ends (see wait).
  void barrier() const;
  /// True once rank 0 said another member of this task failed.
  bool abandoned() const noexcept { return abandoned_ && abandoned_->load(); }

  // Filled by the executor.
  unsigned threads_ = 1;
  std::vector<int> gpus_;
  int rank_ = 0;
  const std::string* host_ = nullptr;
  const std::string* name_ = nullptr;
  std::uint64_t id_ = 0;
  int attempt_ = 1;
  MPI_Comm comm_ = MPI_COMM_SELF;
  int member_ = 0;
  int members_ = 1;
  std::shared_ptr<std::atomic<bool>> abandoned_;
};

}  // namespace rankflow
