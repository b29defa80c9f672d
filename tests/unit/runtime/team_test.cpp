// Partitions on several ranks at once (issue 17 item 3, map_options::need
// alike) at 1-4 ranks: need.ranks = k runs each parallel_map / mapreduce
// partition on a team of k ranks with a communicator of just them; member
// 0's results are kept; a failing member fails the partition with its error
// and a retry runs the whole team again; teams form in rank order and the
// ranks left over sit the call out; impossible asks are errors on every rank.
#include <set>

#include "mpi_test.hpp"

using rankflow::map_options;
using rankflow::partition_context;
using rankflow::range;
using rankflow::resources;

namespace {

// What member 0 saw for one item: the team's size, the sum over members of
// (member + 1) * item, and the members' world ranks (allgather on comm()).
struct team_view {
  int members = 0;
  int comm_size = 0;
  std::int64_t sum = 0;
  std::vector<int> ranks;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& members& comm_size& sum& ranks;
  }
};

team_view look(const partition_context& c, std::int64_t i) {
  team_view v;
  v.members = c.members();
  MPI_Comm_size(c.comm(), &v.comm_size);
  int place = -1;
  MPI_Comm_rank(c.comm(), &place);
  if (place != c.member()) throw std::runtime_error("member index differs from the communicator's rank");
  const std::int64_t mine = (c.member() + 1) * i;
  MPI_Allreduce(&mine, &v.sum, 1, MPI_INT64_T, MPI_SUM, c.comm());
  int me = test_runtime().rank();
  v.ranks.resize(static_cast<std::size_t>(v.comm_size));
  MPI_Allgather(&me, 1, MPI_INT, v.ranks.data(), 1, MPI_INT, c.comm());
  return v;
}

map_options on(int k) {
  map_options o;
  o.need = resources{.ranks = k};
  return o;
}

}  // namespace

TEST(Teams, EachPartitionRunsOnItsTeamAndMemberZerosResultIsKept) {
  auto& rt = test_runtime();
  if (rt.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto o = on(2);
  o.chunk_size = 3;
  const auto out = rt.parallel_map(range(0, 40), look, o);
  if (!rt.is_scheduler()) {
    EXPECT_TRUE(out.empty());
    return;
  }
  ASSERT_EQ(out.size(), 40u);
  std::set<int> leaders;
  for (std::int64_t i = 0; i < 40; ++i) {
    const auto& v = out[static_cast<std::size_t>(i)];
    EXPECT_EQ(v.members, 2);
    EXPECT_EQ(v.comm_size, 2);
    EXPECT_EQ(v.sum, 3 * i) << "item " << i;  // (0+1)*i + (1+1)*i
    ASSERT_EQ(v.ranks.size(), 2u);
    // Teams in rank order: {0,1}, {2,3}; with 3 ranks rank 2 sits out.
    EXPECT_EQ(v.ranks[0] % 2, 0);
    EXPECT_EQ(v.ranks[1], v.ranks[0] + 1);
    leaders.insert(v.ranks[0]);
  }
  EXPECT_LE(static_cast<int>(leaders.size()), rt.size() / 2);
  for (int l : leaders) EXPECT_LT(l + 1, rt.size());
}

TEST(Teams, TheWholeJobAsOneTeamInMapreduceIsBitIdenticalToOneRank) {
  auto& rt = test_runtime();
  const int k = rt.size();
  // Every member computes a share of the item's value; the team's allreduce
  // makes it whole on member 0, whose value enters the fixed reduction tree.
  auto share = [k](const partition_context& c, std::int64_t i) {
    double part = 0;
    for (int t = c.member(); t < 8; t += k) part += 1.0 / static_cast<double>((i + 1) * (t + 3));
    double whole = 0;
    MPI_Allreduce(&part, &whole, 1, MPI_DOUBLE, MPI_SUM, c.comm());
    return whole;
  };
  auto o = on(k);
  o.chunk_size = 7;
  const double teamed = rt.mapreduce(range(0, 1000), share, std::plus<>{}, o);
  // The same values, one rank each: per item the same 8 terms, summed in
  // member order by a single rank.
  auto serial = [k](std::int64_t i) {
    double whole = 0;
    for (int m = 0; m < k; ++m) {
      double part = 0;
      for (int t = m; t < 8; t += k) part += 1.0 / static_cast<double>((i + 1) * (t + 3));
      whole += part;
    }
    return whole;
  };
  map_options plain;
  plain.chunk_size = 7;
  const double alone = rt.mapreduce(range(0, 1000), serial, std::plus<>{}, plain);
  if (k <= 2) {
    EXPECT_EQ(teamed, alone);  // MPI_SUM over <= 2 values is order-free
  } else {
    EXPECT_NEAR(teamed, alone, 1e-12);  // Open MPI's reduction order over 3-4 members is its own
  }
  EXPECT_GT(teamed, 0.0);
}

TEST(Teams, AFailingFollowerFailsThePartitionWithItsErrorOnEveryRank) {
  auto& rt = test_runtime();
  if (rt.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto fails = [](const partition_context& c, std::int64_t i) {
    if (c.member() == 1 && i == 17) throw std::runtime_error("member 1 cannot take item 17");
    return i;
  };
  auto o = on(2);
  o.chunk_size = 4;
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 30), fails, o), rankflow::task_error, "member 1 of 2 (rank ",
                    "member 1 cannot take item 17", "item 17");
  // The job goes on: the next call runs.
  const auto again = rt.parallel_map(
      range(0, 30), [](const partition_context&, std::int64_t i) { return i; }, o);
  if (rt.is_scheduler()) {
    EXPECT_EQ(again.size(), 30u);
  }
}

