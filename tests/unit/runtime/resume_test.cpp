// The partition ledger and --resume at 1-4 ranks: every partition of a
// tracked run is recorded; a run that failed part-way is resumed under its
// id, reusing what it finished, with the same results as an uninterrupted
// run and no duplicate series points.
#include <atomic>
#include <cmath>
#include <set>

#include "mpi_test.hpp"

namespace tr = rankflow::tracking;

namespace {

constexpr std::int64_t items = 240;
constexpr std::int64_t chunk = 8;     // 30 partitions
constexpr std::int64_t poison = 101;  // partition 12

rankflow::run_options resume_in(const std::string& file, std::string which = "last") {
  auto o = tracked_in(file);
  o.resume = std::move(which);
  return o;
}

// Items this rank ran, summed over every rank.
std::int64_t total(std::int64_t mine) {
  MPI_Allreduce(MPI_IN_PLACE, &mine, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return mine;
}

double f(std::int64_t i) { return std::sin(static_cast<double>(i)) * 1e3 + 1.0 / static_cast<double>(i + 1); }

tr::run_record load(const std::string& file, const std::string& id) { return tr::load_run(file, id, true); }

}  // namespace

TEST(Resume, LedgerRecordsEveryPartition) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_ledger");
  std::string id;
  {
    auto run = rt.start_run("ledger", tracked_in(file));
    id = run.id();
    EXPECT_FALSE(run.resumed());
    auto v = rt.parallel_map(rankflow::range(0, items), [](std::int64_t i) { return i * 3; }, {.chunk_size = chunk});
    const double s = rt.mapreduce(
        rankflow::range(0, 100), [](std::int64_t i) { return static_cast<double>(i); },
        [](double a, double b) { return a + b; },
        {.chunk_size = 10, .sched = rankflow::schedule::blocked, .step = "sum"});
    EXPECT_EQ(s, 4950.0);
    run.stop();
  }
  if (!rt.is_scheduler()) return;
  const auto rec = load(file, id);
  ASSERT_EQ(rec.calls.size(), 2u);
  EXPECT_EQ(rec.calls.at(1).step, "parallel_map");
  EXPECT_EQ(rec.calls.at(1).partitions, 30);
  EXPECT_EQ(rec.calls.at(1).items, items);
  EXPECT_EQ(rec.calls.at(2).step, "sum");
  EXPECT_EQ(rec.calls.at(2).partitions, 10);
  ASSERT_EQ(rec.ledger.size(), 40u);
  std::set<std::pair<std::int64_t, std::int64_t>> seen;
  for (const auto& e : rec.ledger) {
    EXPECT_TRUE(e.ok);
    EXPECT_EQ(e.attempts, 1);
    EXPECT_GE(e.rank, 0);
    EXPECT_LT(e.rank, rt.size());
    EXPECT_GT(e.start, 1.7e9);
    EXPECT_GE(e.end, e.start);
    EXPECT_FALSE(e.result.empty());
    seen.insert({e.call, e.partition});
    if (e.call == 1) {
      EXPECT_EQ(e.first, e.partition * chunk);
      EXPECT_EQ(e.last, e.partition * chunk + chunk);
      auto back = rankflow::decode<std::vector<std::int64_t>>(e.result.data(), e.result.size());
      ASSERT_EQ(back.size(), static_cast<std::size_t>(chunk));
      EXPECT_EQ(back[0], e.first * 3);
    } else {
      // blocked: partition p runs on the rank that owns it
      EXPECT_EQ(e.rank, [&] {
        for (int r = 0; r < rt.size(); ++r) {
          const auto b = rankflow::blocked_partitions(10, r, rt.size());
          if (e.partition >= b.first && e.partition < b.last) return r;
        }
        return -1;
      }());
      EXPECT_EQ(rankflow::decode<double>(e.result.data(), e.result.size()),
                static_cast<double>(10 * e.partition * 10 + 45));
    }
  }
  EXPECT_EQ(seen.size(), 40u);
}

