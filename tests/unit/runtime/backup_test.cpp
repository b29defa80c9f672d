// Backup copies of partitions on a slow rank (issue 17 item 1), at 1-4 ranks:
// the last rank is made slow by the partition function itself (a test hook
// in user code: the runtime does not know). The results stay bit-identical,
// the ledger holds each partition's one success and the lost copies, a copy
// that fails after another finished does not fail the call, and backups are
// off for calls without retries unless asked for.
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "mpi_test.hpp"

namespace tr = rankflow::tracking;

namespace {

using clock_type = std::chrono::steady_clock;

double f(std::int64_t i) { return std::sin(static_cast<double>(i) * 0.7) * 1e3 + 1.0 / static_cast<double>(i + 3); }

// 4 ms per item on a healthy rank; `slow_ms` on the last rank (when there are several).
auto slowed(int slow_ms, bool throw_when_slow = false) {
  return [slow_ms, throw_when_slow](std::int64_t i) {
    auto& rt = test_runtime();
    const bool slow = rt.size() > 1 && rt.rank() == rt.size() - 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(slow ? slow_ms : 4));
    if (slow && throw_when_slow) throw std::runtime_error("disk on the slow node failed");
    return f(i);
  };
}

const auto plus = [](double a, double b) { return a + b; };

struct ledger_view {
  std::map<std::int64_t, int> ok;       // partition -> successes
  std::map<std::int64_t, int> ok_rank;  // partition -> rank of the success
  std::vector<tr::ledger_entry> lost;
  std::vector<tr::ledger_entry> failed;
};

ledger_view read_ledger(const std::string& file, const std::string& id, std::int64_t call) {
  ledger_view v;
  for (const auto& e : tr::load_run(file, id, true).ledger) {
    if (e.call != call) continue;
    if (e.ok) {
      ++v.ok[e.partition];
      v.ok_rank[e.partition] = e.rank;
    } else if (tr::lost_copy(e)) {
      v.lost.push_back(e);
    } else {
      v.failed.push_back(e);
    }
  }
  return v;
}

}  // namespace

TEST(Backups, SlowRanksPartitionsAreCopiedAndTheFirstCopyWins) {
  auto& rt = test_runtime();
  const std::int64_t items = 6 * rt.size();
  const rankflow::map_options off{.chunk_size = 1, .step = "off", .backups = false};
  const rankflow::map_options on{.chunk_size = 1, .step = "on", .backups = true};
  auto t0 = clock_type::now();
  const double want = rt.mapreduce(rankflow::range(0, items), slowed(60), plus, off);
  const double without = std::chrono::duration<double>(clock_type::now() - t0).count();

  const auto file = fresh_experiment("backups");
  std::string id;
  double got = 0, with = 0;
  std::vector<double> map_got;
  {
    auto run = rt.start_run("backups", tracked_in(file));
    id = run.id();
    t0 = clock_type::now();
    got = rt.mapreduce(rankflow::range(0, items), slowed(60), plus, on);
    with = std::chrono::duration<double>(clock_type::now() - t0).count();
    map_got = rt.parallel_map(rankflow::range(0, items), slowed(60), on);
    run.stop();
  }
  EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << got << " vs " << want;
  if (rt.is_scheduler()) {
    ASSERT_EQ(map_got.size(), static_cast<std::size_t>(items));
    for (std::int64_t i = 0; i < items; ++i) EXPECT_EQ(map_got[static_cast<std::size_t>(i)], f(i)) << i;
  }
  if (rt.size() == 1 || !rt.is_scheduler()) return;
  std::printf("-n %d: %lld partitions, last rank 15x slower: %.0f ms without backups, %.0f ms with\n", rt.size(),
              static_cast<long long>(items), without * 1e3, with * 1e3);
  // The slow rank holds up to 4 partitions of 60 ms at the end without
  // backups; with them, at most the one it is running.
  EXPECT_LT(with, 0.8 * without) << "backups did not shorten the call";
  for (std::int64_t call : {1, 2}) {
    const auto v = read_ledger(file, id, call);
    SCOPED_TRACE("call " + std::to_string(call));
    ASSERT_EQ(v.ok.size(), static_cast<std::size_t>(items));
    for (const auto& [p, n] : v.ok) EXPECT_EQ(n, 1) << "partition " << p;
    EXPECT_TRUE(v.failed.empty());
    ASSERT_FALSE(v.lost.empty()) << "no copy lost: were backups made?";
    for (const auto& e : v.lost) {
      EXPECT_EQ(e.rank, rt.size() - 1) << "the healthy copies should win: " << e.error;
      EXPECT_NE(v.ok_rank.at(e.partition), e.rank);
      EXPECT_NE(e.error.find("finished first and was kept"), std::string::npos) << e.error;
    }
  }
}

TEST(Backups, ACopyThatFailsAfterAnotherFinishedDoesNotFailTheCall) {
  auto& rt = test_runtime();
  const std::int64_t items = 6 * rt.size();
  const auto file = fresh_experiment("backups_fail");
  std::string id;
  double got = 0;
  {
    auto run = rt.start_run("backups_fail", tracked_in(file));
    id = run.id();
    if (rt.size() == 1) {
      got = rt.mapreduce(rankflow::range(0, items), slowed(150), plus, {.chunk_size = 1, .backups = true});
    } else {
      // Every partition the slow rank runs fails after 150 ms; the healthy
      // copies finish first, so the call succeeds without a retry.
      got = rt.mapreduce(rankflow::range(0, items), slowed(150, true), plus, {.chunk_size = 1, .backups = true});
    }
    run.stop();
  }
  const double want = rt.mapreduce(rankflow::range(0, items), f, plus, {.chunk_size = 1});
  EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << got << " vs " << want;
  if (rt.size() == 1 || !rt.is_scheduler()) return;
  const auto v = read_ledger(file, id, 1);
  ASSERT_EQ(v.ok.size(), static_cast<std::size_t>(items));
  for (const auto& [p, r] : v.ok_rank) EXPECT_NE(r, rt.size() - 1) << "partition " << p;
  ASSERT_FALSE(v.lost.empty());
  for (const auto& e : v.lost) {
    EXPECT_NE(e.error.find("disk on the slow node failed"), std::string::npos) << e.error;
  }
}

TEST(Backups, OffWithoutRetriesUnlessAskedForOnWithRetries) {
  auto& rt = test_runtime();
  const std::int64_t items = 6 * rt.size();
  const auto file = fresh_experiment("backups_default");
  std::string id;
  {
    auto run = rt.start_run("backups_default", tracked_in(file));
    id = run.id();
    (void)rt.mapreduce(rankflow::range(0, items), slowed(60), plus, {.chunk_size = 1});
    (void)rt.mapreduce(rankflow::range(0, items), slowed(60), plus, {.chunk_size = 1, .retries = 1});
    run.stop();
  }
  if (rt.size() == 1 || !rt.is_scheduler()) return;
  EXPECT_TRUE(read_ledger(file, id, 1).lost.empty()) << "retries 0 and --backups auto: no backups";
  EXPECT_FALSE(read_ledger(file, id, 2).lost.empty()) << "retries 1 and --backups auto: backups";
}
