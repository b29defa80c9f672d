#include <algorithm>
#include <cstring>
#include <random>

#include "mpi_test.hpp"

namespace {

std::uint64_t bits(double d) {
  std::uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

double value(std::int64_t i) { return std::sin(static_cast<double>(i)) * 1e10 + 1.0 / (i + 1); }

// The reference: the same plan and the same tree, combined serially.
double serial_reference(std::int64_t n, std::int64_t chunk) {
  auto plus = [](double a, double b) { return a + b; };
  const auto plan = rankflow::make_plan(n, chunk);
  rankflow::detail::tree_reducer<double, decltype(plus)> tree(plus);
  for (std::int64_t p = 0; p < plan.count; ++p) {
    double acc = value(plan.begin(p));
    for (std::int64_t i = plan.begin(p) + 1; i < plan.end(p); ++i) acc += value(i);
    tree.insert(p, acc);
  }
  return tree.finish();
}

}  // namespace

TEST(Mapreduce, ResultOnEveryRankBitIdenticalToSerialTree) {
  auto& rt = test_runtime();
  for (std::int64_t chunk : {0, 1, 7, 1000}) {
    const double got = rt.mapreduce(rankflow::range(0, 50000), value, [](double a, double b) { return a + b; },
                                    {.chunk_size = chunk});
    EXPECT_EQ(bits(got), bits(serial_reference(50000, chunk))) << "chunk " << chunk;
  }
}

TEST(Mapreduce, DynamicAndBlockedAgreeToTheBit) {
  auto& rt = test_runtime();
  auto plus = [](double a, double b) { return a + b; };
  const double dyn = rt.mapreduce(rankflow::range(0, 12345), value, plus, {.chunk_size = 10});
  const double blk =
      rt.mapreduce(rankflow::range(0, 12345), value, plus, {.chunk_size = 10, .sched = rankflow::schedule::blocked});
  EXPECT_EQ(bits(dyn), bits(blk));
}

TEST(Mapreduce, NonCommutativeReduceKeepsItemOrder) {
  auto& rt = test_runtime();
  auto s = rt.mapreduce(
      rankflow::range(0, 40), [](std::int64_t i) { return std::to_string(i) + ","; },
      [](std::string a, const std::string& b) { return a + b; }, {.chunk_size = 3});
  std::string want;
  for (int i = 0; i < 40; ++i) want += std::to_string(i) + ",";
  EXPECT_EQ(s, want);
}

TEST(Mapreduce, EmptyRangeGivesValueInitialised) {
  auto& rt = test_runtime();
  EXPECT_EQ(rt.mapreduce(rankflow::range(5, 5), [](std::int64_t) { return 1.5; }, std::plus<>()), 0.0);
}

TEST(Mapreduce, FewerItemsThanRanks) {
  auto& rt = test_runtime();
  EXPECT_EQ(rt.mapreduce(rankflow::range(0, 1), [](std::int64_t i) { return i + 41; }, std::plus<>()), 41);
}

TEST(Mapreduce, AReduceThatThrowsCombiningPartitionsFailsTheCallOnEveryRank) {
  // Partitions of 4 items fold to 4 each on the rank that ran them; only rank
  // 0, combining partition results, sees a sum above 4 and throws. Every rank
  // gets the error (none is left waiting), and the job goes on.
  auto& rt = test_runtime();
  auto picky = [](int a, int b) {
    if (a + b > 4) throw std::overflow_error("sum " + std::to_string(a + b) + " above 4");
    return a + b;
  };
  EXPECT_THROW_WITH(rt.mapreduce(rankflow::range(0, 16), [](std::int64_t) { return 1; }, picky, {.chunk_size = 4}),
                    rankflow::task_error, "mapreduce failed on rank 0", "reduce, combining partition results on rank 0",
                    "sum 8 above 4 (std::overflow_error)");
  EXPECT_EQ(rt.mapreduce(rankflow::range(0, 16), [](std::int64_t) { return 1; }, std::plus<>(), {.chunk_size = 4}), 16);
}

TEST(TreeReducer, ArrivalOrderDoesNotChangeTheBits) {
  auto plus = [](double a, double b) { return a + b; };
  std::vector<std::int64_t> order(1000);
  std::iota(order.begin(), order.end(), 0);
  std::uint64_t first = 0;
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    rankflow::detail::tree_reducer<double, decltype(plus)> tree(plus);
    for (auto p : order) tree.insert(p, value(p * 7919));
    const auto b = bits(tree.finish());
    if (trial == 0) first = b;
    EXPECT_EQ(b, first) << "trial " << trial;
    std::shuffle(order.begin(), order.end(), rng);
  }
}
