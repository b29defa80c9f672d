// Driver mode: define / drive / submit, futures, labels, resources, retries,
// compositions and artifact substitution, at 1-4 ranks. With one rank, rank 0
// is its own worker.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "mpi_test.hpp"

using namespace std::chrono_literals;
using rankflow::call;
using rankflow::resources;
using rankflow::Scheduler;
using rankflow::task_context;
using rankflow::task_status;

namespace {

std::atomic<int> running_now{0};
std::atomic<int> running_max{0};

// What a worker saw while running one task.
struct seen {
  int rank = -1;
  unsigned threads = 0;
  int max_concurrent = 0;
  double start = 0, end = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& rank& threads& max_concurrent& start& end;
  }
};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void define_common(rankflow::Runtime& rt) {
  rt.define("square", [](int x) { return x * x; });
  rt.define("whoami", [](task_context& c) { return c.rank(); });
  rt.define("nap", [](task_context& c, double seconds) {
    seen s;
    s.rank = c.rank();
    s.threads = c.threads();
    s.start = now_s();
    const int now = ++running_now;
    int prev = running_max.load();
    while (now > prev && !running_max.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    s.max_concurrent = running_max.load();
    --running_now;
    s.end = now_s();
    return s;
  });
  rt.define("boom", [](int code) -> int { throw std::runtime_error("bad input " + std::to_string(code)); });
  rt.define("flaky", [](task_context& c, int fail_times) {
    if (c.attempt() <= fail_times) throw std::runtime_error("flaky attempt " + std::to_string(c.attempt()));
    return c.attempt();
  });
  rt.define("load", [](int n) {
    std::vector<double> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 1.0);
    return v;
  });
  rt.define("scale", [](const std::vector<double>& v, double k) {
    auto out = v;
    for (auto& x : out) x *= k;
    return out;
  });
  rt.define("total", [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); });
  rt.define("sum_ints",
            [](const std::vector<int>& v, int offset) { return std::accumulate(v.begin(), v.end(), offset); });
  rt.define("note", [](const std::string& s) { (void)s; });
  // Fails until the file exists: the driver "fixes the input" and restarts.
  rt.define("needs_file", [](const std::string& path, int x) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("missing " + path);
    return x + 100;
  });
}

int total_cpus(const Scheduler& s) {
  int n = 0;
  for (const auto& w : s.labels()) n += w.capacity.cpu;
  return n;
}

}  // namespace

TEST(Tasks, FuturesReturnResultsAndStates) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    std::vector<rankflow::Future<int>> fs;
    for (int i = 0; i < 200; ++i) fs.push_back(s.submit<int>("square", i));
    for (int i = 0; i < 200; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].get(), i * i);
    EXPECT_EQ(fs[7].status(), task_status::SUCCESS);
    EXPECT_TRUE(fs[7].ready());
    EXPECT_EQ(fs[7].attempts(), 1);
    // More one-CPU naps than CPUs: the last cannot have started yet.
    const int cpus = total_cpus(s);
    std::vector<rankflow::Future<seen>> naps;
    for (int i = 0; i <= cpus; ++i) naps.push_back(s.submit<seen>("nap", 0.4));
    EXPECT_EQ(naps.back().status(), task_status::PENDING);
    EXPECT_EQ(naps.back().rank(), -1);
    EXPECT_EQ(naps.front().status(), task_status::STARTED);
    EXPECT_FALSE(naps.front().wait_for(1ms));
    EXPECT_TRUE(naps.back().wait_for(30s));
    EXPECT_EQ(naps.back().status(), task_status::SUCCESS);
    const auto workers = s.labels();
    EXPECT_TRUE(std::any_of(workers.begin(), workers.end(),
                            [&](const rankflow::worker_info& w) { return w.rank == naps.back().rank(); }));
    auto v = s.submit<void>("note", "hello");
    v.get();
    EXPECT_EQ(v.status(), task_status::SUCCESS);
  });
}

TEST(Tasks, FuturesKeepTheirResultsAfterDrive) {
  auto& rt = test_runtime();
  define_common(rt);
  rankflow::Future<int> kept, failed;
  rankflow::group g;
  rt.drive([&](Scheduler& s) {
    kept = s.submit<int>("square", 12);
    failed = s.submit<int>("boom", 1);
    g = s.parallel({call("square", 2), call("square", 3)});
  });  // returns once every task ended
  if (rt.is_scheduler()) {
    EXPECT_EQ(kept.get(), 144);
    EXPECT_EQ(kept.status(), task_status::SUCCESS);
    EXPECT_THROW_WITH(failed.get(), rankflow::task_error, "bad input 1");
    EXPECT_EQ(g.getall<int>(), (std::vector<int>{4, 9}));
    EXPECT_THROW_WITH(g.restart(), rankflow::usage_error, "has ended");
  }
}