TEST(Teams, AFailingLeaderFailsThePartitionAndARetryRunsTheWholeTeamAgain) {
  auto& rt = test_runtime();
  if (rt.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  // Item 9 fails on member 0's first try. One team works (max_workers), so
  // the retry runs on the same team: every member runs the partition again,
  // and the collectives of its other items still match up.
  static int tries = 0;
  tries = 0;
  auto flaky = [](const partition_context& c, std::int64_t i) -> std::int64_t {
    if (i == 9) {  // no collective for item 9: neither member waits for the other
      if (c.member() == 0 && tries++ == 0) throw std::runtime_error("leader's first try of item 9 fails");
      return 2 * i;
    }
    std::int64_t s = 0, one = 1;
    MPI_Allreduce(&one, &s, 1, MPI_INT64_T, MPI_SUM, c.comm());
    return i * s;
  };
  auto o = on(2);
  o.chunk_size = 2;
  o.retries = 1;
  o.max_workers = 1;
  const auto out = rt.parallel_map(range(0, 20), flaky, o);
  if (rt.is_scheduler()) {
    ASSERT_EQ(out.size(), 20u);
    for (std::int64_t i = 0; i < 20; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], 2 * i);
    EXPECT_EQ(tries, 2);  // the failed try and the retry, both on rank 0
  }
  // Without a retry the leader's error comes back as member 0's.
  tries = 0;
  o.retries = 0;
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 20), flaky, o), rankflow::task_error,
                    "member 0 of 2: ", "leader's first try of item 9 fails");
}

TEST(Teams, MaxWorkersCountsTeams) {
  auto& rt = test_runtime();
  if (rt.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto o = on(2);
  o.max_workers = 1;
  o.chunk_size = 1;
  const auto out = rt.parallel_map(range(0, 12), look, o);
  if (rt.is_scheduler()) {
    for (const auto& v : out) EXPECT_EQ(v.ranks, (std::vector<int>{0, 1}));
  }
}

TEST(Teams, ImpossibleAsksAreErrorsOnEveryRank) {
  auto& rt = test_runtime();
  auto id = [](const partition_context&, std::int64_t i) { return i; };
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 8), id, on(rt.size() + 1)), rankflow::resource_error,
                    "each partition needs " + std::to_string(rt.size() + 1) + " ranks at once",
                    "only " + std::to_string(rt.size()) + " of " + std::to_string(rt.size()) + " ranks");
  EXPECT_THROW_WITH(rt.parallel_map(range(0, 8), id, on(0)), rankflow::usage_error, "need.ranks is 0");
  if (rt.size() >= 2) {
    auto o = on(2);
    o.sched = rankflow::schedule::blocked;
    EXPECT_THROW_WITH(rt.parallel_map(range(0, 8), id, o), rankflow::usage_error, "need schedule::dynamic");
  }
  // A function that takes the context without teams gets MPI_COMM_SELF.
  const auto solo = rt.parallel_map(range(0, 5), [](const partition_context& c, std::int64_t i) {
    int n = 0;
    MPI_Comm_size(c.comm(), &n);
    return n * 100 + c.members() * 10 + static_cast<int>(i);
  });
  if (rt.is_scheduler()) {
    EXPECT_EQ(solo, (std::vector<int>{110, 111, 112, 113, 114}));
  }
}

TEST(Teams, MembersWaitingThroughTheContextAreReleasedWhenOneFails) {
  auto& rt = test_runtime();
  if (rt.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  // Every item makes a collective on comm(), waited for with ctx.wait. One
  // member fails at item 6 before joining it: the other is released by the
  // failure (the leader reads the report; a follower is told the partition
  // is lost), not by a timeout, the partition fails, and with a retry the
  // team runs it again on a fresh communicator, so the collectives of every
  // later item still match member by member. Were a member not released, it
  // would wait in c.wait forever (the test's timeout).
  static int failures = 0;
  for (int failing : {1, 0}) {
    SCOPED_TRACE("member " + std::to_string(failing) + " fails");
    failures = 0;
    auto summed = [failing](const partition_context& c, std::int64_t i) -> std::int64_t {
      if (c.member() == failing && i == 6 && failures++ == 0) {
        throw std::runtime_error("member " + std::to_string(failing) + " lost item 6");
      }
      std::int64_t mine = (c.member() + 1) * i, sum = 0;
      MPI_Request r = MPI_REQUEST_NULL;
      MPI_Iallreduce(&mine, &sum, 1, MPI_INT64_T, MPI_SUM, c.comm(), &r);
      c.wait(r);
      return sum;
    };
    auto o = on(2);
    o.chunk_size = 4;   // item 6 is in the middle of partition 1
    o.max_workers = 1;  // one team, so the retry runs where the failure was
    o.retries = 1;
    const auto out = rt.parallel_map(range(0, 16), summed, o);
    if (rt.is_scheduler()) {
      ASSERT_EQ(out.size(), 16u);
      for (std::int64_t i = 0; i < 16; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], 3 * i) << "item " << i;
    }
    // Without a retry: the member's error, on every rank, and the job goes on.
    failures = 0;
    o.retries = 0;
    EXPECT_THROW_WITH(rt.parallel_map(range(0, 16), summed, o), rankflow::task_error,
                      "member " + std::to_string(failing) + " of 2",
                      "member " + std::to_string(failing) + " lost item 6");
    const auto again = rt.parallel_map(range(0, 16), summed, o);
    if (rt.is_scheduler()) {
      EXPECT_EQ(again.size(), 16u);
    }
  }
}
