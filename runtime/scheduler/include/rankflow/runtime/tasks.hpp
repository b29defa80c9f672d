// Tasks on MPI ranks: omega-ml's runtime, Metaflow's @resources and
// spacecadet's threads, without a broker.
//
//   rankflow::Runtime rt(argc, argv);
//   rt.define("fit", [](rankflow::task_context& ctx, std::vector<double> x, double lr) {
//     return fit(x, lr, ctx.threads());                 // ctx: cores this task holds, its GPUs, ...
//   });
//   rt.drive([&](rankflow::Scheduler& s) {              // rank 0 drives; every other rank serves
//     auto f = s.require("gpu").with({.cpu = 4}).submit<double>("fit", data, 0.1);
//     std::cout << f.get() << "\n";                     // rethrows the task's error, naming rank and host
//   });
//
// Every rank defines the same tasks (arguments and results cross ranks with
// rankflow::encode, i.e. Boost.Serialization). Rank 0 places each task on a
// worker whose labels it requires and whose free CPUs, memory and GPUs fit its
// needs; a worker runs several tasks at once while they fit. With one rank,
// rank 0 is also the only worker and runs the tasks itself.
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
#include <rankflow/runtime/task_types.hpp>
#include <rankflow/runtime/detail/task_def.hpp>

namespace rankflow {


/// A task's result to come (Celery's AsyncResult). Copies share the task.
/// A future outlives its drive(): afterwards it holds the result (or error)
/// the task ended with.
template <class R>
class Future {
 public:
  Future() = default;
  /// PENDING (queued), STARTED (on a worker), RETRY (failed, will run again),
  /// SUCCESS or FAILURE.
  task_status status() const { return detail::status_of(*h_, *rec_); }
  /// The task ended (SUCCESS or FAILURE).
  bool ready() const {
    const auto s = status();
    return s == task_status::SUCCESS || s == task_status::FAILURE;
  }
  /// Waits at most `timeout`; true when the task ended.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
    return detail::wait_task(*h_, rec_, &deadline);
  }
  void wait() const { detail::wait_task(*h_, rec_, nullptr); }
  /// The result; rethrows a failure as task_error naming the task, the rank
  /// and host it last ran on, its attempts and the original message.
  R get() const {
    wait();
    const std::string& b = detail::result_of(*h_, *rec_);
    if constexpr (std::is_void_v<R>) {
      (void)b;
    } else {
      return decode<R>(b.data(), b.size());
    }
  }
  /// Rank of the worker that ran (or runs) the task; -1 before it started.
  int rank() const { return detail::rank_of(*h_, *rec_); }
  int attempts() const { return detail::attempts_of(*h_, *rec_); }
  std::uint64_t id() const { return detail::id_of(*rec_); }
  const std::string& task() const { return detail::name_of(*rec_); }
  bool valid() const noexcept { return rec_ != nullptr; }

 private:
  friend class Submitter;
  friend class group;
  Future(std::shared_ptr<detail::engine_handle> h, std::shared_ptr<detail::task_rec> r)
      : h_(std::move(h)), rec_(std::move(r)) {}
  std::shared_ptr<detail::engine_handle> h_;
  std::shared_ptr<detail::task_rec> rec_;
};

/// One step of a composition: a task name and its arguments, plus optional
/// per-call changes. In a sequence, the previous step's result is passed as
/// the first argument, before these.
class call {
 public:
  template <class... A>
  explicit call(std::string name, A... args)
      : name_(std::move(name)),
        arity_(sizeof...(A)),
        encode_([... a = std::move(args)](bytes& out, const detail::task_def& d, std::size_t first) {
          detail::encode_args(out, d, first, a...);
        }) {}
  call& with(resources need) {
    ov_.need = need;
    return *this;
  }
  call& require(std::string label) {
    ov_.labels.push_back(std::move(label));
    return *this;
  }
  call& retries(int n, double backoff_s = 0.5) {
    ov_.retries = n;
    ov_.backoff_s = backoff_s;
    return *this;
  }
  call& from(source s) {
    ov_.from = std::move(s);
    return *this;
  }
  const std::string& name() const noexcept { return name_; }
  std::size_t arity() const noexcept { return arity_; }

 private:
  friend struct detail::call_access;
  std::string name_;
  std::size_t arity_;
  std::function<void(bytes&, const detail::task_def&, std::size_t)> encode_;
  detail::overrides ov_;
};