TEST(Tasks, DriverOnRankZeroWorkersElsewhere) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    const auto workers = s.labels();
    ASSERT_EQ(workers.size(), static_cast<std::size_t>(std::max(1, rt.size() - 1)));
    std::set<int> ran;
    for (int i = 0; i < 40; ++i) ran.insert(s.submit<int>("whoami").get());
    if (rt.size() == 1) {
      EXPECT_EQ(ran, std::set<int>{0});  // the driver runs the tasks itself
    } else {
      EXPECT_EQ(ran.count(0), 0u);
    }
  });
}

TEST(Tasks, RemoteErrorNamesTaskRankHostAndMessage) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    auto f = s.submit<int>("boom", 7);
    try {
      f.get();
      ADD_FAILURE() << "expected task_error";
    } catch (const rankflow::task_error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.info().step, "boom");
      EXPECT_EQ(e.rank(), f.rank());
      EXPECT_EQ(e.host(), rt.hosts()[static_cast<std::size_t>(f.rank())]);
      for (const std::string& piece : std::vector<std::string>{"task 'boom'", "rank " + std::to_string(f.rank()),
                                                               "bad input 7", "std::runtime_error", e.host()}) {
        EXPECT_NE(what.find(piece), std::string::npos) << what;
      }
    }
    EXPECT_EQ(f.status(), task_status::FAILURE);
    // The worker lives on.
    EXPECT_EQ(s.submit<int>("square", 9).get(), 81);
  });
}

TEST(Tasks, BadSubmitsAreClearErrors) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    EXPECT_THROW_WITH(s.submit<int>("nope", 1), rankflow::usage_error, "no task named 'nope'", "square");
    EXPECT_THROW_WITH(s.submit<int>("square", 1, 2), rankflow::usage_error, "'square' takes 1 argument");
    EXPECT_THROW_WITH(s.submit<int>("square", std::string("x")), rankflow::usage_error, "argument 1 takes int",
                      "got std::string");
    EXPECT_THROW_WITH(s.submit<double>("square", 2), rankflow::usage_error, "returns int", "submit<int>");
    EXPECT_EQ(s.submit<int>("square", 3.0).get(), 9);  // arithmetic converts as in C++
    EXPECT_THROW_WITH(s.with({.cpu = 0}).submit<int>("square", 1), rankflow::usage_error, "cpu >= 1");
  });
  EXPECT_THROW_WITH(rt.drive([&](Scheduler&) { rt.define("late", [] { return 1; }); }), std::exception, "");
}

TEST(Tasks, LabelsRouteAndUnknownLabelsFail) {
  auto& rt = test_runtime();
  define_common(rt);
  const int special = rt.size() - 1;  // the last rank (rank 0 itself with -n 1)
  auto saved = rt.settings().labels;
  const int first = std::min(1, rt.size() - 1);  // the first worker
  rt.settings().labels =
      rt.rank() == special ? std::vector<std::string>{"special", "bigmem"} : std::vector<std::string>{};
  if (rt.rank() == first) rt.settings().labels.push_back("first");
  rt.drive([&](Scheduler& s) {
    for (const auto& w : s.labels()) {
      EXPECT_TRUE(w.has_label("default"));
      EXPECT_TRUE(w.has_label(w.host));
      EXPECT_EQ(w.has_label("special"), w.rank == special);
    }
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.require("special").submit<int>("whoami").get(), special);
    EXPECT_EQ(s.require("special").require("bigmem").submit<int>("whoami").get(), special);
    EXPECT_EQ(s.require(rt.hosts()[static_cast<std::size_t>(special)]).submit<int>("square", 4).get(), 16);
    EXPECT_THROW_WITH(s.require("gpu-a100"), rankflow::usage_error, "no worker has the label 'gpu-a100'", "default",
                      "special");
    // Two labels that exist, but not on one worker.
    if (first != special) {
      EXPECT_THROW_WITH(s.require("first").require("special").submit<int>("whoami"), rankflow::usage_error,
                        "no worker has all of the labels first,special");
    } else {
      EXPECT_EQ(s.require("first").require("special").submit<int>("whoami").get(), special);
    }
  });
  rt.settings().labels = saved;
}

