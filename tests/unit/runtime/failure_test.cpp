#include <set>

#include <chrono>
#include <csignal>
#include <thread>

#include "mpi_test.hpp"

namespace {
std::string rank_text(int r) { return "rank " + std::to_string(r); }
}  // namespace

TEST(Failure, ThrowOnRankZeroReachesEveryRank) {
  auto& rt = test_runtime();
  // Blocked schedule pins item 0 to rank 0.
  EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 40),
                                    [](std::int64_t i) -> int {
                                      if (i == 0) throw std::runtime_error("bad row 0");
                                      return 1;
                                    },
                                    {.chunk_size = 1, .sched = rankflow::schedule::blocked}),
                    rankflow::task_error, "item 0", rank_text(0), "bad row 0", "std::runtime_error",
                    test_runtime().hosts()[0]);
}

TEST(Failure, ThrowOnAWorkerNamesThatWorker) {
  auto& rt = test_runtime();
  const int bad = rt.size() - 1;  // rank 0 itself when -n 1
  try {
    rt.parallel_map(rankflow::range(0, 200), [&](std::int64_t i) -> int {
      if (rt.rank() == bad) throw std::invalid_argument("no good on this rank, item " + std::to_string(i));
      return 0;
    });
    ADD_FAILURE() << "expected task_error";
  } catch (const rankflow::task_error& e) {
    EXPECT_EQ(e.rank(), bad);
    EXPECT_EQ(e.host(), rt.hosts()[bad]);
    const std::string what = e.what();
    EXPECT_NE(what.find(rank_text(bad)), std::string::npos) << what;
    EXPECT_NE(what.find("item " + std::to_string(e.item())), std::string::npos) << what;
    EXPECT_NE(what.find("no good on this rank"), std::string::npos) << what;
    EXPECT_NE(what.find("std::invalid_argument"), std::string::npos) << what;
  }
  // The runtime is still usable afterwards: nothing was left in flight.
  auto out = rt.parallel_map(rankflow::range(0, 50), [](std::int64_t i) { return i; });
  if (rt.is_scheduler()) {
    EXPECT_EQ(out.size(), 50u);
  }
}

TEST(Failure, MapreduceThrowsEverywhereToo) {
  auto& rt = test_runtime();
  EXPECT_THROW_WITH(rt.mapreduce(rankflow::range(0, 1000),
                                 [](std::int64_t i) -> double {
                                   if (i == 777) throw std::domain_error("NaN ahead");
                                   return 1.0;
                                 },
                                 std::plus<>(), {.chunk_size = 10}),
                    rankflow::task_error, "item 777", "NaN ahead", "mapreduce");
}

TEST(Failure, RetriesMoveAFailedPartitionToAnotherRank) {
  auto& rt = test_runtime();
  const int bad = rt.size() - 1;
  auto run = [&] {
    return rt.parallel_map(rankflow::range(0, 60),
                           [&](std::int64_t) {
                             if (rt.rank() == bad) throw std::runtime_error("flaky node");
                             return rt.rank();
                           },
                           {.chunk_size = 1, .retries = 1});
  };
  if (rt.size() == 1) {
    // Nowhere else to go: both attempts fail on rank 0.
    EXPECT_THROW_WITH(run(), rankflow::task_error, "after 2 attempts", "flaky node");
    return;
  }
  auto who = run();
  if (rt.is_scheduler()) {
    ASSERT_EQ(who.size(), 60u);
    for (int r : who) EXPECT_NE(r, bad);
  }
}

TEST(Failure, RetriesThatRunOut) {
  auto& rt = test_runtime();
  EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 30),
                                    [](std::int64_t i) -> int {
                                      if (i == 13) throw std::runtime_error("always broken");
                                      return 0;
                                    },
                                    {.chunk_size = 2, .retries = 2, .step = "flaky-step"}),
                    rankflow::task_error, "after 3 attempts", "item 13", "always broken", "flaky-step");
}

TEST(Failure, BlockedRetriesInPlaceThenSucceed) {
  auto& rt = test_runtime();
  int fails_left = 1;  // each rank's first partition fails once
  auto who = rt.parallel_map(
      rankflow::range(0, 20),
      [&](std::int64_t) {
        if (fails_left > 0) {
          --fails_left;
          throw std::runtime_error("transient");
        }
        return rt.rank();
      },
      {.chunk_size = 1, .retries = 1, .results_on_all_ranks = true, .sched = rankflow::schedule::blocked});
  EXPECT_EQ(who.size(), 20u);
}

