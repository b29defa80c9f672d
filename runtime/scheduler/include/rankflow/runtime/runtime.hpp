// rankflow::Runtime: MPI set-up plus the collective operations parallel_map,
// mapreduce and foreach.
//
//   int main(int argc, char** argv) {
//     rankflow::Runtime rt(argc, argv);
//     auto squares = rt.parallel_map(rankflow::range(0, 1000), [](std::int64_t i) { return i * i; });
//     if (rt.is_scheduler()) std::cout << squares[999] << "\n";
//   }
//
// Every rank runs the same program and makes the same collective calls with the
// same arguments, in the same order. Rank 0 schedules and also computes.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/mpi/communicator.hpp>

#include <rankflow/core/detail/agreement.hpp>
#include <rankflow/runtime/config.hpp>
#include <rankflow/core/environment.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/runtime/errors.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/serialize.hpp>
#include <rankflow/core/detail/transport.hpp>
#include <rankflow/runtime/detail/engine.hpp>
#include <rankflow/runtime/detail/teams.hpp>
#include <rankflow/runtime/partition_context.hpp>
#include <rankflow/runtime/partition.hpp>
#include <rankflow/runtime/tasks.hpp>
#include <rankflow/tracking/run.hpp>

namespace rankflow {

/// Per-call options of parallel_map, mapreduce and foreach.
struct map_options {
  /// Items per partition; 0 picks auto_chunk(items). Results never depend on it
  /// for parallel_map; for mapreduce the chunk fixes the summation tree.
  std::int64_t chunk_size = 0;
  /// Extra attempts for a failed partition, on another rank where there is
  /// one (schedule::dynamic) or in place (schedule::blocked).
  int retries = 0;
  /// parallel_map/foreach: return the results on every rank, not just rank 0.
  bool results_on_all_ranks = false;
  schedule sched = schedule::dynamic;
  /// Name in log lines, progress and errors; defaults to the call's name.
  std::string step;
  /// Ranks that may run partitions at once (dynamic only); 0 means all ranks
  /// for parallel_map/mapreduce and --max-workers for foreach.
  std::size_t max_workers = 0;
  /// What each partition needs (Metaflow's @resources per split): only ranks
  /// whose capacity (CPUs, memory, GPUs; see drive()) meets it run
  /// partitions, so a partition may use need->cpu threads. A need no rank
  /// meets throws resource_error on every rank, naming the largest rank.
  /// schedule::dynamic only when some rank falls short.
  /// need->ranks = k > 1 runs each partition on k ranks at once (a team),
  /// dynamic schedule only: the function takes a `const partition_context&`
  /// first and its comm() connects the team; member 0's results are kept.
  std::optional<resources> need;
  /// false: the call is left out of the run's partition ledger, so a
  /// --resume runs it again in full instead of reusing its partitions. For
  /// calls whose work is an effect the resumed program needs again, such as
  /// filling each rank's memory with its share of the input (bigsum's
  /// generation); a call whose results are what matters should stay recorded.
  bool record = true;
  /// Backup copies (schedule::dynamic): once every partition is handed out,
  /// one that has run more than twice the call's typical partition time on
  /// its rank is also given to an idle rank; the first copy to finish is
  /// kept, the other discarded, so results stay bit-identical. Partitions
  /// must then tolerate running twice, as they must for retries. nullopt
  /// follows --backups (auto: on when retries > 0).
  std::optional<bool> backups;
};

/// What the Runtime constructor should do beyond parsing rankflow's flags.
/// Rank 0's work as the scheduler of dynamic calls, over the program so far
/// (Runtime::rank0_load; zeros on other ranks): what docs/design.md's model
/// of rank 0 at 1,024 ranks is fitted to (bench/scale_bench.cpp).
struct protocol_load {
  std::uint64_t messages = 0;    ///< assignment batches sent, result/failure/done frames received
  std::uint64_t partitions = 0;  ///< partitions completed (by any rank)
  double busy_s = 0;             ///< time in poll rounds that handled or sent a message
};

struct runtime_options {
  /// true: the program prints its own --help (and appends help_text());
  /// false: on --help, rank 0 prints rankflow's help and the program exits 0.
  bool program_handles_help = false;
  /// Catch SIGTERM and SIGUSR1 (a time limit, scancel) once: the collective
  /// call in progress stops on every rank with rankflow::interrupted.
  bool handle_signals = true;
};

namespace detail {
struct task_attempt;  // task_engine.hpp

class watchdog;

/// Calls a parallel_map/mapreduce function with the partition's context when
/// it takes one first (map_options::need.ranks), else with the item alone.
template <class Fn, class Item>
decltype(auto) call_item(Fn& fn, const partition_context& ctx, Item&& item) {
  if constexpr (std::is_invocable_v<Fn&, const partition_context&, Item>) {
    return fn(ctx, std::forward<Item>(item));
  } else {
    return fn(std::forward<Item>(item));
  }
}
template <class Fn, class Item>
using item_result_t =
    decltype(call_item(std::declval<Fn&>(), std::declval<const partition_context&>(), std::declval<Item>()));

/// Results arriving out of order on rank 0, emitted in partition order.
/// Partitions ahead of the first missing one wait in a slot indexed by
/// partition (made at the first out-of-order arrival: 24 bytes a partition),
/// not in a tree: with many workers nearly every result arrives out of
/// order, and a std::map node per partition cost rank 0 more than the rest of
/// a trivial partition's handling (docs/design.md, "Rank 0 at scale").
template <class R>
class ordered_results {
 public:
  void reserve(std::int64_t items, std::int64_t partitions) {
    out_.reserve(static_cast<std::size_t>(items));
    partitions_ = partitions;
  }
  /// v is never empty: a partition holds at least one item.
  void put(std::int64_t p, std::vector<R>&& v) {
    if (p != next_) {
      if (slots_.empty()) slots_.resize(static_cast<std::size_t>(partitions_));
      slots_[static_cast<std::size_t>(p)] = std::move(v);
      return;
    }
    append(std::move(v));
    while (next_ < static_cast<std::int64_t>(slots_.size()) && !slots_[static_cast<std::size_t>(next_)].empty()) {
      append(std::move(slots_[static_cast<std::size_t>(next_)]));
    }
  }
  std::vector<R> take() { return std::move(out_); }