TEST(Tasks, ResourcesPlaceAndRejectAndCapConcurrency) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    const auto workers = s.labels();
    int max_cpu = 0;
    for (const auto& w : workers) max_cpu = std::max(max_cpu, w.capacity.cpu);
    EXPECT_THROW_WITH(s.with({.cpu = max_cpu + 1}).submit<int>("square", 1), rankflow::resource_error,
                      "needs " + std::to_string(max_cpu + 1) + " CPUs", "the largest is rank", "CPUs from");
    EXPECT_THROW_WITH(s.with({.cpu = 1, .memory_mb = std::int64_t{1} << 40}).submit<int>("square", 1),
                      rankflow::resource_error, "MB", "largest");
    int max_gpu = 0;
    for (const auto& w : workers) max_gpu = std::max(max_gpu, w.capacity.gpu);
    EXPECT_THROW_WITH(s.with({.cpu = 1, .gpu = max_gpu + 1}).submit<int>("square", 1), rankflow::resource_error, "GPU");

    // One-CPU naps: several at once per worker, never more than its CPUs.
    std::vector<rankflow::Future<seen>> ones;
    for (int i = 0; i < 3 * total_cpus(s); ++i) ones.push_back(s.submit<seen>("nap", 0.05));
    // Naps that take a whole worker run alone on it, and get its CPUs as threads.
    std::vector<rankflow::Future<seen>> wholes;
    for (int i = 0; i < 2 * static_cast<int>(workers.size()); ++i) {
      wholes.push_back(s.with({.cpu = max_cpu}).submit<seen>("nap", 0.05));
    }
    std::map<int, std::vector<std::pair<seen, int>>> by_rank;  // rank -> (what ran, cpus)
    for (auto& f : ones) {
      const seen x = f.get();
      EXPECT_EQ(x.threads, 1u);
      by_rank[x.rank].emplace_back(x, 1);
    }
    for (auto& f : wholes) {
      const seen x = f.get();
      EXPECT_EQ(x.threads, static_cast<unsigned>(max_cpu));
      by_rank[x.rank].emplace_back(x, max_cpu);
    }
    for (const auto& [rank, runs] : by_rank) {
      const int owner = rank;  // clang 14 cannot capture a structured binding
      const auto w = std::find_if(workers.begin(), workers.end(), [&](const auto& wi) { return wi.rank == owner; });
      ASSERT_NE(w, workers.end());
      // At every start, the CPUs of the tasks running then never exceed the capacity.
      for (const auto& [a, cpus_a] : runs) {
        int in_use = 0;
        for (const auto& [b, cpus_b] : runs) {
          if (b.start <= a.start && a.start < b.end) in_use += cpus_b;
        }
        EXPECT_LE(in_use, w->capacity.cpu) << "rank " << rank;
      }
      for (const auto& r : runs) EXPECT_LE(r.first.max_concurrent, w->capacity.cpu);
    }
  });
}

TEST(Tasks, RetriesWithBackoffThenSuccessOrFailure) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    auto ok = s.retries(2, 0.01).submit<int>("flaky", 2);
    EXPECT_EQ(ok.get(), 3);
    EXPECT_EQ(ok.attempts(), 3);
    auto bad = s.retries(1, 0.01).submit<int>("flaky", 5);
    EXPECT_THROW_WITH(bad.get(), rankflow::task_error, "after 2 attempts", "flaky attempt 2");
    // Between attempts the state is RETRY.
    auto slow = s.retries(1, 1.0).submit<int>("flaky", 1);
    bool saw_retry = false;
    for (int i = 0; i < 2000 && !saw_retry && !slow.ready(); ++i) {
      saw_retry = slow.status() == task_status::RETRY;
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_TRUE(saw_retry);
    EXPECT_EQ(slow.get(), 2);
  });
}

TEST(Tasks, SequenceForwardsResults) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    auto g = s.sequence({call("load", 4), call("scale", 2.5), call("total")});
    EXPECT_EQ(g.collect<double>(), 25.0);  // (1+2+3+4) * 2.5
    EXPECT_EQ(g.future<std::vector<double>>(1).get(), (std::vector<double>{2.5, 5, 7.5, 10}));
    EXPECT_EQ(g.size(), 3u);
    EXPECT_TRUE(g.failed().empty());
    EXPECT_THROW_WITH(s.sequence({call("load", 4), call("square")}), rankflow::usage_error,
                      "'square' takes int as its first argument", "'load'");
    EXPECT_THROW_WITH(g.future<int>(2), rankflow::usage_error, "returns double");
  });
}

