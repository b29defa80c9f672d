// Ranks that make different collective calls: every rank gets the same
// usage_error naming both calls before anything runs, and the next call that
// every rank makes alike works. Each of these printed a wrong result with
// exit 0, or hung, before the signature check (issue 12, items 2 and 5).
#include <numeric>

#include "mpi_test.hpp"

namespace {

using rankflow::range;

// Skips the test at -n 1: one rank cannot disagree with itself.
#define NEED_TWO_RANKS()                                            \
  do {                                                              \
    if (test_runtime().size() < 2) GTEST_SKIP() << "needs 2 ranks"; \
  } while (0)

// The call every rank makes after a mismatch: it must give the right answer.
void expect_still_works() {
  auto& rt = test_runtime();
  const double s = rt.mapreduce(
      range(0, 100), [](std::int64_t i) { return static_cast<double>(i); }, [](double a, double b) { return a + b; });
  EXPECT_EQ(s, 4950.0);
  auto v = rt.parallel_map(range(0, 10), [](std::int64_t i) { return i * i; }, {.results_on_all_ranks = true});
  ASSERT_EQ(v.size(), 10u);
  EXPECT_EQ(v[9], 81);
}

double sum_of(const std::vector<std::int64_t>& v) {
  return static_cast<double>(std::accumulate(v.begin(), v.end(), 0LL));
}

}  // namespace

TEST(Agreement, MapreduceAgainstParallelMapIsAnErrorOnEveryRank) {
  NEED_TWO_RANKS();
  auto& rt = test_runtime();
  auto id = [](std::int64_t i) { return i; };
  try {
    if (rt.rank() == 0) {
      (void)rt.mapreduce(range(0, 100), id, [](std::int64_t a, std::int64_t b) { return a + b; });
    } else {
      (void)sum_of(rt.parallel_map(range(0, 100), id));
    }
    ADD_FAILURE() << "ranks disagreed and no error was raised";
  } catch (const rankflow::usage_error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("rank 0 is at call #"), std::string::npos) << w;
    EXPECT_NE(w.find("mapreduce(range(0, 100))"), std::string::npos) << w;
    EXPECT_NE(w.find("parallel_map(range(0, 100))"), std::string::npos) << w;
    EXPECT_NE(w.find(rt.size() == 2 ? "rank 1 is at" : "ranks 1-"), std::string::npos) << w;
    EXPECT_NE(w.find("nothing of this call ran"), std::string::npos) << w;
  }
  expect_still_works();
}

TEST(Agreement, OneRankMappingAnotherRangeIsAnError) {
  NEED_TWO_RANKS();
  auto& rt = test_runtime();
  const int odd = rt.size() - 1;
  const range r = rt.rank() == odd ? range(1000, 1100) : range(0, 100);
  EXPECT_THROW_WITH(rt.parallel_map(r, [](std::int64_t i) { return i; }), rankflow::usage_error, "range(1000, 1100)",
                    "range(0, 100)", "rank " + std::to_string(odd) + " is at");
  expect_still_works();
}

TEST(Agreement, EveryArgumentThatChangesTheWorkIsCompared) {
  NEED_TWO_RANKS();
  auto& rt = test_runtime();
  const bool odd = rt.rank() == 1;
  auto id = [](std::int64_t i) { return i; };
  // chunk size
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 64), id, {.chunk_size = odd ? 8 : 4}), rankflow::usage_error, "chunk 8",
                    "chunk 4");
  // schedule
  EXPECT_THROW_WITH(
      rt.parallel_map(range(0, 64), id, {.sched = odd ? rankflow::schedule::blocked : rankflow::schedule::dynamic}),
      rankflow::usage_error, "schedule blocked", "schedule dynamic");
  // results_on_all_ranks: one rank would wait in a broadcast nobody makes
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 64), id, {.results_on_all_ranks = odd}), rankflow::usage_error,
                    "results_on_all_ranks");
  // retries: a blocked call retries in place on the worker
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 64), id, {.retries = odd ? 2 : 0}), rankflow::usage_error, "retries 2",
                    "retries 0");
  // result type
  EXPECT_THROW_WITH(
      {
        if (odd) {
          (void)rt.parallel_map(range(0, 64), [](std::int64_t i) { return static_cast<double>(i); });
        } else {
          (void)rt.parallel_map(range(0, 64), id);
        }
      },
      rankflow::usage_error, "result double", "result long");
  // step name
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 64), id, {.step = odd ? "b" : "a"}), rankflow::usage_error, "step \"a\"",
                    "step \"b\"");
  // a container of another size
  std::vector<int> items(odd ? 7 : 5, 1);
  EXPECT_THROW_WITH(rt.parallel_map(items, [](int x) { return x; }), rankflow::usage_error, "items [0, 7)",
                    "items [0, 5)");
  // foreach over more items than --max-num-splits on one rank only: that
  // rank must not refuse alone (the others would wait for it forever).
  std::vector<int> splits(odd ? 150 : 5, 1);
  EXPECT_THROW_WITH(rt.foreach (splits, [](int x) { return x; }), rankflow::usage_error, "items [0, 150)",
                    "items [0, 5)");
  expect_still_works();
}

