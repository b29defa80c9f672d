// Multi-rank tasks (issue 17 item 3) at 1-4 ranks: resources{.ranks = k}
// runs a task on k worker ranks at once with a communicator of just those
// ranks; member 0's value is the result; single-rank tasks fill the other
// workers while a gang waits and the gang is not starved by them; a failing
// member ends the task with its error and the job goes on; retries rerun the
// whole gang; an unsatisfiable k is an error at submit.
#include <chrono>
#include <set>
#include <thread>

#include "mpi_test.hpp"

using rankflow::resources;
using rankflow::Scheduler;
using rankflow::task_context;

namespace {

double unix_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What member 0 saw: the communicator's size, the sum and the set of the
// members' world ranks (from an allreduce and an allgather on ctx.comm()).
struct gang_view {
  int members = 0;
  int comm_size = 0;
  std::vector<int> ranks;
  double start = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& members& comm_size& ranks& start;
  }
};

void define_gang_tasks(rankflow::Runtime& rt) {
  rt.define("who_is_in", [](task_context& c) {
    gang_view v;
    v.start = unix_s();
    v.members = c.members();
    MPI_Comm_size(c.comm(), &v.comm_size);
    int me = c.rank(), my_place = -1;
    MPI_Comm_rank(c.comm(), &my_place);
    if (my_place != c.member()) throw std::runtime_error("member index differs from the communicator's rank");
    v.ranks.resize(static_cast<std::size_t>(v.comm_size));
    MPI_Request r = MPI_REQUEST_NULL;
    MPI_Iallgather(&me, 1, MPI_INT, v.ranks.data(), 1, MPI_INT, c.comm(), &r);
    c.wait(r);
    return v;
  });
  rt.define("single_nap", [](double s) {
    const double t0 = unix_s();
    std::this_thread::sleep_for(std::chrono::duration<double>(s));
    return t0;
  });
  // Member 1 fails (on attempts up to `fail_until`); member 0 waits for it at
  // a barrier that the failure ends.
  rt.define("one_member_fails", [](task_context& c, int fail_until) {
    if (c.member() == 1 && c.attempt() <= fail_until) {
      throw std::runtime_error("member 1 lost its GPU on attempt " + std::to_string(c.attempt()));
    }
    c.barrier();
    return c.attempt();
  });
}

}  // namespace

TEST(Gangs, ATaskOnKRanksGetsACommunicatorOfJustThoseRanks) {
  auto& rt = test_runtime();
  define_gang_tasks(rt);
  const int workers = rt.size() > 1 ? rt.size() - 1 : 1;
  rt.drive([&](Scheduler& s) {
    if (workers < 2) {
      EXPECT_THROW_WITH(s.with({.ranks = 2}).submit<gang_view>("who_is_in"), rankflow::resource_error,
                        "needs 2 ranks at once", "run with at least 3 ranks");
      return;
    }
    EXPECT_THROW_WITH(s.with({.ranks = workers + 1}).submit<gang_view>("who_is_in"), rankflow::resource_error,
                      "needs " + std::to_string(workers + 1) + " ranks at once");
    EXPECT_THROW_WITH(s.with({.ranks = 0}).submit<gang_view>("who_is_in"), rankflow::usage_error, "ranks >= 1");
    for (int k = 2; k <= workers; ++k) {
      auto f = s.with({.ranks = k}).submit<gang_view>("who_is_in");
      const gang_view v = f.get();
      EXPECT_EQ(v.members, k);
      EXPECT_EQ(v.comm_size, k);
      const std::set<int> distinct(v.ranks.begin(), v.ranks.end());
      EXPECT_EQ(distinct.size(), static_cast<std::size_t>(k)) << "the members are distinct ranks";
      EXPECT_EQ(distinct.count(0), 0u) << "rank 0 drives, it is never a member";
      EXPECT_EQ(v.ranks.front(), f.rank()) << "the future names member 0's rank";
    }
    // A one-rank task's communicator is MPI_COMM_SELF.
    EXPECT_EQ(s.submit<gang_view>("who_is_in").get().comm_size, 1);
  });
}

TEST(Gangs, SingleRankTasksFillTheGapsAndTheGangIsNotStarved) {
  auto& rt = test_runtime();
  define_gang_tasks(rt);
  if (rt.size() < 3) GTEST_SKIP() << "needs 2 workers";
  const int workers = rt.size() - 1;
  rt.drive([&](Scheduler& s) {
    const auto info = s.labels();
    const int cpus = info.front().capacity.cpu;
    for (const auto& w : info) {
      if (w.capacity.cpu != cpus) GTEST_SKIP() << "workers of different sizes";
    }
    // Each worker is filled by one task ending at staggered times, so they
    // never free up together; tasks submitted behind the gang, each again
    // filling a worker, would take every worker as it frees up and keep the
    // gang (one CPU on every worker) waiting until they are all done.
    std::vector<rankflow::Future<double>> before, after;
    for (int w = 0; w < workers; ++w) {
      before.push_back(s.with({.cpu = cpus}).submit<double>("single_nap", 0.2 + 0.1 * w));
    }
    auto gang = s.with({.ranks = workers}).submit<gang_view>("who_is_in");
    for (int i = 0; i < 2 * workers; ++i) after.push_back(s.with({.cpu = cpus}).submit<double>("single_nap", 0.15));
    const double gang_start = gang.get().start;
    double first_after = 1e300;
    for (auto& f : after) first_after = std::min(first_after, f.get());
    for (auto& f : before) f.get();
    // The gang holds each worker as it frees up: none of those tasks starts
    // before it (it leaves each worker too little room for them).
    EXPECT_LT(gang_start, first_after) << "a task submitted after the gang started before it";
  });
}

TEST(Gangs, AFailingMemberEndsTheTaskWithItsErrorAndTheJobGoesOn) {
  auto& rt = test_runtime();
  define_gang_tasks(rt);
  if (rt.size() < 3) GTEST_SKIP() << "needs 2 workers";
  rt.drive([&](Scheduler& s) {
    auto f = s.with({.ranks = 2}).submit<int>("one_member_fails", 99);
    try {
      f.get();
      ADD_FAILURE() << "the task succeeded";
    } catch (const rankflow::task_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("member 1 of 2"), std::string::npos) << what;
      EXPECT_NE(what.find("lost its GPU on attempt 1"), std::string::npos) << what;
      EXPECT_NE(e.info().rank, 0);
    }
    // Retries rerun the whole gang: attempt 1 fails, attempt 2 succeeds.
    auto g = s.with({.ranks = 2}).retries(1, 0.01).submit<int>("one_member_fails", 1);
    EXPECT_EQ(g.get(), 2);
    EXPECT_EQ(g.attempts(), 2);
    // The job goes on: the workers are free for more.
    EXPECT_EQ(s.with({.ranks = 2}).submit<gang_view>("who_is_in").get().members, 2);
  });
}