TEST(Resume, FailedPartitionIsInTheLedgerWithItsError) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_failed");
  std::string id;
  {
    auto run = rt.start_run("fails", tracked_in(file));
    id = run.id();
    EXPECT_THROW(rt.parallel_map(rankflow::range(0, items),
                                 [](std::int64_t i) {
                                   if (i == poison) throw std::runtime_error("bad input at 101");
                                   return i;
                                 },
                                 {.chunk_size = chunk, .retries = 1}),
                 rankflow::task_error);
    run.fail("a partition failed");
  }
  if (!rt.is_scheduler()) return;
  const auto rec = load(file, id);
  EXPECT_EQ(rec.info.status, "failed");
  int failed = 0;
  for (const auto& e : rec.ledger) {
    if (e.ok) continue;
    ++failed;
    EXPECT_EQ(e.partition, poison / chunk);
    EXPECT_EQ(e.attempts, 2);
    EXPECT_NE(e.error.find("item 101"), std::string::npos) << e.error;
    EXPECT_NE(e.error.find("bad input at 101"), std::string::npos) << e.error;
    EXPECT_TRUE(e.result.empty());
  }
  EXPECT_EQ(failed, 1);
}

// The heart of resume: the second execution runs only what the first did
// not finish and returns exactly what an uninterrupted run returns.
TEST(Resume, ParallelMapAndMapreduceRunOnlyWhatIsLeft) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_rest");
  const auto plus = [](double a, double b) { return a + b; };
  for (auto sched : {rankflow::schedule::dynamic, rankflow::schedule::blocked}) {
    SCOPED_TRACE(sched == rankflow::schedule::dynamic ? "dynamic" : "blocked");
    const rankflow::map_options opts{.chunk_size = chunk, .sched = sched};
    // Reference, outside any run.
    const double want_sum = rt.mapreduce(rankflow::range(0, items), f, plus, opts);
    std::vector<double> want_map = rt.parallel_map(rankflow::range(0, items), f, opts);

    std::string id;
    {
      auto run = rt.start_run("rest", tracked_in(file));
      id = run.id();
      // Call 1 finishes; call 2 dies at one partition.
      (void)rt.parallel_map(rankflow::range(0, items), f, opts);
      EXPECT_THROW(rt.mapreduce(
                       rankflow::range(0, items),
                       [](std::int64_t i) {
                         if (i == poison) throw std::runtime_error("node lost");
                         return f(i);
                       },
                       plus, opts),
                   rankflow::task_error);
      run.fail("interrupted for the test");
    }
    std::int64_t ran_map = 0, ran_sum = 0;
    {
      auto run = rt.start_run("rest", resume_in(file));
      EXPECT_EQ(run.id(), id);
      EXPECT_TRUE(run.resumed());
      auto got_map = rt.parallel_map(
          rankflow::range(0, items),
          [&](std::int64_t i) {
            ++ran_map;
            return f(i);
          },
          opts);
      const double got_sum = rt.mapreduce(
          rankflow::range(0, items),
          [&](std::int64_t i) {
            ++ran_sum;
            return f(i);
          },
          plus, opts);
      if (rt.is_scheduler()) {
        EXPECT_EQ(got_map, want_map);
      }
      // Bit for bit: the summation tree depends only on the partition count.
      EXPECT_EQ(std::memcmp(&got_sum, &want_sum, sizeof got_sum), 0) << got_sum << " vs " << want_sum;
      run.stop();
    }
    EXPECT_EQ(total(ran_map), 0) << "call 1 had finished: nothing of it may run again";
    const auto ran = total(ran_sum);
    EXPECT_GE(ran, chunk) << "the failed partition runs again";
    EXPECT_LT(ran, items) << "finished partitions of call 2 are reused";
    if (rt.is_scheduler()) {
      const auto rec = load(file, id);
      EXPECT_EQ(rec.info.status, "succeeded");
      EXPECT_EQ(rec.info.context.at("resumes"), "1");
      // Every partition of both calls has exactly one success.
      std::map<std::pair<std::int64_t, std::int64_t>, int> ok;
      for (const auto& e : rec.ledger) ok[{e.call, e.partition}] += e.ok ? 1 : 0;
      EXPECT_EQ(ok.size(), 60u);
      for (const auto& [k, n] : ok) EXPECT_EQ(n, 1) << "call " << k.first << " partition " << k.second;
    }
  }
}