 private:
  void append(std::vector<R>&& v) {
    if (out_.empty() && out_.capacity() < v.size()) {
      out_ = std::move(v);
    } else {
      for (auto& x : v) out_.push_back(std::move(x));
    }
    v = std::vector<R>();  // a moved-from slot must read as empty, and free its buffer
    ++next_;
  }
  std::vector<R> out_;
  std::vector<std::vector<R>> slots_;
  std::int64_t partitions_ = 0;
  std::int64_t next_ = 0;
};

/// Combines partition partials in a fixed binary tree over partition index:
/// node (level k, index j) covers partitions [j*2^k, (j+1)*2^k). A node is
/// combined with its sibling as soon as both exist, so the arrival order never
/// changes which values meet: the result depends only on the partition count.
template <class T, class Reduce>
class tree_reducer {
 public:
  explicit tree_reducer(Reduce& reduce) : reduce_(reduce) {}

  void insert(std::int64_t index, T value, unsigned level = 0) {
    for (;; ++level, index >>= 1) {
      if (levels_.size() <= level) levels_.resize(level + 1);
      auto& nodes = levels_[level];
      auto sib = nodes.find(index ^ 1);
      if (sib == nodes.end()) {
        nodes.emplace(index, std::move(value));
        return;
      }
      value = (index & 1) ? T(reduce_(std::move(sib->second), std::move(value)))
                          : T(reduce_(std::move(value), std::move(sib->second)));
      nodes.erase(sib);
    }
  }

