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

  // Filled by the executor.
  unsigned threads_ = 1;
  std::vector<int> gpus_;
  int rank_ = 0;
  const std::string* host_ = nullptr;
  const std::string* name_ = nullptr;
  std::uint64_t id_ = 0;
  int attempt_ = 1;
};

}  // namespace rankflow