TEST(Resume, ForeachSkipsFinishedSplitsAndSeriesGetNoDuplicates) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_foreach");
  const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f", "g"};
  std::string id;
  {
    auto run = rt.start_run("sweep", tracked_in(file));
    id = run.id();
    for (int epoch = 0; epoch < 3; ++epoch) {
      if (rt.is_scheduler()) run["train/loss"].append(1.0 / (epoch + 1), {.step = static_cast<double>(epoch)});
    }
    // The last split fails: a final failure cancels splits queued on
    // workers and not started, so only splits that ran before it count.
    EXPECT_THROW(rt.foreach (names,
                             [](const std::string& s) {
                               if (s == "g") throw std::runtime_error("split g failed");
                               return s + s;
                             }),
                 rankflow::task_error);
    run.fail("split g failed");
  }
  std::int64_t ran = 0;
  {
    auto run = rt.start_run("sweep", resume_in(file, id));
    // The program replays from the start: the points it appends again (same
    // explicit steps) are already there and are dropped, not refused.
    for (int epoch = 0; epoch < 5; ++epoch) {
      if (rt.is_scheduler()) run["train/loss"].append(1.0 / (epoch + 1), {.step = static_cast<double>(epoch)});
    }
    auto out = rt.foreach (names, [&](const std::string& s) {
      ++ran;
      return s + s;
    });
    if (rt.is_scheduler()) {
      ASSERT_EQ(out.size(), names.size());
      for (std::size_t k = 0; k < names.size(); ++k) EXPECT_EQ(out[k], names[k] + names[k]);
    }
    run.wait();  // no refusal: replayed points are not errors
    run.stop();
  }
  const auto n = total(ran);
  EXPECT_GE(n, 1);
  EXPECT_LT(n, static_cast<std::int64_t>(names.size()));
  if (rt.is_scheduler()) {
    const auto rec = load(file, id);
    const auto& loss = rec.fields.at("train/loss").series;
    EXPECT_EQ(loss.steps, (std::vector<double>{0, 1, 2, 3, 4}));
  }
}

TEST(Resume, DifferentWorkIsRefusedOnEveryRank) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_mismatch");
  std::string id;
  {
    auto run = rt.start_run("mm", tracked_in(file));
    id = run.id();
    (void)rt.parallel_map(rankflow::range(0, items), [](std::int64_t i) { return i; }, {.chunk_size = chunk});
    run.fail("stopped for the test");
  }
  auto run = rt.start_run("mm", resume_in(file));
  EXPECT_THROW_WITH(
      (void)rt.parallel_map(rankflow::range(0, items), [](std::int64_t i) { return i; }, {.chunk_size = chunk * 2}),
      rankflow::usage_error, "--resume: call #1", "chunk 16", "chunk 8", id);
  // The refusal left every rank in step: the runtime still works.
  auto v = rt.parallel_map(rankflow::range(0, 10), [](std::int64_t i) { return i; });
  if (rt.is_scheduler()) {
    EXPECT_EQ(v.size(), 10u);
  }
  run.stop();
}