  /// Folds what is left (the binary decomposition of the partition count)
  /// left to right. Empty input gives T{}.
  T finish() {
    std::vector<std::pair<std::int64_t, T*>> rest;  // (first partition covered, node)
    for (unsigned k = 0; k < levels_.size(); ++k) {
      for (auto& [j, v] : levels_[k]) rest.emplace_back(j << k, &v);
    }
    std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (rest.empty()) return T{};
    T acc = std::move(*rest.front().second);
    for (std::size_t i = 1; i < rest.size(); ++i) acc = T(reduce_(std::move(acc), std::move(*rest[i].second)));
    levels_.clear();
    return acc;
  }

 private:
  Reduce& reduce_;
  std::vector<std::map<std::int64_t, T>> levels_;
};

/// Stand-in result for functions returning void.
struct unit {
  template <class Ar>
  void serialize(Ar&, unsigned) {}
};

}  // namespace detail

class Runtime {
 public:
  /// Initialises MPI (unless the program already did) and reads rankflow's
  /// flags, removing them from argv. With --with slurm it submits the
  /// program as a batch job instead and exits (see with_slurm.hpp). A bad flag prints a clear error on rank 0
  /// and exits with code 2 on every rank. Called by every rank.
  Runtime(int& argc, char**& argv, runtime_options opts = {});
  /// Finalises MPI. If the destructor runs because an exception is unwinding
  /// (an error this rank did not handle), the whole job is aborted with
  /// MPI_Abort: the other ranks would otherwise wait for this one forever.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int rank() const noexcept { return st_.rank; }
  int size() const noexcept { return st_.size; }
  /// True on rank 0, which schedules and owns results and run metadata.
  bool is_scheduler() const noexcept { return st_.rank == 0; }
  /// Collective calls so far that ran as small calls (--small-call-us): a
  /// static split and one exchange instead of the scheduling protocol.
  std::uint64_t small_calls() const noexcept { return st_.small_calls; }
  protocol_load rank0_load() const noexcept {
    return {st_.rank0_messages, st_.rank0_partitions, static_cast<double>(st_.rank0_busy_ns) * 1e-9};
  }
  const std::string& host() const noexcept { return st_.host; }
  /// Host name of every rank, indexed by rank.
  const std::vector<std::string>& hosts() const noexcept { return st_.hosts; }
  /// True when --help was given (the program should print its help and exit).
  bool help_requested() const noexcept { return st_.cfg.help; }

  /// The flags in effect. May be changed between collective calls, the same
  /// way on every rank.
  config& settings() noexcept { return st_.cfg; }
  const config& settings() const noexcept { return st_.cfg; }

  /// Starts a tracked run in the experiment file (--experiment, default
  /// rankflow.h5). Collective: every rank calls it and gets a Run it may
  /// track into. In read-only mode, opens opts.with_id (or the latest run).
  ///
  /// Until the run stops, every parallel_map, mapreduce and foreach records
  /// its partitions in the run's ledger. With --resume (or opts.resume, or in
  /// a job Slurm requeued) the run continues a killed or failed one of the
  /// same name: calls reuse the partitions it finished, so the program runs
  /// only the rest and gets the same results.
  Run start_run(std::string name, const run_options& opts = {});

  /// MPI_COMM_WORLD for the program's own MPI calls (errors are returned as
  /// exceptions, not fatal). rankflow's messages use a private duplicate.
  boost::mpi::communicator world() const;

  /// Item range of this rank under schedule::blocked with the given chunk:
  /// the data a rank must hold before a blocked mapreduce/parallel_map.
  range owned_items(range r, std::int64_t chunk_size = 0) const noexcept {
    const auto plan = make_plan(items_of(r), chunk_size);
    const auto b = blocked_partitions(plan.count, st_.rank, st_.size);
    return {r.first + plan.begin(b.first), r.first + (b.last > b.first ? plan.end(b.last - 1) : plan.begin(b.first))};
  }

  /// fn(i) for every i in r. Collective. Results, in order, on rank 0 (and on
  /// every rank with results_on_all_ranks); an empty vector elsewhere. If fn
  /// returns void, so does parallel_map. Throws task_error on every rank when an
  /// item keeps failing.
  template <class Fn>
  auto parallel_map(range r, Fn&& fn, const map_options& opts = {}) {
    return map_impl(
        items_of(r), [first = r.first](std::int64_t i) { return first + i; }, fn, opts, "parallel_map", r, false);
  }

