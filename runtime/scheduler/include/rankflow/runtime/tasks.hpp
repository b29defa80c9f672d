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
#include <rankflow/tracking/store.hpp>
#include <rankflow/tracking/types.hpp>

namespace rankflow {

/// What a task (or one parallel_map partition) needs, Metaflow's @resources:
/// `rankflow::resources{.cpu = 4, .memory_mb = 60000, .gpu = 1}`. Memory is in
/// MiB (Slurm's "MB").
struct resources {
  int cpu = 1;
  std::int64_t memory_mb = 0;
  int gpu = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& cpu& memory_mb& gpu;
  }
};
/// "4 CPUs, 60000 MB, 1 GPU".
std::string to_string(const resources& r);

/// A worker rank as rank 0 sees it: where it runs, its labels and its capacity.
struct worker_info {
  int rank = 0;
  std::string host;
  std::vector<std::string> labels;  ///< default, the host name, gpu (if any), then --labels
  resources capacity;               ///< the rank's CPUs, memory (MiB) and GPUs
  std::vector<int> gpu_ids;         ///< device numbers behind capacity.gpu
  std::string cpu_source;           ///< where each number came from, for messages
  std::string memory_source;
  std::string gpu_source;
  bool has_label(std::string_view label) const;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& rank& host& labels& capacity& gpu_ids& cpu_source& memory_source& gpu_source;
  }
};

/// This rank's worker description (what drive() gathers on rank 0). Collective
/// over `comm`: memory and GPUs are shared among the ranks of a node.
worker_info detect_worker(MPI_Comm comm, int rank, const std::string& host,
                          const std::vector<std::string>& extra_labels);

/// Celery's (and omega-ml's) task states.
enum class task_status { PENDING, STARTED, RETRY, SUCCESS, FAILURE };
const char* to_string(task_status s) noexcept;

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

namespace detail {

/// An artifact could not be substituted (missing, wrong type, unreadable
/// file): the task fails at once, without retries.
class substitution_error : public usage_error {
 public:
  using usage_error::usage_error;
};

/// Readable C++ type name ("std::string", "std::vector<double>").
std::string type_name(const std::type_info& t);

enum class arg_kind : std::uint8_t { value = 0, artifact = 1 };
struct arg_view {
  arg_kind kind = arg_kind::value;
  const char* data = nullptr;
  std::size_t size = 0;
};

/// Splits an encoded argument block; throws usage_error when malformed.
std::vector<arg_view> split_args(const char* data, std::size_t n);
/// Appends one argument: kind, length, payload written by `write`.
template <class Write>
void append_arg(bytes& out, arg_kind kind, Write&& write) {
  out.push_back(static_cast<char>(kind));
  const std::size_t at = out.size();
  out.resize(at + sizeof(std::uint64_t));
  write(out);
  const std::uint64_t len = out.size() - at - sizeof(std::uint64_t);
  std::memcpy(out.data() + at, &len, sizeof len);
}
void encode_artifact_ref(bytes& out, const artifact_ref& a);

/// The field an artifact() argument names, read from its source run's file.
/// `task` and `arg` name the argument in errors. Throws substitution_error.
tracking::field_record load_artifact(const arg_view& a, const std::optional<source>& fallback, const std::string& task,
                                     std::size_t arg, std::string* where);

/// The artifact's value as the parameter's type P, or a substitution_error
/// naming both types.
template <class P>
P artifact_as(const tracking::field_record& f, const std::string& what) {
  using tracking::field_record;
  const auto t = f.type;
  auto wrong = [&]() -> substitution_error {
    return substitution_error(what + " is a " + rankflow::type_name(t) +
                              " field, which cannot fill a parameter of type " + type_name(typeid(P)));
  };
  if constexpr (std::is_same_v<P, std::string>) {
    if (t == field_type::string) return f.atom.s;
    if (t == field_type::file) return f.file.data;
  } else if constexpr (std::is_same_v<P, bool>) {
    if (t == field_type::bool_) return f.atom.i != 0;
  } else if constexpr (std::is_floating_point_v<P>) {
    if (t == field_type::float_) return static_cast<P>(f.atom.d);
    if (t == field_type::int_) return static_cast<P>(f.atom.i);
  } else if constexpr (std::is_integral_v<P>) {
    if (t == field_type::int_) return static_cast<P>(f.atom.i);
  } else if constexpr (std::is_same_v<P, std::vector<std::string>>) {
    if (t == field_type::string_list || t == field_type::string_set) return f.atom.list;
    if (t == field_type::string_series) return f.series.s;
  } else if constexpr (std::is_same_v<P, std::set<std::string>>) {
    if (t == field_type::string_list || t == field_type::string_set) return {f.atom.list.begin(), f.atom.list.end()};
  } else if constexpr (std::is_same_v<P, std::vector<double>>) {
    if (t == field_type::float_series) return f.series.f;
    if (t == field_type::int_series) return {f.series.i.begin(), f.series.i.end()};
    if (t == field_type::array) return f.series.f;  // load_artifact reads the array's data into series.f
  } else if constexpr (std::is_same_v<P, std::vector<std::int64_t>>) {
    if (t == field_type::int_series) return f.series.i;
  } else if constexpr (std::is_same_v<P, timestamp>) {
    if (t == field_type::datetime) return from_unix_seconds(f.atom.d);
  } else if constexpr (std::is_same_v<P, std::vector<char>>) {
    if (t == field_type::file) return {f.file.data.begin(), f.file.data.end()};
  }
  throw wrong();
}

/// A task as every rank registers it: its signature (for checks on rank 0)
/// and a type-erased call that decodes arguments and encodes the result.
struct task_def {
  std::string name;
  std::vector<std::type_index> params;
  std::vector<std::string> param_names;
  std::type_index result = typeid(void);
  std::type_index result_vector = typeid(void);  ///< std::vector<result>: what a mapreduce combiner takes
  std::string result_name;
  /// Decodes the arguments (substituting artifacts), runs the function and
  /// appends the encoded result to `out`.
  std::function<void(task_context&, const std::vector<arg_view>&, const std::optional<source>&, bytes& out)> invoke;
  /// Encoded results -> the encoding of std::vector<result> (mapreduce).
  std::function<void(const std::vector<const std::string*>&, bytes& out)> join;
  task_options defaults;
};

// ---- signatures of callables
template <class F>
struct fn_traits : fn_traits<decltype(&std::remove_cvref_t<F>::operator())> {};
template <class R, class... A>
struct fn_traits<R (*)(A...)> {
  using result = R;
  using args = std::tuple<A...>;
};
template <class R, class... A>
struct fn_traits<R (*)(A...) noexcept> : fn_traits<R (*)(A...)> {};
template <class R, class... A>
struct fn_traits<R(A...)> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...)> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...) const> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...) noexcept> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...) const noexcept> : fn_traits<R (*)(A...)> {};