TEST(Resume, WhichRunIsResumed) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_which");
  {
    // Nothing to resume: a first start with --resume starts a new run.
    auto run = rt.start_run("job", resume_in(file));
    EXPECT_EQ(run.id(), "RUN-1");
    EXPECT_FALSE(run.resumed());
    run.stop();
  }
  // A run that succeeded is not resumed by "last"; by name it is refused.
  {
    auto run = rt.start_run("job", resume_in(file));
    EXPECT_EQ(run.id(), "RUN-2");
    run.fail("for the test");
  }
  EXPECT_THROW_WITH(rt.start_run("job", resume_in(file, "RUN-1")), rankflow::usage_error, "RUN-1", "succeeded");
  EXPECT_THROW_WITH(rt.start_run("job", resume_in(file, "RUN-9")), rankflow::usage_error, "RUN-9", "no such run");
  EXPECT_THROW_WITH(rt.start_run("other", resume_in(file, "RUN-2")), rankflow::usage_error, "named 'job'");
  {
    auto run = rt.start_run("job", resume_in(file));
    EXPECT_EQ(run.id(), "RUN-2");
    EXPECT_TRUE(run.resumed());
    run.stop();
  }
  {
    auto o = resume_in(file, "no");
    auto run = rt.start_run("job", o);
    EXPECT_EQ(run.id(), "RUN-3");
    run.stop();
  }
}

TEST(Resume, ResumedRunKeepsItsFields) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_fields");
  std::string id;
  {
    auto run = rt.start_run("keep", tracked_in(file));
    id = run.id();
    if (rt.is_scheduler()) {
      run["params/lr"] = 0.25;
      run["params/tags"].add(std::vector<std::string>{"x", "y"});
      run["notes"].upload_bytes("hello\0world", "notes.bin");
      run["metrics/acc"].append(0.5);
    }
    run["per_rank/r" + std::to_string(rt.rank())] = rt.rank();
    run.fail("for the test");
  }
  {
    auto run = rt.start_run("keep", resume_in(file));
    if (rt.is_scheduler()) {
      EXPECT_EQ(run["params/lr"].fetch<double>(), 0.25);
      EXPECT_EQ(run["notes"].fetch_bytes(), std::string("hello\0world"));
      run["metrics/acc"].append(0.75);  // no explicit step: a new point
    }
    EXPECT_THROW_WITH(run["_rankflow/x"] = 1, rankflow::usage_error, "reserved");
    run.stop();
  }
  if (!rt.is_scheduler()) return;
  const auto rec = load(file, id);
  EXPECT_EQ(rec.info.status, "succeeded");
  EXPECT_EQ(rec.fields.at("params/tags").atom.list, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(rec.fields.at("metrics/acc").series.f, (std::vector<double>{0.5, 0.75}));
  for (int r = 0; r < rt.size(); ++r) EXPECT_EQ(rec.fields.count("per_rank/r" + std::to_string(r)), 1u);
  EXPECT_EQ(rec.fields.count("_rankflow"), 0u);
}

// The same step, item count and chunk, but other items, another call kind or
// another result type: the old check (step, items, chunk) let these reuse
// the recorded results and mix them with new ones (issue 12, item 1).
TEST(Resume, OtherRangeKindOrResultTypeIsRefused) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_signature");
  auto id_of = [](std::int64_t i) { return i; };
  std::string id;
  {
    auto run = rt.start_run("sig", tracked_in(file));
    id = run.id();
    (void)rt.parallel_map(rankflow::range(0, items), id_of, {.chunk_size = chunk, .step = "s"});
    run.fail("stopped for the test");
  }
  {
    auto run = rt.start_run("sig", resume_in(file));
    EXPECT_THROW_WITH(
        (void)rt.parallel_map(rankflow::range(1000, 1000 + items), id_of, {.chunk_size = chunk, .step = "s"}),
        rankflow::usage_error, "--resume: call #1", "range(1000, 1240)", "range(0, 240)", id);
    run.fail("again");
  }
  {
    auto run = rt.start_run("sig", resume_in(file));
    EXPECT_THROW_WITH(
        (void)rt.mapreduce(rankflow::range(0, items), id_of, [](std::int64_t a, std::int64_t b) { return a + b; },
                           {.chunk_size = chunk, .step = "s"}),
        rankflow::usage_error, "--resume: call #1", "mapreduce(range(0, 240))", "parallel_map");
    run.fail("again");
  }
  {
    auto run = rt.start_run("sig", resume_in(file));
    EXPECT_THROW_WITH(
        (void)rt.parallel_map(rankflow::range(0, items), [](std::int64_t i) { return static_cast<double>(i); },
                              {.chunk_size = chunk, .step = "s"}),
        rankflow::usage_error, "--resume: call #1", "result double", "result long");
    run.fail("again");
  }
  {
    // Schedule and retries do not change results: resuming with others reuses.
    auto run = rt.start_run("sig", resume_in(file));
    auto v = rt.parallel_map(rankflow::range(0, items), id_of,
                             {.chunk_size = chunk, .retries = 2, .sched = rankflow::schedule::blocked, .step = "s"});
    if (rt.is_scheduler()) {
      ASSERT_EQ(v.size(), static_cast<std::size_t>(items));
      EXPECT_EQ(v[items - 1], items - 1);
    }
    run.stop();
  }
}