  /// fn(items[i]) for every element of a random-access container, same rules.
  template <std::ranges::random_access_range Items, class Fn>
  requires(!std::same_as<std::remove_cvref_t<Items>, range>) auto parallel_map(const Items& items, Fn&& fn,
                                                                               const map_options& opts = {}) {
    const auto n = static_cast<std::int64_t>(std::ranges::size(items));
    return map_impl(
        n, [&items](std::int64_t i) -> decltype(auto) { return std::ranges::begin(items)[i]; }, fn, opts,
        "parallel_map", range(0, n), true);
  }

  /// reduce(... map(i) ...) over r, with the result on every rank. Collective.
  /// Deterministic: partition boundaries depend only on r and chunk_size, each
  /// partition is folded left to right, and partitions are combined in a fixed
  /// pairwise tree over partition index, so a floating-point result is
  /// bit-identical for any number of ranks and any scheduling. An empty range
  /// gives T{}. T must be default-constructible and serializable.
  template <class Map, class Reduce>
  auto mapreduce(range r, Map&& map, Reduce&& reduce, const map_options& opts = {}) {
    using T = std::decay_t<detail::item_result_t<Map, std::int64_t>>;
    static_assert(std::is_default_constructible_v<T>, "mapreduce: the mapped type must be default-constructible");
    const auto plan = make_plan(items_of(r), opts.chunk_size);
    detail::tree_reducer<T, std::remove_reference_t<Reduce>> tree(reduce);
    partition_context solo;
    partition_context* ctx = &solo;
    std::unique_ptr<detail::team_call> team;  // map_options::need.ranks > 1
    auto run_part = [&](std::int64_t p) {
      solo.partition_ = p;
      std::int64_t i = plan.begin(p);
      const std::int64_t e = plan.end(p);
      try {
        T acc = detail::call_item(map, *ctx, r.first + i);
        for (++i; i < e; ++i) {
          if (team && team->partition_lost()) break;  // a member failed: lead() throws its failure
          acc = T(reduce(std::move(acc), detail::call_item(map, *ctx, r.first + i)));
        }
        return acc;
      } catch (...) {
        throw detail::item_failure{r.first + i, detail::describe_current_exception()};
      }
    };
    detail::job j = make_job(opts, "mapreduce", plan, signature_of("mapreduce", r, false, plan, opts, typeid(T)));
    j.site = detail::site_of(j.site, typeid(Map));
    team = make_teams(opts, j);
    if (team) ctx = &team->context();
    auto run = [&](std::int64_t p) { return team && team->leader() ? team->lead(p, [&] { return run_part(p); }) : run_part(p); };
    if (team && team->follower()) j.idle_poll = [&] { return team->follow([&](std::int64_t p) { (void)run_part(p); }); };
    // Rank 0 alone combines partition results: `reduce` throwing there has
    // no partition to blame and must not leave the other ranks waiting. The
    // call goes on to its end, and every rank throws with the result.
    std::string reduce_failed;
    auto insert = [&](std::int64_t p, T&& v) {
      if (!reduce_failed.empty()) return;
      try {
        tree.insert(p, std::move(v));
      } catch (...) {
        reduce_failed = detail::describe_current_exception();
      }
    };
    j.run_local = [&](std::int64_t p, bytes* encoded) {
      T v = run(p);
      if (encoded) encode(*encoded, v);
      insert(p, std::move(v));
    };
    j.run_remote = [&](std::int64_t p, bytes& out) { encode(out, run(p)); };
    j.accept = [&](std::int64_t p, const char* d, std::size_t n) { insert(p, decode<T>(d, n)); };
    detail::execute(st_, j);
    bytes frame = detail::new_frame();
    if (is_scheduler()) {
      if (reduce_failed.empty()) {
        try {
          T v = tree.finish();
          frame.push_back(0);
          encode(frame, v);
        } catch (...) {
          reduce_failed = detail::describe_current_exception();
        }
      }
      if (!reduce_failed.empty()) {
        frame.resize(detail::frame_header_bytes);
        frame.push_back(1);
        frame.insert(frame.end(), reduce_failed.begin(), reduce_failed.end());
      }
    }
    detail::bcast_frame(st_.comm, 0, frame, st_.cfg.segment_bytes);
    const char* body = frame.data() + detail::frame_header_bytes;
    const std::size_t size = frame.size() - detail::frame_header_bytes;
    if (body[0] != 0) raise_reduce_failure(j.step, std::string(body + 1, size - 1));
    return decode<T>(body + 1, size - 1);
  }

