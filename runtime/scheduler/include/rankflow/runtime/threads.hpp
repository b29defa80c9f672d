// Cores inside one rank (spacecadet's threads): a task that needs N cores
// acquires N from the rank's pool, all or nothing, and gives them back when it
// ends. Requests are served strictly in arrival order, so a large request is
// never starved by a stream of small ones, and the cores in use never exceed
// the capacity.
//
//   rankflow::core_pool& pool = rankflow::core_pool::instance();   // capacity: see below
//   auto f = rankflow::run_with_cores(4, [](unsigned n) { return fit(n); });  // a thread with 4 cores
//   f.get();
//
//   { rankflow::core_pool::scoped_capacity cap(12); ... }   // override for a scope
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

namespace rankflow {

class core_pool {
 public:
  /// A pool of `capacity` cores (>= 1).
  explicit core_pool(unsigned capacity);
  core_pool(const core_pool&) = delete;
  core_pool& operator=(const core_pool&) = delete;

  /// The rank's pool. Its capacity is RANKFLOW_MAX_THREADS if set, else
  /// SLURM_CPUS_PER_TASK, else the CPUs in this process's affinity mask.
  static core_pool& instance();
  /// What instance() would start with, and where that number came from.
  static std::pair<unsigned, std::string> detect_capacity();

  /// Cores held until destruction (or release()); moves, does not copy.
  class lease {
   public:
    lease() = default;
    lease(lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    lease& operator=(lease&& o) noexcept;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() { release(); }
    /// The cores held: use them as the task's thread count.
    unsigned count() const noexcept { return n_; }
    void release() noexcept;

   private:
    friend class core_pool;
    lease(core_pool* p, unsigned n) : pool_(p), n_(n) {}
    core_pool* pool_ = nullptr;
    unsigned n_ = 0;
  };

  /// Waits until `n` cores are free and every earlier request was served,
  /// then takes them. Throws usage_error for n == 0 and resource_error when n
  /// is more than the capacity (it could never be served).
  lease acquire(unsigned n);
  /// Takes `n` cores if that is possible at once without overtaking a waiting
  /// request; empty otherwise.
  std::optional<lease> try_acquire(unsigned n);

  /// Throws what acquire(n) would for a request that can never be served.
  void check(unsigned n) const;

  unsigned capacity() const;
  unsigned in_use() const;
  unsigned waiting() const;

  /// Sets the capacity for a scope and restores it after (requests already
  /// holding cores keep them; new ones see the new capacity).
  class scoped_capacity {
   public:
    explicit scoped_capacity(unsigned capacity, core_pool& pool = core_pool::instance());
    ~scoped_capacity();
    scoped_capacity(const scoped_capacity&) = delete;
    scoped_capacity& operator=(const scoped_capacity&) = delete;

   private:
    core_pool& pool_;
    unsigned previous_;
  };
  void set_capacity(unsigned capacity);

 private:
  void give_back(unsigned n) noexcept;
  void check_request(unsigned n) const;
  mutable std::mutex m_;
  std::condition_variable cv_;
  unsigned capacity_;
  unsigned in_use_ = 0;
  std::uint64_t next_ticket_ = 0;  ///< handed to each request as it arrives
  std::uint64_t serving_ = 0;      ///< the ticket whose turn it is
};

/// Runs fn(n) on a new thread once `n` cores of `pool` are acquired; the
/// cores are released when fn returns or throws. The future carries fn's
/// result or exception.
template <class Fn>
auto run_with_cores(unsigned n, Fn&& fn, core_pool& pool = core_pool::instance()) {
  using R = std::invoke_result_t<Fn&, unsigned>;
  pool.check(n);  // a request that can never be served fails here, not in the future
  std::packaged_task<R()> task([&pool, n, f = std::forward<Fn>(fn)]() mutable {
    auto held = pool.acquire(n);
    return f(held.count());
  });
  auto fut = task.get_future();
  std::thread(std::move(task)).detach();
  return fut;
}

}  // namespace rankflow
