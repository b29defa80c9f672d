#include <atomic>
#include <numeric>
#include <set>

#include "mpi_test.hpp"

namespace {

struct point {
  int id = 0;
  double x = 0;
  std::string label;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar & id & x & label;
  }
  friend bool operator==(const point&, const point&) = default;
};

}  // namespace

TEST(ParallelMap, IntsComeBackInOrderOnRankZero) {
  auto& rt = test_runtime();
  auto out = rt.parallel_map(rankflow::range(0, 1000), [](std::int64_t i) { return i * i; });
  if (rt.is_scheduler()) {
    ASSERT_EQ(out.size(), 1000u);
    for (std::int64_t i = 0; i < 1000; ++i) EXPECT_EQ(out[i], i * i);
  } else {
    EXPECT_TRUE(out.empty());
  }
}

TEST(ParallelMap, RangeWithOffset) {
  auto& rt = test_runtime();
  auto out = rt.parallel_map(rankflow::range(-5, 5), [](std::int64_t i) { return static_cast<int>(i); });
  if (rt.is_scheduler()) {
    std::vector<int> want(10);
    std::iota(want.begin(), want.end(), -5);
    EXPECT_EQ(out, want);
  }
}

TEST(ParallelMap, DoublesStringsVectorsAndStructs) {
  auto& rt = test_runtime();
  auto d = rt.parallel_map(rankflow::range(0, 37), [](std::int64_t i) { return 1.0 / (i + 1); });
  auto s = rt.parallel_map(rankflow::range(0, 37), [](std::int64_t i) { return std::string(i, 'a' + i % 26); });
  auto v = rt.parallel_map(rankflow::range(0, 37), [](std::int64_t i) { return std::vector<int>(i % 5, int(i)); });
  auto p = rt.parallel_map(rankflow::range(0, 37), [](std::int64_t i) {
    return point{int(i), i * 0.5, "p" + std::to_string(i)};
  });
  if (!rt.is_scheduler()) return;
  ASSERT_EQ(d.size(), 37u);
  for (int i = 0; i < 37; ++i) {
    EXPECT_EQ(d[i], 1.0 / (i + 1));
    EXPECT_EQ(s[i], std::string(i, 'a' + i % 26));
    EXPECT_EQ(v[i], std::vector<int>(i % 5, i));
    EXPECT_EQ(p[i], (point{i, i * 0.5, "p" + std::to_string(i)}));
  }
}

TEST(ParallelMap, ContainerOfItems) {
  auto& rt = test_runtime();
  const std::vector<std::string> words{"alpha", "beta", "gamma", "delta", "epsilon"};
  auto lens = rt.parallel_map(words, [](const std::string& w) { return w.size(); });
  if (rt.is_scheduler()) {
    EXPECT_EQ(lens, (std::vector<std::size_t>{5, 4, 5, 5, 7}));
  }
}

TEST(ParallelMap, EmptyRange) {
  auto& rt = test_runtime();
  auto out = rt.parallel_map(rankflow::range(10, 10), [](std::int64_t i) { return i; });
  EXPECT_TRUE(out.empty());
  auto reversed = rt.parallel_map(rankflow::range(10, 3), [](std::int64_t i) { return i; });
  EXPECT_TRUE(reversed.empty());
}

TEST(ParallelMap, FewerItemsThanRanks) {
  auto& rt = test_runtime();
  auto out = rt.parallel_map(rankflow::range(0, 1), [](std::int64_t i) { return i + 7; });
  if (rt.is_scheduler()) {
    EXPECT_EQ(out, std::vector<std::int64_t>{7});
  }
}

TEST(ParallelMap, FarMoreItemsThanRanksAutoChunk) {
  auto& rt = test_runtime();
  const std::int64_t n = 1'000'003;
  auto out = rt.parallel_map(rankflow::range(0, n), [](std::int64_t i) { return i ^ 0x5555; });
  if (rt.is_scheduler()) {
    ASSERT_EQ(out.size(), static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], i ^ 0x5555) << i;
  }
}

TEST(ParallelMap, ChunkSizeOneSpreadsOverRanks) {
  auto& rt = test_runtime();
  // Each item takes a little time, so every rank gets some with dynamic scheduling.
  auto who = rt.parallel_map(
      rankflow::range(0, 400),
      [&](std::int64_t) {
        timespec ts{0, 200000};
        nanosleep(&ts, nullptr);
        return rt.rank();
      },
      {.chunk_size = 1});
  if (rt.is_scheduler()) {
    ASSERT_EQ(who.size(), 400u);
    std::set<int> ranks(who.begin(), who.end());
    EXPECT_EQ(static_cast<int>(ranks.size()), rt.size()) << "every rank should run partitions";
  }
}

TEST(ParallelMap, ResultsOnAllRanks) {
  auto& rt = test_runtime();
  auto out = rt.parallel_map(
      rankflow::range(0, 100), [](std::int64_t i) { return std::to_string(i); }, {.results_on_all_ranks = true});
  ASSERT_EQ(out.size(), 100u);
  EXPECT_EQ(out[42], "42");
}

TEST(ParallelMap, VoidFunctionsRunEveryItemOnce) {
  auto& rt = test_runtime();
  std::atomic<long> local{0};
  rt.parallel_map(rankflow::range(0, 500), [&](std::int64_t i) { local += i; }, {.chunk_size = 3});
  long total = local;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, 499L * 500 / 2);
}

TEST(ParallelMap, SegmentedMessagesAndBroadcast) {
  auto& rt = test_runtime();
  const auto saved = rt.settings().segment_bytes;
  rt.settings().segment_bytes = 100;  // every result message is cut into many segments
  auto out = rt.parallel_map(
      rankflow::range(0, 64), [](std::int64_t i) { return std::string(1000 + i, char('A' + i % 26)); },
      {.chunk_size = 5, .results_on_all_ranks = true});
  rt.settings().segment_bytes = saved;
  ASSERT_EQ(out.size(), 64u);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(out[i], std::string(1000 + i, char('A' + i % 26)));
}

TEST(ParallelMap, BlockedScheduleRunsOwnedPartitionsOnTheirRank) {
  auto& rt = test_runtime();
  const rankflow::range r(0, 103);
  const std::int64_t chunk = 4;
  auto who = rt.parallel_map(r, [&](std::int64_t) { return rt.rank(); },
                             {.chunk_size = chunk, .results_on_all_ranks = true, .sched = rankflow::schedule::blocked});
  const auto mine = rt.owned_items(r, chunk);
  for (std::int64_t i = mine.first; i < mine.last; ++i) EXPECT_EQ(who[i], rt.rank()) << "item " << i;
  long owned = mine.size();
  MPI_Allreduce(MPI_IN_PLACE, &owned, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(owned, r.size()) << "owned_items must cover the range exactly once";
}

TEST(ParallelMap, BadOptionsAreRejectedOnEveryRank) {
  auto& rt = test_runtime();
  EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 3), [](std::int64_t i) { return i; }, {.chunk_size = -1}),
                    rankflow::usage_error, "chunk_size");
  EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 3), [](std::int64_t i) { return i; }, {.retries = -2}),
                    rankflow::usage_error, "retries");
}

TEST(Log, PrefixNamesRunStepPartitionRankAndPid) {
  rankflow::log::scope s("sum", 17);
  const std::string p = rankflow::log::prefix();
  const std::string want = "/sum/17 (rank " + std::to_string(test_runtime().rank()) + ", pid " +
                           std::to_string(getpid()) + ")]";
  EXPECT_NE(p.find(want), std::string::npos) << p;
  EXPECT_EQ(p.front(), '[');
}
