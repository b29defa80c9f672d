// The rank's core pool: never more cores in use than the capacity, all or
// nothing, arrival order (no starvation of large requests), scoped capacity,
// clear errors.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "mpi_test.hpp"

using rankflow::core_pool;
using namespace std::chrono_literals;

TEST(Threads, ObservedConcurrencyNeverExceedsTheCapacity) {
  core_pool pool(6);
  std::atomic<int> busy{0}, peak{0};
  std::vector<std::future<unsigned>> tasks;
  std::mt19937 rng(7);
  for (int k = 0; k < 60; ++k) {
    const unsigned want = 1 + rng() % 4;
    tasks.push_back(rankflow::run_with_cores(
        want,
        [&](unsigned n) {
          const int now = busy.fetch_add(static_cast<int>(n)) + static_cast<int>(n);
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          std::this_thread::sleep_for(1ms);
          busy.fetch_sub(static_cast<int>(n));
          return n;
        },
        pool));
  }
  std::mt19937 again(7);
  for (auto& t : tasks) EXPECT_EQ(t.get(), 1 + again() % 4);  // each task got its cores as its thread count
  EXPECT_LE(peak.load(), 6);
  EXPECT_GE(peak.load(), 4);  // and they did run side by side
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(Threads, ALargeRequestIsNotStarvedBySmallOnes) {
  core_pool pool(4);
  std::atomic<bool> stop{false};
  // Four threads keep taking one core each, back to back.
  std::vector<std::thread> small;
  for (int t = 0; t < 4; ++t) {
    small.emplace_back([&] {
      while (!stop) {
        auto l = pool.acquire(1);
        std::this_thread::sleep_for(200us);
      }
    });
  }
  std::this_thread::sleep_for(20ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto big = pool.acquire(4);  // needs every core at once
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(big.count(), 4u);
  EXPECT_EQ(pool.in_use(), 4u);
  big.release();
  stop = true;
  for (auto& t : small) t.join();
  EXPECT_LT(waited, 2s) << "the 4-core request waited behind a stream of 1-core requests";
}

TEST(Threads, AllOrNothingAndInOrder) {
  core_pool pool(3);
  auto a = pool.acquire(2);
  EXPECT_FALSE(pool.try_acquire(2).has_value());  // only 1 free: nothing is taken
  EXPECT_EQ(pool.in_use(), 2u);
  auto one = pool.try_acquire(1);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(pool.in_use(), 3u);
  one->release();
  // A waiting 3-core request blocks a later 1-core try_acquire: no overtaking.
  std::thread waiter([&] { auto l = pool.acquire(3); });
  while (pool.waiting() == 0) std::this_thread::sleep_for(100us);
  EXPECT_FALSE(pool.try_acquire(1).has_value());
  a.release();
  waiter.join();
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(Threads, ScopedCapacityAndClearErrors) {
  core_pool pool(2);
  EXPECT_THROW_WITH(pool.acquire(3), rankflow::resource_error, "asks for 3 cores", "this rank has 2");
  EXPECT_THROW_WITH(rankflow::run_with_cores(
                        5, [](unsigned n) { return n; }, pool),
                    rankflow::resource_error, "asks for 5 cores");
  EXPECT_THROW_WITH(pool.acquire(0), rankflow::usage_error, "at least 1 core");
  {
    core_pool::scoped_capacity cap(8, pool);
    EXPECT_EQ(pool.capacity(), 8u);
    auto l = pool.acquire(8);
    EXPECT_EQ(l.count(), 8u);
  }
  EXPECT_EQ(pool.capacity(), 2u);
  EXPECT_THROW_WITH(core_pool(0), rankflow::usage_error, "at least 1 core");
}

TEST(Threads, CapacityFromTheEnvironmentOrTheAffinityMask) {
  ::unsetenv("SLURM_CPUS_PER_TASK");
  ::setenv("RANKFLOW_MAX_THREADS", "12", 1);
  auto [n, from] = core_pool::detect_capacity();
  EXPECT_EQ(n, 12u);
  EXPECT_EQ(from, "RANKFLOW_MAX_THREADS");
  ::setenv("RANKFLOW_MAX_THREADS", "lots", 1);
  EXPECT_THROW_WITH(core_pool::detect_capacity(), rankflow::usage_error, "RANKFLOW_MAX_THREADS", "'lots'");
  ::unsetenv("RANKFLOW_MAX_THREADS");
  ::setenv("SLURM_CPUS_PER_TASK", "3", 1);
  EXPECT_EQ(core_pool::detect_capacity().first, 3u);
  ::unsetenv("SLURM_CPUS_PER_TASK");
  auto [cpus, source] = core_pool::detect_capacity();
  EXPECT_GE(cpus, 1u);
  EXPECT_EQ(source, "the CPU affinity mask");
}
