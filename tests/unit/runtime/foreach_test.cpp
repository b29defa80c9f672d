#include <numeric>
#include <set>

#include "mpi_test.hpp"

TEST(Foreach, TooManySplitsFailsBeforeAnythingRuns) {
  auto& rt = test_runtime();
  std::vector<int> items(101);
  int ran = 0;
  EXPECT_THROW_WITH(rt.foreach(items, [&](int) { ++ran; }), rankflow::usage_error, "--max-num-splits",
                    "101 items", "RANKFLOW_MAX_NUM_SPLITS");
  EXPECT_EQ(ran, 0);
}

TEST(Foreach, RaisingTheLimitAllowsIt) {
  auto& rt = test_runtime();
  const auto saved = rt.settings().max_num_splits;
  rt.settings().max_num_splits = 200;
  std::vector<int> items(150);
  std::iota(items.begin(), items.end(), 0);
  auto out = rt.foreach(items, [](int x) { return x * 2; });
  rt.settings().max_num_splits = saved;
  if (rt.is_scheduler()) {
    ASSERT_EQ(out.size(), 150u);
    EXPECT_EQ(out[149], 298);
  }
}

TEST(Foreach, MaxWorkersCapsTheRanksThatRun) {
  auto& rt = test_runtime();
  const auto saved = rt.settings().max_workers;
  rt.settings().max_workers = 2;
  std::vector<int> items(40);
  auto who = rt.foreach(items, [&](int) {
    timespec ts{0, 500000};
    nanosleep(&ts, nullptr);
    return rt.rank();
  });
  rt.settings().max_workers = saved;
  if (rt.is_scheduler()) {
    std::set<int> ranks(who.begin(), who.end());
    for (int r : ranks) EXPECT_LT(r, 2) << "rank " << r << " ran a split beyond --max-workers=2";
  }
}

TEST(Foreach, ErrorsNameTheSplit) {
  auto& rt = test_runtime();
  std::vector<std::string> configs{"a", "b", "broken", "d"};
  EXPECT_THROW_WITH(rt.foreach(configs,
                               [](const std::string& c) {
                                 if (c == "broken") throw std::runtime_error("config 'broken' is invalid");
                                 return c.size();
                               }),
                    rankflow::task_error, "foreach", "item 2", "config 'broken' is invalid");
}