// Resuming with other inputs once reused partitions computed with the old
// ones and mixed them with new results (bigsum --seed 42, then --seed 7:
// a sum of neither). Another value of a params/ field, assigned on any
// rank, is refused at the next call on every rank; the run keeps its value.
TEST(Resume, OtherParamsAreRefusedAndTheRunKeepsItsValue) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_params");
  auto work = [&] {
    return rt.parallel_map(rankflow::range(0, items), [](std::int64_t i) { return f(i); }, {.chunk_size = chunk});
  };
  std::string id;
  {
    auto run = rt.start_run("p", tracked_in(file));
    id = run.id();
    if (rt.is_scheduler()) run["params/seed"] = 42;
    (void)work();
    run.fail("stopped for the test");
  }
  const int assigner = rt.size() - 1;  // any rank may assign a parameter
  {
    auto run = rt.start_run("p", resume_in(file));
    if (rt.rank() == assigner) run["params/seed"] = 7;
    EXPECT_THROW_WITH((void)work(), rankflow::usage_error, "--resume", "params/seed was 42 in run " + id, "now 7",
                      "rank " + std::to_string(assigner));
    run.wait();
    if (rt.is_scheduler()) {
      EXPECT_EQ(run["params/seed"].fetch<std::int64_t>(), 42);  // not overwritten
    }
    run.fail("refused");
  }
  {
    // The same value again (and a parameter the first execution never set):
    // the recorded partitions are reused.
    auto run = rt.start_run("p", resume_in(file));
    if (rt.rank() == assigner) {
      run["params/seed"] = 42;
      run["params/new_knob"] = 1.5;
    }
    auto v = work();
    if (rt.is_scheduler()) {
      ASSERT_EQ(v.size(), static_cast<std::size_t>(items));
      EXPECT_EQ(v[17], f(17));
    }
    run.stop();
  }
}

// run_options::inputs: what results depend on beyond params/ (a data file's
// checksum, say), recorded as fields and checked the same way.
TEST(Resume, DeclaredInputsAreChecked) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_inputs");
  auto work = [&] {
    return rt.mapreduce(
        rankflow::range(0, items), [](std::int64_t i) { return f(i); }, [](double a, double b) { return a + b; },
        {.chunk_size = chunk});
  };
  auto with_input = [&](const std::string& which, const std::string& sum) {
    auto o = resume_in(file, which);
    o.inputs["data/sha256"] = sum;
    return o;
  };
  double first = 0;
  {
    auto run = rt.start_run("d", with_input("no", "abc"));
    first = work();
    run.wait();
    if (rt.is_scheduler()) {
      EXPECT_EQ(run["data/sha256"].fetch<std::string>(), "abc");
    }
    run.fail("stopped for the test");
  }
  {
    auto run = rt.start_run("d", with_input("last", "def"));
    EXPECT_THROW_WITH((void)work(), rankflow::usage_error, "data/sha256 was \"abc\"", "now \"def\"");
    run.fail("refused");
  }
  {
    auto run = rt.start_run("d", with_input("last", "abc"));
    EXPECT_EQ(work(), first);  // bit-identical, from the ledger
    run.stop();
  }
}

