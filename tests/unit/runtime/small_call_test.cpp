// Small calls (runtime/scheduler/src/small_call.cpp) at 1-4 ranks: a call site whose
// last execution did little work per rank runs as a static split and one
// exchange. Its results, failures, retries, interruptions and ledger must be
// exactly those of the scheduling protocol, and every rank must take the
// same path (a rank that did not would hang the others: the test timeout).
#include <cmath>
#include <csignal>
#include <cstring>
#include <string>

#include "mpi_test.hpp"

namespace {

constexpr int loops = 40;

// Runs `call` `loops` times; returns how many of them ran as small calls.
template <class Call>
std::uint64_t repeated(Call&& call) {
  auto& rt = test_runtime();
  const auto before = rt.small_calls();
  for (int k = 0; k < loops; ++k) call(k);
  return rt.small_calls() - before;
}

// The same count on every rank (the path must agree everywhere).
void expect_same_everywhere(std::uint64_t n) {
  std::uint64_t lo = n, hi = n;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi) << "ranks took different paths";
}

}  // namespace

TEST(SmallCall, RepeatedCallsGiveTheProtocolsResults) {
  auto& rt = test_runtime();
  for (std::int64_t items : {1, 2, 5, 64, 300}) {
    for (bool all : {false, true}) {
      SCOPED_TRACE(std::to_string(items) + " items" + (all ? ", on all ranks" : ""));
      const auto small = repeated([&](int k) {
        auto v = rt.parallel_map(
            rankflow::range(0, items), [k](std::int64_t i) { return i * 3 + k; }, {.results_on_all_ranks = all});
        if (rt.is_scheduler() || all) {
          ASSERT_EQ(v.size(), static_cast<std::size_t>(items));
          for (std::int64_t i = 0; i < items; ++i) ASSERT_EQ(v[i], i * 3 + k) << "call " << k << " item " << i;
        } else {
          ASSERT_TRUE(v.empty());
        }
      });
      expect_same_everywhere(small);
      if (rt.size() > 1) {
        EXPECT_GE(small, loops - 1u) << "after the first call measured it, every call is small";
      } else {
        EXPECT_EQ(small, 0u) << "one rank has no protocol to skip";
      }
    }
  }
}

TEST(SmallCall, MapreduceIsBitIdenticalToTheProtocol) {
  auto& rt = test_runtime();
  const auto f = [](std::int64_t i) { return std::sin(static_cast<double>(i)) * 1e3 + 1.0 / static_cast<double>(i + 1); };
  const auto plus = [](double a, double b) { return a + b; };
  // --small-call-us 0 is not reachable from here; a different lambda type is
  // another call site, measured afresh: its first call takes the protocol.
  const double want = rt.mapreduce(rankflow::range(0, 97), [&f](std::int64_t i) { return f(i); }, plus);
  for (auto sched : {rankflow::schedule::dynamic, rankflow::schedule::blocked}) {
    const auto small = repeated([&](int) {
      const double got = rt.mapreduce(rankflow::range(0, 97), f, plus, {.sched = sched});
      ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0) << got << " vs " << want;
    });
    expect_same_everywhere(small);
  }
}

TEST(SmallCall, AFailureReachesEveryRankAndTheNextCallWorks) {
  auto& rt = test_runtime();
  const std::int64_t items = 8;
  const std::int64_t bad_item = items - 1;  // on the last rank under the blocked split
  const int bad_rank = static_cast<int>(rankflow::blocked_partitions(items, rt.size() - 1, rt.size()).first <= bad_item
                                            ? rt.size() - 1
                                            : 0);
  int thrown = 0;
  for (int k = 0; k < 12; ++k) {
    const bool poison = k == 6;  // after the site is known to be small
    try {
      auto v = rt.parallel_map(rankflow::range(0, items), [&](std::int64_t i) {
        if (poison && i == bad_item) throw std::domain_error("bad cell " + std::to_string(i));
        return i;
      });
      EXPECT_FALSE(poison) << "call " << k << " should have failed";
      if (rt.is_scheduler()) {
        ASSERT_EQ(v.size(), static_cast<std::size_t>(items));
      }
    } catch (const rankflow::task_error& e) {
      ++thrown;
      EXPECT_TRUE(poison);
      EXPECT_EQ(e.rank(), bad_rank);
      EXPECT_EQ(e.item(), bad_item);
      const std::string what = e.what();
      EXPECT_NE(what.find("bad cell 7"), std::string::npos) << what;
      EXPECT_NE(what.find("std::domain_error"), std::string::npos) << what;
    }
  }
  EXPECT_EQ(thrown, 1);
}