TEST(Tasks, ParallelAndMapreduceCollect) {
  auto& rt = test_runtime();
  define_common(rt);
  rt.drive([&](Scheduler& s) {
    std::vector<call> calls;
    for (int i = 0; i < 10; ++i) calls.emplace_back("square", i);
    auto p = s.parallel(calls);
    EXPECT_EQ(p.getall<int>(), (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}));
    auto m = s.mapreduce(calls, call("sum_ints", 1000));
    EXPECT_EQ(m.collect<int>(), 1285);
    EXPECT_EQ(m.size(), 11u);
    EXPECT_THROW_WITH(s.mapreduce(calls, call("total")), rankflow::usage_error, "std::vector<int>");
  });
}

TEST(Tasks, RestartRunsOnlyTheFailedParts) {
  auto& rt = test_runtime();
  define_common(rt);
  const std::string flag = "tasks_restart_np" + std::to_string(rt.size()) + ".flag";
  if (rt.is_scheduler()) std::remove(flag.c_str());
  MPI_Barrier(MPI_COMM_WORLD);
  rt.drive([&](Scheduler& s) {
    std::vector<call> calls{call("square", 2), call("needs_file", flag, 1), call("square", 3)};
    auto p = s.parallel(calls);
    p.wait();
    EXPECT_EQ(p.failed(), std::vector<std::size_t>{1});
    EXPECT_THROW_WITH(p.getall<int>(), rankflow::task_error, "missing " + flag);
    // needs_file takes (string, int): the sequence check refuses it before anything runs.
    EXPECT_THROW_WITH(s.sequence({call("load", 2), call("total"), call("needs_file", 1)}), rankflow::usage_error,
                      "'needs_file' takes std::string as its first argument");
  });
  rt.drive([&](Scheduler& s) {
    auto m = s.mapreduce({call("square", 2), call("needs_file", flag, 1), call("square", 3)}, call("sum_ints", 0));
    m.wait();
    EXPECT_EQ(m.failed(), (std::vector<std::size_t>{1, 3}));  // the combiner could not run
    EXPECT_THROW_WITH(m.collect<int>(), rankflow::task_error, "not run", "'needs_file'");
    auto seq = s.sequence({call("needs_file", flag, 5), call("square")});
    seq.wait();
    EXPECT_EQ(seq.failed(), (std::vector<std::size_t>{0, 1}));
    const int first_id = static_cast<int>(m.future<int>(0).id());
    std::ofstream(flag) << "fixed\n";
    m.restart();
    seq.restart();
    EXPECT_EQ(seq.collect<int>(), 105 * 105);
    EXPECT_EQ(m.collect<int>(), 4 + 101 + 9);
    EXPECT_EQ(static_cast<int>(m.future<int>(0).id()), first_id);  // kept, not run again
    EXPECT_TRUE(m.failed().empty());
  });
}

TEST(Tasks, DriverFailureReachesEveryRank) {
  auto& rt = test_runtime();
  define_common(rt);
  auto failing = [](Scheduler& s) {
    auto f = s.submit<seen>("nap", 0.2);  // running while the driver fails: it finishes, nothing hangs
    (void)f;
    throw std::runtime_error("driver bug");
  };
  if (rt.is_scheduler()) {
    EXPECT_THROW_WITH(rt.drive(failing), std::runtime_error, "driver bug");
  } else {
    EXPECT_THROW_WITH(rt.drive(failing), rankflow::error, "driver on rank 0 failed", "driver bug");
  }
  // An unhandled task failure is the same task_error on every rank.
  EXPECT_THROW_WITH(rt.drive([](Scheduler& s) { s.submit<int>("boom", 3).get(); }), rankflow::task_error, "task 'boom'",
                    "bad input 3");
  // And the ranks still work together afterwards.
  rt.drive([](Scheduler& s) { EXPECT_EQ(s.submit<int>("square", 5).get(), 25); });
}