template <class Tuple>
struct takes_context : std::false_type {};
template <class First, class... Rest>
struct takes_context<std::tuple<First, Rest...>> : std::is_same<std::remove_cvref_t<First>, task_context> {};

template <class Tuple>
struct drop_first {
  using type = std::tuple<>;
};
template <class First, class... Rest>
struct drop_first<std::tuple<First, Rest...>> {
  using type = std::tuple<Rest...>;
};

/// Stand-in for a void result on the wire.
struct void_result {
  template <class Ar>
  void serialize(Ar&, unsigned) {}
};
template <class R>
using wire_t = std::conditional_t<std::is_void_v<R>, void_result, std::decay_t<R>>;

template <class P>
std::decay_t<P> decode_param(const arg_view& a, const std::optional<source>& from, const std::string& task,
                             std::size_t i) {
  using T = std::decay_t<P>;
  if (a.kind == arg_kind::artifact) {
    std::string where;
    const auto field = load_artifact(a, from, task, i, &where);
    return artifact_as<T>(field, where);
  }
  return decode<T>(a.data, a.size);
}

template <class F, class R, class... P, std::size_t... I>
void invoke_with(F& f, bool with_ctx, task_context& ctx, const std::vector<arg_view>& args,
                 const std::optional<source>& from, bytes& out, std::index_sequence<I...>) {
  (void)with_ctx;
  auto call = [&]() -> decltype(auto) {
    if constexpr (takes_context<std::tuple<P...>>::value) {
      return f(ctx, decode_param<std::tuple_element_t<I + 1, std::tuple<P...>>>(args[I], from, *ctx.name_, I)...);
    } else {
      return f(decode_param<std::tuple_element_t<I, std::tuple<P...>>>(args[I], from, *ctx.name_, I)...);
    }
  };
  if constexpr (std::is_void_v<R>) {
    call();
    encode(out, void_result{});
  } else {
    encode(out, wire_t<R>(call()));
  }
}

template <class Tuple>
struct param_list;
template <class... P>
struct param_list<std::tuple<P...>> {
  static std::vector<std::type_index> types() { return {std::type_index(typeid(std::decay_t<P>))...}; }
  static std::vector<std::string> names() { return {type_name(typeid(std::decay_t<P>))...}; }
};