TEST(SmallCall, RetriesHappenInPlace) {
  auto& rt = test_runtime();
  int failed_once = 0;  // per rank: each rank's first attempt of item 1 fails, at every call
  const auto small = repeated([&](int k) {
    int attempts_of_1 = 0;
    auto v = rt.parallel_map(
        rankflow::range(0, 4),
        [&](std::int64_t i) {
          if (i == 1 && attempts_of_1++ == 0) {
            ++failed_once;
            throw std::runtime_error("flaky");
          }
          return i + k;
        },
        {.retries = 1, .sched = rankflow::schedule::blocked});
    if (rt.is_scheduler()) {
      ASSERT_EQ(v.size(), 4u);
      EXPECT_EQ(v[1], 1 + k);
    }
  });
  expect_same_everywhere(small);
  std::int64_t total = failed_once;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, loops) << "item 1 failed once per call, on the rank that ran it";
}

// Results larger than a slot and a failure message longer than one take
// the second and third steps of the exchange.
TEST(SmallCall, LargeResultsAndLongMessagesArriveWhole) {
  auto& rt = test_runtime();
  const auto small = repeated([&](int k) {
    auto v = rt.parallel_map(
        rankflow::range(0, 6), [k](std::int64_t i) { return std::string(5000 + i, static_cast<char>('a' + k % 26)); },
        {.results_on_all_ranks = true});
    ASSERT_EQ(v.size(), 6u);
    for (std::int64_t i = 0; i < 6; ++i) {
      ASSERT_EQ(v[i].size(), static_cast<std::size_t>(5000 + i));
      ASSERT_EQ(v[i].front(), static_cast<char>('a' + k % 26));
    }
  });
  expect_same_everywhere(small);
  const std::string long_message(20000, 'x');
  for (int k = 0; k < 5; ++k) {
    const bool poison = k == 4;
    try {
      (void)rt.parallel_map(rankflow::range(0, 3), [&](std::int64_t i) {
        if (poison && i == 2) throw std::runtime_error(long_message + "END");
        return std::string(3000, 'y');
      });
      EXPECT_FALSE(poison);
    } catch (const rankflow::task_error& e) {
      EXPECT_TRUE(poison);
      EXPECT_EQ(e.item(), 2);
      EXPECT_NE(std::string(e.what()).find(long_message + "END"), std::string::npos);
    }
  }
}

// A tracked run's ledger holds every partition of small calls too.
TEST(SmallCall, TheLedgerRecordsSmallCalls) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("small_call_ledger");
  std::string id;
  std::uint64_t small = 0;
  {
    auto run = rt.start_run("small", tracked_in(file));
    id = run.id();
    small = repeated([&](int) { (void)rt.parallel_map(rankflow::range(0, 6), [](std::int64_t i) { return i; }); });
    run.stop();
  }
  expect_same_everywhere(small);
  if (rt.is_scheduler()) {
    const auto rec = rankflow::tracking::load_run(file, id, true);
    EXPECT_EQ(rec.calls.size(), static_cast<std::size_t>(loops));
    std::map<std::pair<std::int64_t, std::int64_t>, int> ok;
    for (const auto& e : rec.ledger) {
      ok[{e.call, e.partition}] += e.ok ? 1 : 0;
      EXPECT_GE(e.end, e.start);
      EXPECT_LT(e.rank, rt.size());
    }
    EXPECT_EQ(ok.size(), static_cast<std::size_t>(loops * 6));
    for (const auto& [k, n] : ok) EXPECT_EQ(n, 1) << "call " << k.first << " partition " << k.second;
  }
}

// A time-limit signal during a small call ends it on every rank as an
// interruption naming the rank, and the runtime is usable afterwards.
TEST(SmallCall, ASignalInterruptsEveryRank) {
  auto& rt = test_runtime();
  const int who = rt.size() - 1;
  int interrupted = 0;
  const auto small = repeated([&](int k) {
    try {
      (void)rt.parallel_map(rankflow::range(0, 4), [&](std::int64_t i) {
        if (k == loops / 2 && rt.rank() == who && i == rankflow::blocked_partitions(4, who, rt.size()).first) {
          std::raise(SIGUSR1);
        }
        return i;
      });
    } catch (const rankflow::interrupted& e) {
      ++interrupted;
      EXPECT_EQ(k, loops / 2);
      EXPECT_NE(std::string(e.what()).find("interrupted by SIGUSR1 on rank " + std::to_string(who)), std::string::npos)
          << e.what();
      rankflow::detail::clear_pending_signal();
      rankflow::detail::install_signal_handlers();  // the handler is one-shot
    }
  });
  expect_same_everywhere(small);
  EXPECT_EQ(interrupted, 1);
}

// A stencil's window moves every step: the site is the call without the
// range's position, so the moving call is small from its second step on.
TEST(SmallCall, AMovingWindowIsOneCallSite) {
  auto& rt = test_runtime();
  const auto small = repeated([&](int k) {
    const std::int64_t from = 1000 * k;
    auto v = rt.parallel_map(rankflow::range(from, from + 6), [](std::int64_t i) { return i * 2; });
    if (rt.is_scheduler()) {
      ASSERT_EQ(v.size(), 6u);
      ASSERT_EQ(v[5], (from + 5) * 2);
    }
  });
  expect_same_everywhere(small);
  if (rt.size() > 1) {
    EXPECT_GE(small, loops - 1u);
  }
}