TEST(Agreement, ASkippedCallIsCaughtAtTheNextOne) {
  NEED_TWO_RANKS();
  auto& rt = test_runtime();
  auto id = [](std::int64_t i) { return i; };
  // Rank 1 skips the first call; its second call meets the others' first.
  EXPECT_THROW_WITH(
      {
        if (rt.rank() != 1) (void)rt.parallel_map(range(0, 50), id);
        (void)rt.parallel_map(range(0, 60), id);
      },
      rankflow::usage_error, "range(0, 50)", "range(0, 60)");
  // Each rank made one call (the failed one counts alike everywhere), so
  // the ranks are in step again.
  expect_still_works();
}

TEST(Agreement, DriveWithOtherTasksIsAnError) {
  NEED_TWO_RANKS();
  auto& rt = test_runtime();
  rt.define("agreement_common", [](int x) { return x + 1; });
  if (rt.rank() == 1) rt.define("agreement_only_on_rank_1", [](int x) { return x; });
  EXPECT_THROW_WITH(rt.drive([](rankflow::Scheduler& s) { (void)s.submit<int>("agreement_common", 1).get(); }),
                    rankflow::usage_error, "drive", "agreement_only_on_rank_1");
}

TEST(Agreement, StartRunOfAnotherNameIsAnError) {
  NEED_TWO_RANKS();
  auto& rt = test_runtime();
  const auto file = fresh_experiment("agreement_start");
  EXPECT_THROW_WITH((void)rt.start_run(rt.rank() == 0 ? "train" : "eval", tracked_in(file)), rankflow::usage_error,
                    "start_run", "step \"train\"", "step \"eval\"");
}

TEST(Agreement, HugeRangesAndChunksGiveTheRightPlan) {
  auto& rt = test_runtime();
  // A chunk of INT64_MAX once made 0 partitions (and a sum of 0 with exit 0).
  const auto plan = rankflow::make_plan(100, INT64_MAX);
  EXPECT_EQ(plan.count, 1);
  EXPECT_EQ(plan.end(0), 100);
  const auto big = rankflow::make_plan(INT64_MAX, 0);
  EXPECT_GT(big.chunk, 0);
  EXPECT_EQ(big.end(big.count - 1), INT64_MAX);
  EXPECT_EQ(rankflow::make_plan(INT64_MAX, INT64_MAX - 1).count, 2);
  EXPECT_EQ(rankflow::make_plan(INT64_MAX, INT64_MAX - 1).end(1), INT64_MAX);
  const auto blk = rankflow::blocked_partitions(INT64_MAX, 3, 4);
  EXPECT_EQ(blk.last, INT64_MAX);
  EXPECT_GT(blk.first, 0);
  const double s = rt.mapreduce(
      range(0, 100), [](std::int64_t i) { return static_cast<double>(i); }, [](double a, double b) { return a + b; },
      {.chunk_size = INT64_MAX});
  EXPECT_EQ(s, 4950.0);
  // More than INT64_MAX items: a clear error on every rank, nothing run.
  EXPECT_THROW_WITH(rt.parallel_map(range(INT64_MIN, INT64_MAX), [](std::int64_t i) { return i; }),
                    rankflow::usage_error, "more than 2^63 - 1 items");
}