// --on-change restart (run_options::on_change): a call that differs from the
// recorded one runs afresh, and so does every later call (it may use the
// changed call's results); the calls before it keep what they reused. The
// old entries leave the run's ledger, so a later resume reuses only the new.
TEST(Resume, OnChangeRestartRunsTheChangedCallAndLaterOnesAfresh) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_restart");
  const auto plus = [](double a, double b) { return a + b; };
  const rankflow::map_options opts{.chunk_size = chunk};
  std::int64_t ran = 0;
  auto counted = [&ran](std::int64_t i) {
    ++ran;
    return f(i);
  };
  // The program as first written, then with call 2 over another range.
  auto program = [&](std::int64_t second_from) {
    std::tuple<std::vector<double>, double, std::vector<double>, std::int64_t, std::int64_t, std::int64_t> out;
    ran = 0;
    std::get<0>(out) = rt.parallel_map(rankflow::range(0, items), counted, opts);
    std::get<3>(out) = total(std::exchange(ran, 0));
    std::get<1>(out) = rt.mapreduce(rankflow::range(second_from, second_from + items), counted, plus, opts);
    std::get<4>(out) = total(std::exchange(ran, 0));
    std::get<2>(out) = rt.parallel_map(rankflow::range(0, items), counted, opts);
    std::get<5>(out) = total(std::exchange(ran, 0));
    return out;
  };
  const auto want = program(1000);  // outside any run: the new program's answer
  std::string id;
  {
    auto run = rt.start_run("restart", tracked_in(file));
    id = run.id();
    (void)program(0);
    run.fail("stopped for the test");
  }
  {
    // The default refuses, and changes nothing.
    auto run = rt.start_run("restart", resume_in(file));
    EXPECT_THROW_WITH((void)program(1000), rankflow::usage_error, "--resume: call #2", "range(1000, 1240)");
    run.fail("refused");
  }
  {
    auto o = resume_in(file);
    o.on_change = rankflow::change_policy::restart;
    auto run = rt.start_run("restart", o);
    const auto got = program(1000);
    EXPECT_EQ(std::get<3>(got), 0) << "call 1 did not change: reused";
    EXPECT_EQ(std::get<4>(got), items) << "call 2 changed: run afresh";
    EXPECT_EQ(std::get<5>(got), items) << "call 3 comes after a changed call: run afresh";
    if (rt.is_scheduler()) {
      EXPECT_EQ(std::get<0>(got), std::get<0>(want));
      EXPECT_EQ(std::get<2>(got), std::get<2>(want));
    }
    EXPECT_EQ(std::memcmp(&std::get<1>(got), &std::get<1>(want), sizeof(double)), 0);
    run.fail("stopped again, to resume the restarted calls");  // merged from the live journal
  }
  if (rt.is_scheduler()) {
    const auto rec = load(file, id);
    ASSERT_EQ(rec.calls.size(), 3u);
    EXPECT_NE(rec.calls.at(2).signature.find("range(1000, 1240)"), std::string::npos) << rec.calls.at(2).signature;
    std::map<std::pair<std::int64_t, std::int64_t>, int> ok;
    for (const auto& e : rec.ledger) ok[{e.call, e.partition}] += e.ok ? 1 : 0;
    EXPECT_EQ(ok.size(), 90u);
    for (const auto& [k, n] : ok) EXPECT_EQ(n, 1) << "call " << k.first << " partition " << k.second;
    EXPECT_EQ(rec.ledger_rows, rec.ledger.size());
  }
  {
    // The new program resumes with no change at all: everything is reused.
    auto run = rt.start_run("restart", resume_in(file));
    const auto got = program(1000);
    EXPECT_EQ(std::get<3>(got) + std::get<4>(got) + std::get<5>(got), 0);
    EXPECT_EQ(std::memcmp(&std::get<1>(got), &std::get<1>(want), sizeof(double)), 0);
    if (rt.is_scheduler()) {
      EXPECT_EQ(std::get<2>(got), std::get<2>(want));
    }
    run.stop();
  }
}

