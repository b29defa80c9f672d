// The job's end (runtime/scheduler/src/deadline.cpp, issue 17 item 2): the
// flags that give it, what Slurm says, and rank 0 stopping a call before it
// at 1-4 ranks: every rank leaves with rankflow::interrupted naming the time
// limit, no partition starts after the stop time, and a tracked run records
// how much of the allocation it left.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <thread>

#include <rankflow/core/clock.hpp>
#include <rankflow/tracking/experiment.hpp>

#include "deadline.hpp"
#include "mpi_test.hpp"

namespace {

using rankflow::detail::find_job_end;
using rankflow::detail::parse_duration;
using rankflow::detail::parse_time_point;

rankflow::config with(std::vector<std::string> args) {
  args.insert(args.begin(), "prog");
  std::vector<std::string> rest;
  return rankflow::parse_config(args, &rest);
}

// Forgets what a test set (a later test must not see its deadline).
struct no_deadline_after {
  ~no_deadline_after() {
    rankflow::detail::set_deadline(0, 0);
    rankflow::detail::clear_pending_signal();
  }
};

}  // namespace

TEST(Deadline, DurationsInEveryFormSlurmAndPeopleWrite) {
  EXPECT_EQ(parse_duration("--time-left", "3600"), 3600);
  EXPECT_EQ(parse_duration("--time-left", "90s"), 90);
  EXPECT_EQ(parse_duration("--time-left", "15m"), 900);
  EXPECT_EQ(parse_duration("--time-left", "2h"), 7200);
  EXPECT_EQ(parse_duration("--time-left", "1d"), 86400);
  EXPECT_EQ(parse_duration("--time-left", "1.5h"), 5400);
  EXPECT_EQ(parse_duration("--time-left", "01:30:00"), 5400);
  EXPECT_EQ(parse_duration("--time-left", "05:30"), 330);
  EXPECT_EQ(parse_duration("--time-left", "1-00:00:10"), 86410);
  for (const char* bad : {"", "abc", "h", "-5", "1:2:3:4", "1-", "1-2", "12:ab", "5x", "nan", "inf"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW_WITH(parse_duration("--time-left", bad), rankflow::usage_error, "--time-left expects a duration",
                      std::string("'") + bad + "'");
  }
}

TEST(Deadline, TimesAsUnixSecondsOrIso8601) {
  EXPECT_EQ(parse_time_point("--deadline", "1796640000"), 1796640000.0);
  EXPECT_EQ(parse_time_point("--deadline", "2026-12-07T12:00:00Z"), 1796644800.0);
  EXPECT_DOUBLE_EQ(parse_time_point("--deadline", "2026-12-07T12:00:00.25Z"), 1796644800.25);
  std::tm tm{};
  tm.tm_year = 126;
  tm.tm_mon = 11;
  tm.tm_mday = 7;
  tm.tm_hour = 13;
  tm.tm_isdst = -1;
  EXPECT_EQ(parse_time_point("--deadline", "2026-12-07T13:00:00"), static_cast<double>(std::mktime(&tm)))
      << "without Z: local time, as squeue prints it";
  for (const char* bad : {"tomorrow", "2026-12-07", "2026-12-07T12:00", "2026-13-01T00:00:00Z", "12:00:00", "-1"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW_WITH(parse_time_point("--deadline", bad), rankflow::usage_error, "--deadline expects a time");
  }
}

TEST(Deadline, FlagsSlurmAndTheMargin) {
  const double now = 1.8e9;
  ::unsetenv("SLURM_JOB_ID");
  ::unsetenv("SLURM_JOB_END_TIME");
  EXPECT_EQ(find_job_end(with({}), now).end, 0) << "outside Slurm, no flag: no deadline";
  auto j = find_job_end(with({"--time-left", "100"}), now);
  EXPECT_EQ(j.end, now + 100);
  EXPECT_EQ(j.margin, 10) << "a tenth of the time left";
  EXPECT_EQ(j.source, "--time-left");
  EXPECT_EQ(find_job_end(with({"--time-left", "20"}), now).margin, 5) << "at least 5 s";
  EXPECT_EQ(find_job_end(with({"--time-left", "2h"}), now).margin, 60) << "at most 60 s";
  EXPECT_EQ(find_job_end(with({"--time-left", "2h", "--deadline-margin", "3"}), now).margin, 3);
  j = find_job_end(with({"--deadline", "2026-12-07T12:00:00Z"}), now);
  EXPECT_EQ(j.end, 1796644800.0);
  EXPECT_EQ(j.source, "--deadline");
  ::setenv("SLURM_JOB_ID", "812", 1);
  ::setenv("SLURM_JOB_END_TIME", "1800000600", 1);
  j = find_job_end(with({}), now);
  EXPECT_EQ(j.end, 1800000600.0) << "Slurm's own end time";
  EXPECT_EQ(j.source, "Slurm job 812");
  EXPECT_EQ(find_job_end(with({"--deadline", "off"}), now).end, 0) << "off wins over Slurm";
  EXPECT_EQ(find_job_end(with({"--time-left", "50"}), now).end, now + 50) << "a flag wins over Slurm";
  ::unsetenv("SLURM_JOB_END_TIME");
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", "/nonexistent", 1);  // no squeue to ask: no deadline, no error
  EXPECT_EQ(find_job_end(with({}), now).end, 0);
  // An squeue on PATH (a script standing in for Slurm's): its end time, in
  // local time as squeue prints it; "Unknown" (no limit) is no deadline.
  char dir[] = "/tmp/rankflow-squeue-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string fake = std::string(dir) + "/squeue";
  for (const char* answer : {"2026-12-07T13:00:00", "Unknown"}) {
    {
      std::FILE* f = std::fopen(fake.c_str(), "w");
      ASSERT_NE(f, nullptr);
      std::fprintf(f, "#!/bin/sh\n[ \"$*\" = \"-h -j 812 -o %%e\" ] || exit 3\necho %s\n", answer);
      std::fclose(f);
      ::chmod(fake.c_str(), 0755);
    }
    ::setenv("PATH", (std::string(dir) + ":" + path).c_str(), 1);
    j = find_job_end(with({}), now);
    ::setenv("PATH", path.c_str(), 1);
    if (std::string(answer) == "Unknown") {
      EXPECT_EQ(j.end, 0) << "no limit: no deadline";
    } else {
      EXPECT_EQ(j.end, parse_time_point("--deadline", answer)) << "squeue's end, as local time";
      EXPECT_EQ(j.source, "Slurm job 812");
    }
  }
  std::remove(fake.c_str());
  ::rmdir(dir);
  ::unsetenv("SLURM_JOB_ID");
  EXPECT_THROW_WITH(with({"--deadline", "soon"}), rankflow::usage_error, "--deadline expects a time", "'soon'");
  EXPECT_THROW_WITH(with({"--deadline-margin", "x"}), rankflow::usage_error, "--deadline-margin expects a duration");
}

// A call of 20 ms partitions with the job's end 0.6 s away (margin 0.2 s) on
// rank 0: it ends with interrupted(deadline_signal) on every rank, having
// run some partitions and not all, and none started after the stop time.
TEST(Deadline, RankZeroStopsTheCallBeforeTheJobsEnd) {
  auto& rt = test_runtime();
  no_deadline_after reset;
  const double t0 = rankflow::detail::unix_now();
  const double stop_at = t0 + 0.4;
  if (rt.rank() == 0) rankflow::detail::set_deadline(t0 + 0.6, 0.2);
  MPI_Barrier(MPI_COMM_WORLD);
  double last_start = 0;
  int ran = 0;
  bool stopped = false;
  try {
    (void)rt.parallel_map(
        rankflow::range(0, 400),
        [&](std::int64_t i) {
          last_start = std::max(last_start, rankflow::detail::unix_now());
          ++ran;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return i;
        },
        {.chunk_size = 1});
  } catch (const rankflow::interrupted& e) {
    stopped = true;
    EXPECT_EQ(e.signal(), rankflow::deadline_signal);
    EXPECT_NE(std::string(e.what()).find("stopped before the job's time limit"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(stopped) << "the call ran to its end past the deadline";
  int total = ran;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &last_start, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_GT(total, 0);
  EXPECT_LT(total, 400);
  // Started before the stop time: rank 0 stops a partition's length before
  // it and cancels what workers hold queued. Slack of 2.5 partitions for a
  // rank 0 that the OS did not run for a while (4 ranks on 2 cores, under
  // ASan); without the deadline every one of the 400 would start.
  // (Same host, one clock.)
  EXPECT_LE(last_start, stop_at + 0.05) << "a partition started " << last_start - stop_at << " s after the stop time";
  rankflow::detail::clear_pending_signal();
}

// A tracked run stopped by the deadline is recorded as killed, with the
// reason, the job's end and how much of the allocation was left.
TEST(Deadline, TheRunRecordsTheAllocationLeft) {
  auto& rt = test_runtime();
  no_deadline_after reset;
  const std::string file = "deadline_test_np" + std::to_string(rt.size()) + ".h5";
  if (rt.rank() == 0) {
    std::remove(file.c_str());
    std::system(("rm -rf '" + file + ".d'").c_str());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = rankflow::detail::unix_now();
  if (rt.rank() == 0) rankflow::detail::set_deadline(t0 + 0.5, 0.2);
  std::string id;
  try {
    rankflow::run_options o;
    o.experiment = file;
    auto run = rt.start_run("deadline", o);
    id = run.id();
    (void)rt.parallel_map(
        rankflow::range(0, 400),
        [](std::int64_t i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return i;
        },
        {.chunk_size = 1});
    ADD_FAILURE() << "not interrupted";
  } catch (const rankflow::interrupted&) {
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rt.rank() == 0) {
    const auto rec = rankflow::tracking::load_run(file, id, false);
    EXPECT_EQ(rec.info.status, "killed");
    EXPECT_NE(rec.info.reason.find("stopped before the job's time limit"), std::string::npos) << rec.info.reason;
    const auto* end = rec.find("sys/deadline/end");
    const auto* left = rec.find("sys/deadline/left_s");
    ASSERT_TRUE(end && left);
    EXPECT_EQ(end->atom.d, t0 + 0.5);
    EXPECT_NEAR(left->atom.d, t0 + 0.5 - rec.info.end_time, 1e-6);
    EXPECT_GT(left->atom.d, 0) << "the run ended before the allocation";
  }
  rankflow::detail::clear_pending_signal();
}

// A resumed call knows its partitions' length from the run's ledger before
// any of them ends: with less time left than one partition took, rank 0
// starts none (without the ledger it would start a round of them, each
// running past the job's end).
TEST(Deadline, AResumedCallJudgesTheEndByTheLedgersDurations) {
  auto& rt = test_runtime();
  no_deadline_after reset;
  const std::string file = "deadline_resume_np" + std::to_string(rt.size()) + ".h5";
  if (rt.rank() == 0) {
    std::remove(file.c_str());
    std::system(("rm -rf '" + file + ".d'").c_str());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  auto slow = [](std::int64_t i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    return i;
  };
  rankflow::run_options o;
  o.experiment = file;
  std::string id;
  try {
    // The first execution finishes some partitions of 80 ms, then is
    // stopped, and the run is recorded killed (the exception leaves it).
    if (rt.rank() == 0) rankflow::detail::set_deadline(rankflow::detail::unix_now() + 0.45, 0.1);
    auto run = rt.start_run("resumed_deadline", o);
    id = run.id();
    (void)rt.parallel_map(rankflow::range(0, 100), slow, {.chunk_size = 1});
    ADD_FAILURE() << "not interrupted";
  } catch (const rankflow::interrupted&) {
  }
  rankflow::detail::clear_pending_signal();
  // Resumed with 50 ms to the stop time: less than one partition.
  if (rt.rank() == 0) rankflow::detail::set_deadline(rankflow::detail::unix_now() + 0.15, 0.1);
  int ran = 0;
  bool stopped = false;
  o.resume = "last";
  try {
    auto run = rt.start_run("resumed_deadline", o);
    EXPECT_EQ(run.id(), id);
    (void)rt.parallel_map(
        rankflow::range(0, 100),
        [&](std::int64_t i) {
          ++ran;
          return slow(i);
        },
        {.chunk_size = 1});
  } catch (const rankflow::interrupted& e) {
    stopped = true;
    EXPECT_EQ(e.signal(), rankflow::deadline_signal);
  }
  rankflow::detail::clear_pending_signal();
  EXPECT_TRUE(stopped) << "the resumed call ran to its end past the deadline";
  MPI_Allreduce(MPI_IN_PLACE, &ran, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(ran, 0) << "a partition of 80 ms was started 50 ms before the stop time";
}