template <class F>
task_def make_task_def(std::string name, F fn, task_options defaults) {
  using traits = fn_traits<F>;
  using R = typename traits::result;
  using all = typename traits::args;
  constexpr bool ctx = takes_context<all>::value;
  using params = std::conditional_t<ctx, typename drop_first<all>::type, all>;
  task_def d;
  d.name = std::move(name);
  d.params = param_list<params>::types();
  d.param_names = param_list<params>::names();
  d.result = typeid(wire_t<R>);
  d.result_vector = typeid(std::vector<wire_t<R>>);
  d.result_name = std::is_void_v<R> ? "void" : type_name(typeid(wire_t<R>));
  d.defaults = std::move(defaults);
  d.invoke = [f = std::move(fn)](task_context& c, const std::vector<arg_view>& args, const std::optional<source>& from,
                                 bytes& out) mutable {
    constexpr std::size_t n = std::tuple_size_v<params>;
    if (args.size() != n) {
      throw usage_error("task '" + *c.name_ + "' takes " + std::to_string(n) + " arguments, got " +
                        std::to_string(args.size()));
    }
    [&]<class... P>(std::tuple<P...>*) {
      invoke_with<F, R, P...>(f, ctx, c, args, from, out, std::make_index_sequence<n>{});
    }(static_cast<all*>(nullptr));
  };
  d.join = [](const std::vector<const std::string*>& parts, bytes& out) {
    std::vector<wire_t<R>> v;
    v.reserve(parts.size());
    for (const auto* p : parts) v.push_back(decode<wire_t<R>>(p->data(), p->size()));
    encode(out, v);
  };
  return d;
}

// ---- encoding a submitted argument for parameter `i` of a task (rank 0)
[[noreturn]] void throw_arg_mismatch(const task_def& d, std::size_t i, const std::string& given);

template <class A>
void encode_arg(bytes& out, const task_def& d, std::size_t i, const A& a) {
  using T = std::decay_t<A>;
  if constexpr (std::is_same_v<T, artifact_ref>) {
    append_arg(out, arg_kind::artifact, [&](bytes& o) { encode_artifact_ref(o, a); });
  } else {
    const std::type_index want = d.params[i];
    if (want == typeid(T)) {
      append_arg(out, arg_kind::value, [&](bytes& o) { encode(o, a); });
    } else if constexpr (std::is_convertible_v<const T&, std::string_view> && !std::is_same_v<T, std::string>) {
      if (want != typeid(std::string)) throw_arg_mismatch(d, i, type_name(typeid(T)));
      append_arg(out, arg_kind::value, [&](bytes& o) { encode(o, std::string(std::string_view(a))); });
    } else if constexpr (std::is_arithmetic_v<T>) {
      // 3 for a double parameter, 0.5f for a double, ...: convert as C++ would.
      bool done = false;
      auto as = [&]<class U>(U*) {
        if (!done && want == typeid(U)) {
          append_arg(out, arg_kind::value, [&](bytes& o) { encode(o, static_cast<U>(a)); });
          done = true;
        }
      };
      as(static_cast<double*>(nullptr));
      as(static_cast<float*>(nullptr));
      as(static_cast<int*>(nullptr));
      as(static_cast<long*>(nullptr));
      as(static_cast<long long*>(nullptr));
      as(static_cast<unsigned*>(nullptr));
      as(static_cast<unsigned long*>(nullptr));
      as(static_cast<unsigned long long*>(nullptr));
      as(static_cast<short*>(nullptr));
      as(static_cast<bool*>(nullptr));
      if (!done) throw_arg_mismatch(d, i, type_name(typeid(T)));
    } else {
      throw_arg_mismatch(d, i, type_name(typeid(T)));
    }
  }
}

/// Encodes `args` for parameters [first, first + sizeof...(A)) of `d`.
template <class... A>
void encode_args(bytes& out, const task_def& d, std::size_t first, const A&... args) {
  std::size_t i = first;
  (encode_arg(out, d, i++, args), ...);
}

/// Per-submit changes to a task's defaults (require(), with(), retries(), from()).
struct overrides {
  std::optional<resources> need;
  std::vector<std::string> labels;
  std::optional<int> retries;
  std::optional<double> backoff_s;
  std::optional<source> from;
  void merge(const overrides& o);
};

struct task_rec;
struct group_state;
class task_engine;
struct call_access;

/// What futures and groups reach their engine through: cleared when the
/// drive() ends, after which they read the results they hold.
struct engine_handle {
  task_engine* engine = nullptr;
};

/// rank 0: waits for `rec` (until `deadline`, or forever when null); true when it ended.
bool wait_task(const engine_handle& e, const std::shared_ptr<task_rec>& rec,
               const std::chrono::steady_clock::time_point* deadline);
task_status status_of(const engine_handle& e, const task_rec& rec);
/// The result's bytes of a task that succeeded; throws its task_error otherwise.
const std::string& result_of(const engine_handle& e, const task_rec& rec);
int rank_of(const engine_handle& e, const task_rec& rec);
int attempts_of(const engine_handle& e, const task_rec& rec);
std::uint64_t id_of(const task_rec& rec);
const std::string& name_of(const task_rec& rec);

}  // namespace detail

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