TEST(Failure, NonStdExceptionsAreReported) {
  auto& rt = test_runtime();
  EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 5),
                                    [](std::int64_t i) -> int {
                                      if (i == 2) throw 42;
                                      return 0;
                                    }),
                    rankflow::task_error, "not derived from std::exception");
}

TEST(Failure, TaskErrorIsARankflowErrorAndARuntimeError) {
  static_assert(std::is_base_of_v<rankflow::error, rankflow::task_error>);
  static_assert(std::is_base_of_v<std::runtime_error, rankflow::error>);
  static_assert(std::is_base_of_v<rankflow::error, rankflow::usage_error>);
  static_assert(std::is_base_of_v<rankflow::error, rankflow::mpi_error>);
  rankflow::mpi_error e("MPI_Send", MPI_ERR_RANK);
  EXPECT_NE(std::string(e.what()).find("MPI_Send failed"), std::string::npos);
  EXPECT_EQ(e.code(), MPI_ERR_RANK);
}

TEST(Failure, MpiErrorsBecomeExceptions) {
  auto& rt = test_runtime();
  auto world = rt.world();
  int x = 0;
  // A send to a rank that does not exist: MPI_ERRORS_RETURN turns it into an exception.
  EXPECT_THROW(rankflow::detail::check_mpi(MPI_Send(&x, 1, MPI_INT, rt.size() + 5, 0, MPI_COMM_WORLD), "MPI_Send"),
               rankflow::mpi_error);
}

// A time-limit signal on one rank stops the collective call on every rank
// with rankflow::interrupted, whichever schedule.
TEST(Interrupt, SignalOnOneRankStopsTheCallEverywhere) {
  auto& rt = test_runtime();
  const int who = rt.size() - 1;
  for (auto sched : {rankflow::schedule::dynamic, rankflow::schedule::blocked}) {
    bool raised = false;
    EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 4000),
                                      [&](std::int64_t i) {
                                        if (rt.rank() == who && !raised) {
                                          raised = true;
                                          std::raise(SIGUSR1);
                                        }
                                        std::this_thread::sleep_for(std::chrono::microseconds(50));
                                        return i;
                                      },
                                      {.chunk_size = 1, .sched = sched}),
                      rankflow::interrupted, "interrupted by SIGUSR1 on rank " + std::to_string(who));
    rankflow::detail::clear_pending_signal();
    rankflow::detail::install_signal_handlers();  // the handler is one-shot
    // The runtime is usable afterwards.
    auto r = rt.parallel_map(rankflow::range(0, 10), [](std::int64_t i) { return i; });
    if (rt.is_scheduler()) {
      EXPECT_EQ(r.size(), 10u);
    }
  }
}

// Dynamic calls hand out partitions in batches sized by their measured
// cost. Here the first partitions are cheap (so batches grow to hundreds)
// and later ones slow: after item 300 fails, workers must drop what they
// have not started (CANCEL) instead of working through a batch of slow
// partitions before the error reaches anyone.
TEST(Failure, AFailureCancelsQueuedBatches) {
  auto& rt = test_runtime();
  std::int64_t ran = 0;
  EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 5000),
                                    [&](std::int64_t i) {
                                      ++ran;
                                      if (i == 300) throw std::runtime_error("bad item 300");
                                      // Long enough that a CANCEL delayed by a loaded
                                      // machine (a 100 ms stall) costs a few partitions
                                      // per rank, not the 50 it did with 2 ms.
                                      if (i >= 200) std::this_thread::sleep_for(std::chrono::milliseconds(10));
                                      return i;
                                    },
                                    {.chunk_size = 1}),
                    rankflow::task_error, "item 300", "bad item 300");
  MPI_Allreduce(MPI_IN_PLACE, &ran, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_GE(ran, 1);
  EXPECT_LT(ran, 700) << "partitions kept running after the failure";
  // And the runtime is in step for the next call.
  auto v = rt.parallel_map(rankflow::range(0, 3000), [](std::int64_t i) { return 2 * i; }, {.chunk_size = 1});
  if (rt.is_scheduler()) {
    ASSERT_EQ(v.size(), 3000u);
    for (std::int64_t i = 0; i < 3000; ++i) ASSERT_EQ(v[static_cast<std::size_t>(i)], 2 * i);
  }
}