TEST(Tasks, ArtifactArgumentsComeFromASourceRun) {
  auto& rt = test_runtime();
  define_common(rt);
  const auto file = fresh_experiment("tasks_artifacts");
  std::string id;
  {
    auto run = rt.start_run("features-run", tracked_in(file));
    if (rt.is_scheduler()) {
      run["features"] = std::vector<std::string>{"a", "b", "c"};
      run["lr"] = 0.25;
      run["n"] = 42;
      run["notes"].upload_bytes("hello bytes", "notes.txt");
      for (int i = 0; i < 3; ++i) run["loss"].append(1.0 / (i + 1));
    }
    id = run.id();
    run.stop();
  }
  auto report = [](const std::string& model, const std::vector<std::string>& features, double lr) {
    std::string s = model + ":";
    for (const auto& f : features) s += f;
    return s + "@" + std::to_string(lr);
  };
  rt.define("report", report, {.from = rankflow::source{file, "features-run"}});
  rt.define("report_later", report);
  rt.define("plus", [](int a, std::int64_t b) { return a + static_cast<int>(b); });
  rt.define("text", [](const std::string& s) { return s; });
  rt.define("curve", [](const std::vector<double>& v) { return v; });
  using rankflow::artifact;
  rt.drive([&](Scheduler& s) {
    // Source fixed at define time.
    EXPECT_EQ(s.submit<std::string>("report", "m1", artifact("features"), artifact("lr")).get(), "m1:abc@0.250000");
    // Source given at submit time, by id, by name and as the latest run; or inside the artifact.
    const rankflow::source by_id{file, id}, latest{file, ""};
    EXPECT_EQ(s.from(by_id).submit<std::string>("report_later", "m2", artifact("features"), 0.5).get(),
              "m2:abc@0.500000");
    EXPECT_EQ(s.from(latest).submit<int>("plus", artifact("n"), artifact("n")).get(), 84);
    EXPECT_EQ(s.submit<std::string>("text", artifact("notes", by_id)).get(), "hello bytes");
    EXPECT_EQ(s.submit<std::vector<double>>("curve", artifact("loss", by_id)).get(),
              (std::vector<double>{1.0, 0.5, 1.0 / 3}));

    // Errors: the task fails at once (no retries) and says what to fix.
    auto no_source = s.retries(3, 0.01).submit<std::string>("report_later", "m", artifact("features"), 1.0);
    EXPECT_THROW_WITH(no_source.get(), rankflow::task_error, "argument 2 of task 'report_later'",
                      "no source run was given");
    EXPECT_EQ(no_source.attempts(), 1);
    EXPECT_THROW_WITH(s.submit<std::string>("report", "m", artifact("nope"), 1.0).get(), rankflow::task_error,
                      "artifact 'nope' not found", "it has:", "features", "lr");
    EXPECT_THROW_WITH(s.submit<std::string>("report", "m", artifact("lr"), 1.0).get(), rankflow::task_error,
                      "artifact 'lr'", "is a Float field", "std::vector<std::string>");
    EXPECT_THROW_WITH(
        s.from({file, "no-such-run"}).submit<std::string>("report_later", "m", artifact("features"), 1.0).get(),
        rankflow::task_error, "no run with id or name 'no-such-run'", id);
    EXPECT_THROW_WITH(s.from({file + ".missing", ""}).submit<std::string>("text", artifact("notes")).get(),
                      rankflow::task_error, "does not exist");
  });
}

TEST(Tasks, PartitionNeedRunsOnlyOnRanksThatFit) {
  auto& rt = test_runtime();
  const int big = rt.size() - 1;
  // Declared memory per rank: only the last rank has 4000 MB.
  setenv("RANKFLOW_MEMORY_MB", rt.rank() == big ? "4000" : "100", 1);
  const auto where = rt.parallel_map(rankflow::range(0, 64), [&](std::int64_t) { return rt.rank(); },
                                     {.chunk_size = 4, .need = resources{.cpu = 1, .memory_mb = 1000}});
  if (rt.is_scheduler()) {
    ASSERT_EQ(where.size(), 64u);
    for (int r : where) EXPECT_EQ(r, big);
  }
  // mapreduce with a need: same sum as without.
  const auto total = rt.mapreduce(rankflow::range(0, 1000), [](std::int64_t i) { return i; }, std::plus<>{},
                                  {.need = resources{.cpu = 1, .memory_mb = 1000}});
  EXPECT_EQ(total, 999 * 1000 / 2);
  EXPECT_THROW_WITH(rt.parallel_map(rankflow::range(0, 8), [](std::int64_t i) { return i; },
                                    {.need = resources{.cpu = 1, .memory_mb = 1'000'000}}),
                    rankflow::resource_error, "each partition needs", "the largest is rank " + std::to_string(big),
                    "4000 MB");
  if (rt.size() > 1) {
    EXPECT_THROW_WITH(
        rt.parallel_map(rankflow::range(0, 8), [](std::int64_t i) { return i; },
                        {.sched = rankflow::schedule::blocked, .need = resources{.cpu = 1, .memory_mb = 1000}}),
        rankflow::usage_error, "use schedule::dynamic");
  }
  unsetenv("RANKFLOW_MEMORY_MB");
}