// A changed input with --on-change restart: the run records the new value
// and every call runs afresh. A change after the first call cannot restart
// what that call already reused, and is refused on every rank.
TEST(Resume, OnChangeRestartRecordsTheNewInputAndRunsEveryCall) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_restart_params");
  std::int64_t ran = 0;
  auto work = [&] {
    ran = 0;
    auto v = rt.parallel_map(
        rankflow::range(0, items),
        [&ran](std::int64_t i) {
          ++ran;
          return f(i);
        },
        {.chunk_size = chunk});
    return total(ran);
  };
  auto restart = [&] {
    auto o = resume_in(file);
    o.on_change = rankflow::change_policy::restart;
    return o;
  };
  const int assigner = rt.size() - 1;
  std::string id;
  {
    auto run = rt.start_run("p", tracked_in(file));
    id = run.id();
    if (rt.is_scheduler()) run["params/seed"] = 42;
    (void)work();
    (void)work();
    run.fail("stopped for the test");
  }
  {
    auto run = rt.start_run("p", restart());
    if (rt.rank() == assigner) run["params/seed"] = 7;
    EXPECT_EQ(work(), items);
    EXPECT_EQ(work(), items);
    run.wait();
    if (rt.is_scheduler()) {
      EXPECT_EQ(run["params/seed"].fetch<std::int64_t>(), 7);
    }
    run.fail("stopped again");
  }
  if (rt.is_scheduler()) {
    const auto rec = load(file, id);
    EXPECT_EQ(rec.ledger.size(), 60u) << "only the restarted calls' entries";
  }
  {
    // Seed 7 is now what the run recorded: resuming with it reuses all.
    auto run = rt.start_run("p", restart());
    if (rt.rank() == assigner) run["params/seed"] = 7;
    EXPECT_EQ(work(), 0);
    // Too late: call 1 reused results of seed 7.
    if (rt.rank() == assigner) run["params/seed"] = 9;
    EXPECT_THROW_WITH((void)work(), rankflow::usage_error, "params/seed was 7 in run " + id, "now 9",
                      "after call #1");
    run.fail("refused");
  }
}

// The journal record behind --on-change restart: it survives encoding, drops
// its calls' entries from the counts even when they live in the journal only
// (rank 0 of a live run), applies the new inputs it carries, and a damaged
// one is a format_error, not a crash or a silent skip.
TEST(Resume, LedgerRestartRecord) {
  auto entries = [](std::int64_t call, int n, std::size_t bytes) {
    tr::op o;
    o.kind = tr::op_kind::ledger;
    o.ledger.call = {call, "s", 8, 8, n, "sig"};
    for (int p = 0; p < n; ++p) {
      tr::ledger_entry e;
      e.call = call;
      e.partition = p;
      e.result.assign(bytes, 'x');
      o.ledger.entries.push_back(e);
    }
    return o;
  };
  for (const bool keep : {true, false}) {
    tr::run_record rec;
    rec.keep_points = keep;
    std::vector<tr::rejection> out;
    for (auto o : {entries(1, 2, 5), entries(2, 3, 7), entries(3, 1, 11)}) ASSERT_TRUE(rec.apply(o, out));
    ASSERT_EQ(rec.ledger_rows, 6u);
    ASSERT_EQ(rec.ledger_bytes, 10u + 21u + 11u);

    tr::op seed;
    seed.kind = tr::op_kind::assign;
    seed.path = "params/seed";
    seed.atom.type = rankflow::field_type::int_;
    seed.atom.i = 7;
    tr::op restart;
    restart.kind = tr::op_kind::ledger_restart;
    restart.ledger.call.call = 2;
    tr::encode(seed, restart.items.emplace_back());
    std::string enc;
    tr::encode(restart, enc);
    std::size_t pos = 0;
    auto back = tr::decode(enc, pos);
    ASSERT_EQ(pos, enc.size());
    ASSERT_EQ(back.kind, tr::op_kind::ledger_restart);
    ASSERT_EQ(back.items.size(), 1u);
    ASSERT_TRUE(rec.apply(back, out));
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(rec.ledger_rows, 2u);
    EXPECT_EQ(rec.ledger_bytes, 10u);
    EXPECT_EQ(rec.calls.size(), 1u);
    EXPECT_EQ(rec.ledger.size(), keep ? 2u : 0u);
    ASSERT_NE(rec.find("params/seed"), nullptr);
    EXPECT_EQ(rec.find("params/seed")->atom.i, 7);
    // The restarted call records again, under a new signature.
    auto again = entries(2, 1, 3);
    again.ledger.call.signature = "other";
    ASSERT_TRUE(rec.apply(again, out));
    EXPECT_EQ(rec.ledger_rows, 3u);
    EXPECT_EQ(rec.calls.at(2).signature, "other");

    restart.items = {"\x02not an operation"};
    EXPECT_THROW(rec.apply(restart, out), rankflow::format_error);
    restart.ledger.call.call = 0;
    restart.items.clear();
    enc.clear();
    tr::encode(restart, enc);
    pos = 0;
    EXPECT_THROW((void)tr::decode(enc, pos), rankflow::format_error);
  }
}