  /// Metaflow's foreach: fn(item) for each item as its own split, at most
  /// --max-workers ranks at once. More items than --max-num-splits throws
  /// usage_error on every rank before anything runs.
  template <std::ranges::random_access_range Items, class Fn>
  auto foreach (const Items& items, Fn && fn, map_options opts = {}) {
    const auto n = static_cast<std::int64_t>(std::ranges::size(items));
    opts.chunk_size = 1;
    if (opts.max_workers == 0) opts.max_workers = st_.cfg.max_workers;
    return map_impl(
        n, [&items](std::int64_t i) -> decltype(auto) { return std::ranges::begin(items)[i]; }, fn, opts, "foreach",
        range(0, n), true);
  }

  /// Registers task `name` (omega-ml's tasks): every rank defines the same
  /// tasks before drive(). `fn` takes its arguments by value or const
  /// reference, optionally after a `rankflow::task_context&`, and returns a
  /// serializable value or void. `defaults` apply to every submit of it.
  template <class F>
  void define(std::string name, F fn, task_options defaults = {}) {
    check_task_name(name);
    auto def = detail::make_task_def(name, std::move(fn), std::move(defaults));
    tasks_.insert_or_assign(std::move(name), std::move(def));
  }

  /// Driver mode. Collective: rank 0 runs `driver` with a Scheduler and every
  /// other rank serves tasks until it returns (with one rank, rank 0 runs the
  /// tasks itself, on threads). Returns after every submitted task has ended.
  /// If the driver throws, queued tasks are dropped, running ones finish, and
  /// every rank throws: task_error and interrupted as they were, anything else
  /// as rankflow::error naming it.
  void drive(const std::function<void(Scheduler&)>& driver);

 private:
  void check_task_name(const std::string& name) const;
  /// task_error on this rank for a mapreduce whose `reduce` threw on rank 0
  /// while combining partition results.
  [[noreturn]] void raise_reduce_failure(const std::string& step, const std::string& why) const;
  void record_tasks(const std::vector<detail::task_attempt>& attempts);
  /// Collective when opts.need asks for several ranks per partition: splits
  /// j's eligible ranks into teams and leaves only their leaders eligible.
  /// nullptr otherwise.
  std::unique_ptr<detail::team_call> make_teams(const map_options& opts, detail::job& j);
  /// Collective: which ranks meet `need` (see map_options::need).
  std::vector<std::uint8_t> eligible_ranks(const resources& need, const map_options& opts, const std::string& step);
  void check_splits(std::int64_t n) const;
  /// Collective, in a resumed run: usage_error on every rank when any rank
  /// assigned another value to one of the run's inputs.
  void refuse_changed_inputs(tracking::partition_ledger& lg, const std::string& step);
  void maybe_submit(int argc, char** argv);
  /// The job of one collective call; when a tracked run is active, wired to
  /// its partition ledger (recording, and reuse on --resume). First checks,
  /// collectively, that every rank makes this same call (`sig`): a mismatch
  /// is a usage_error on every rank before anything runs.
  detail::job make_job(const map_options& opts, const char* default_step, const partition_plan& plan,
                       const detail::call_signature& sig);
  /// What every rank must agree on for one parallel_map/mapreduce/foreach.
  static detail::call_signature signature_of(const char* call, range r, bool container, const partition_plan& plan,
                                             const map_options& opts, const std::type_info& result);
  /// r.size(), or -1 when last - first does not fit in int64 (make_job
  /// reports it once every rank agreed on the call).
  static std::int64_t items_of(range r) noexcept {
    std::int64_t n = 0;
    return __builtin_sub_overflow(r.last, r.first, &n) ? -1 : n;
  }