namespace detail {
struct call_access {
  static void encode(const call& c, bytes& out, const task_def& d, std::size_t first) { c.encode_(out, d, first); }
  static const overrides& options(const call& c) { return c.ov_; }
};
}  // namespace detail

/// The tasks of a sequence, parallel or mapreduce composition.
class group {
 public:
  /// An empty group (assign one from sequence(), parallel() or mapreduce()).
  group() = default;
  bool valid() const noexcept { return g_ != nullptr; }
  std::size_t size() const;
  /// Each task's state, in the order given.
  std::vector<task_status> statuses() const;
  /// Every task ended.
  bool ready() const;
  void wait() const;
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
    return wait_until(deadline);
  }
  /// Task i's future (for a sequence, step i; for a mapreduce, the combiner is last).
  template <class R>
  Future<R> future(std::size_t i) const {
    return Future<R>(h_, task(i, typeid(detail::wire_t<R>)));
  }
  /// Every task's result, in order; all must return R. Rethrows the first failure.
  template <class R>
  std::vector<R> getall() const {
    wait();
    std::vector<R> out;
    for (std::size_t i = 0; i < size(); ++i) out.push_back(future<R>(i).get());
    return out;
  }
  /// The final result: the last step of a sequence, the combiner of a mapreduce.
  template <class R>
  R collect() const {
    return future<R>(size() - 1).get();
  }
  /// Indices of the tasks that failed (including those not run because a task
  /// they depend on failed).
  std::vector<std::size_t> failed() const;
  /// Runs the failed parts again (and what could not run because of them),
  /// keeping every result that succeeded.
  void restart();

 private:
  friend class Submitter;
  group(std::shared_ptr<detail::engine_handle> h, std::shared_ptr<detail::group_state> g)
      : h_(std::move(h)), g_(std::move(g)) {}
  bool wait_until(std::chrono::steady_clock::time_point deadline) const;
  std::shared_ptr<detail::task_rec> task(std::size_t i, const std::type_info& expect) const;
  std::shared_ptr<detail::engine_handle> h_;
  std::shared_ptr<detail::group_state> g_;
};

/// Submits tasks with a set of per-submit changes (labels, resources, ...).
/// Cheap to copy; each change returns a new Submitter.
class Submitter {
 public:
  /// Runs only on workers that have `label` (and every label required before).
  /// A label no worker has throws usage_error at once.
  Submitter require(std::string label) const;
  /// Each task needs `need` on its worker. A need no worker can ever meet
  /// throws resource_error at submit, naming the largest worker.
  Submitter with(resources need) const;
  /// Up to n extra attempts after a failure, waiting backoff_s, then twice
  /// that, ... (at most 60 s), preferring another worker.
  Submitter retries(int n, double backoff_s = 0.5) const;
  /// Where artifact() arguments are looked up.
  Submitter from(source s) const;

  /// Queues task `name` with `args`; R must be its result type.
  template <class R = void, class... A>
  Future<R> submit(std::string_view name, const A&... args) const {
    const detail::task_def& d = lookup(name, sizeof...(A), typeid(detail::wire_t<R>));
    bytes encoded;
    detail::encode_args(encoded, d, 0, args...);
    return Future<R>(handle(), enqueue(d, std::move(encoded)));
  }
  /// omega-ml's sequence: each task's result is the first argument of the next.
  group sequence(std::vector<call> calls) const;
  /// Independent tasks, run in parallel.
  group parallel(std::vector<call> calls) const;
  /// `calls` in parallel, then `combine` with std::vector of their results as
  /// its first argument.
  group mapreduce(std::vector<call> calls, call combine) const;

 protected:
  Submitter(detail::task_engine* e, detail::overrides o) : engine_(e), ov_(std::move(o)) {}
  const detail::task_def& lookup(std::string_view name, std::size_t arity, std::type_index result) const;
  std::shared_ptr<detail::task_rec> enqueue(const detail::task_def& d, bytes&& args) const;
  std::shared_ptr<detail::engine_handle> handle() const;
  detail::task_engine* engine_;
  detail::overrides ov_;
};

/// What the driver function gets on rank 0.
class Scheduler : public Submitter {
 public:
  explicit Scheduler(detail::task_engine* e) : Submitter(e, {}) {}
  /// Every worker and its labels (omega-ml's runtime.labels()).
  std::vector<worker_info> labels() const;
  /// Waits until every task submitted so far has ended.
  void wait_all() const;
  /// Tasks queued or running now.
  std::size_t in_flight() const;
};

}  // namespace rankflow