// map_options::record = false (bigsum's generation): the call fills memory a
// resumed program needs again, so it is not in the ledger, takes no call
// number, and runs in full on --resume while the recorded call after it
// reuses its finished partitions.
TEST(Resume, UnrecordedCallRunsInFullAgainAndTakesNoCallNumber) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("resume_unrecorded");
  const auto plus = [](double a, double b) { return a + b; };
  const rankflow::map_options fill_opts{
      .chunk_size = chunk, .sched = rankflow::schedule::blocked, .step = "fill", .record = false};
  const rankflow::map_options sum_opts{.chunk_size = chunk, .sched = rankflow::schedule::blocked, .step = "sum"};
  const double want = rt.mapreduce(rankflow::range(0, items), f, plus, sum_opts);
  // Each rank's own items, filled by the unrecorded call and read by the recorded one.
  const auto mine = rt.owned_items(rankflow::range(0, items), chunk);
  std::vector<double> memory;
  std::int64_t filled = 0;
  auto fill = [&] {
    memory.assign(static_cast<std::size_t>(mine.size()), 0.0);
    rt.parallel_map(
        rankflow::range(0, items),
        [&](std::int64_t i) {
          ++filled;
          memory[static_cast<std::size_t>(i - mine.first)] = f(i);
        },
        fill_opts);
  };
  auto from_memory = [&](std::int64_t i) { return memory[static_cast<std::size_t>(i - mine.first)]; };

  std::string id;
  {
    auto run = rt.start_run("unrecorded", tracked_in(file));
    id = run.id();
    fill();
    EXPECT_THROW(rt.mapreduce(
                     rankflow::range(0, items),
                     [&](std::int64_t i) {
                       if (i == poison) throw std::runtime_error("node lost");
                       return from_memory(i);
                     },
                     plus, sum_opts),
                 rankflow::task_error);
    run.fail("interrupted for the test");
  }
  EXPECT_EQ(total(filled), items);
  filled = 0;
  std::int64_t summed = 0;
  {
    auto run = rt.start_run("unrecorded", resume_in(file));
    EXPECT_EQ(run.id(), id);
    fill();
    const double got = rt.mapreduce(
        rankflow::range(0, items),
        [&](std::int64_t i) {
          ++summed;
          return from_memory(i);
        },
        plus, sum_opts);
    EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << got << " vs " << want;
    run.stop();
  }
  EXPECT_EQ(total(filled), items) << "an unrecorded call runs in full on --resume";
  EXPECT_LT(total(summed), items) << "the recorded call after it reuses its finished partitions";
  if (!rt.is_scheduler()) return;
  const auto rec = load(file, id);
  ASSERT_EQ(rec.calls.size(), 1u) << "only the recorded call is in the ledger";
  EXPECT_EQ(rec.calls.begin()->first, 1) << "and it keeps number 1";
  EXPECT_EQ(rec.calls.begin()->second.step, "sum");
}