  template <class Get, class Fn>
  auto map_impl(std::int64_t n, Get get, Fn& fn, const map_options& opts, const char* default_step, range shown,
                bool container) {
    using Item = decltype(get(std::int64_t{}));
    using R = detail::item_result_t<Fn, Item>;
    constexpr bool is_void = std::is_void_v<R>;
    using V = std::conditional_t<is_void, detail::unit, std::decay_t<R>>;

    const auto plan = make_plan(n, opts.chunk_size);
    detail::ordered_results<V> results;
    if (is_scheduler()) results.reserve(plan.items, plan.count);  // plan.items >= 0, unlike n for an overflowing range
    partition_context solo;
    partition_context* ctx = &solo;
    std::unique_ptr<detail::team_call> team;  // map_options::need.ranks > 1
    auto run_part = [&](std::int64_t p) {
      solo.partition_ = p;
      std::vector<V> out;
      out.reserve(static_cast<std::size_t>(plan.end(p) - plan.begin(p)));
      for (std::int64_t i = plan.begin(p), e = plan.end(p); i < e; ++i) {
        if (team && i > plan.begin(p) && team->partition_lost()) break;  // a member failed: lead() throws it
        try {
          if constexpr (is_void) {
            detail::call_item(fn, *ctx, get(i));
            out.emplace_back();
          } else {
            out.push_back(detail::call_item(fn, *ctx, get(i)));
          }
        } catch (...) {
          throw detail::item_failure{i, detail::describe_current_exception()};
        }
      }
      return out;
    };
    detail::job j = make_job(opts, default_step, plan, signature_of(default_step, shown, container, plan, opts, typeid(V)));
    j.site = detail::site_of(j.site, typeid(Fn));
    team = make_teams(opts, j);
    if (team) ctx = &team->context();
    auto run = [&](std::int64_t p) { return team && team->leader() ? team->lead(p, [&] { return run_part(p); }) : run_part(p); };
    if (team && team->follower()) j.idle_poll = [&] { return team->follow([&](std::int64_t p) { (void)run_part(p); }); };
    j.run_local = [&](std::int64_t p, bytes* encoded) {
      auto v = run(p);
      if (encoded) encode(*encoded, v);
      results.put(p, std::move(v));
    };
    j.run_remote = [&](std::int64_t p, bytes& out) { encode(out, run(p)); };
    j.accept = [&](std::int64_t p, const char* d, std::size_t sz) { results.put(p, decode<std::vector<V>>(d, sz)); };
    detail::execute(st_, j);

    if constexpr (is_void) {
      return;
    } else {
      std::vector<V> out = is_scheduler() ? results.take() : std::vector<V>{};
      if (opts.results_on_all_ranks && st_.size > 1) {
        bytes frame = detail::new_frame();
        if (is_scheduler()) encode(frame, out);
        detail::bcast_frame(st_.comm, 0, frame, st_.cfg.segment_bytes);
        if (!is_scheduler()) {
          out = decode<std::vector<V>>(frame.data() + detail::frame_header_bytes,
                                       frame.size() - detail::frame_header_bytes);
        }
      }
      return out;
    }
  }

  // Set up first and torn down last: every other member uses MPI.
  std::unique_ptr<detail::mpi_environment> env_;
  detail::runtime_state st_;
  std::weak_ptr<tracking::partition_ledger> ledger_;
  std::map<std::string, detail::task_def, std::less<>> tasks_;
  bool driving_ = false;
  std::unique_ptr<detail::watchdog> watchdog_;  ///< --peer-timeout (several ranks only)  ///< of the run start_run made last
  int uncaught_at_start_ = 0;
};

}  // namespace rankflow
