// Driver-mode tasks: the submit-to-result round trip of an empty task, and
// empty tasks per second with many in flight, beside hand-written MPI doing
// the same exchanges (a ping-pong, and a master/worker loop that keeps each
// worker as busy as its CPUs allow) and a serial loop of direct calls.
//
// Every iteration is one drive() (or one hand-written exchange) of `k` tasks;
// rank 0 times the tasks alone, not drive()'s set-up, and shares the time.
#include <vector>

#include "bench_util.hpp"

namespace {

constexpr int round_trips = 2000;
constexpr int stream = 50000;

// Times what rank 0 does in `body` and gives every rank that time.
double rank0_seconds(double s) {
  MPI_Bcast(&s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return s;
}

void define_empty(rankflow::Runtime& rt) {
  rt.define("empty", [](int x) { return x; });
}

void report(benchmark::State& st, double total, int per_iteration) {
  st.counters["us_per_task"] = total / st.iterations() / per_iteration * 1e6;
  st.counters["tasks_per_s"] = per_iteration * st.iterations() / total;
}

void BM_tasks_serial_calls(benchmark::State& st) {
  std::function<int(int)> fn = [](int x) { return x; };
  double total = 0;
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    int acc = 0;
    for (int i = 0; i < stream; ++i) acc += fn(i);
    benchmark::DoNotOptimize(acc);
    const double t = rank0_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, stream);
}

void BM_tasks_round_trip(benchmark::State& st) {
  auto& rt = bench_runtime();
  define_empty(rt);
  double total = 0;
  for (auto _ : st) {
    double t = 0;
    rt.drive([&](rankflow::Scheduler& s) {
      s.submit<int>("empty", 0).get();  // warm: first contact with each worker
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < round_trips; ++i) benchmark::DoNotOptimize(s.submit<int>("empty", i).get());
      t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
    t = rank0_seconds(t);
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, round_trips);
}

// A multi-rank task's start latency (issue 17 item 3): round trips of an
// empty task on `ranks` workers at once (each member makes the task's
// communicator with MPI_Comm_create_group and frees it), against the same
// empty task on one rank, one after another. Needs ranks + 1 MPI ranks.
void BM_tasks_gang_round_trip(benchmark::State& st) {
  auto& rt = bench_runtime();
  const int ranks = static_cast<int>(st.range(0));
  rt.define("empty_member", [](rankflow::task_context& c, int x) { return x + c.member(); });
  if (rt.size() < ranks + 1 || (ranks > 1 && rt.size() < 3)) {
    st.SkipWithError("needs more ranks");
    for (auto _ : st) {
    }
    return;
  }
  constexpr int trips = 500;
  double total = 0;
  for (auto _ : st) {
    double t = 0;
    rt.drive([&](rankflow::Scheduler& s) {
      auto sub = s.with({.ranks = ranks});
      sub.submit<int>("empty_member", 0).get();  // warm
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < trips; ++i) {
        if (sub.submit<int>("empty_member", i).get() != i) st.SkipWithError("member 0's value did not come back");
      }
      t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
    t = rank0_seconds(t);
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, trips);
  st.SetLabel(std::to_string(ranks) + " rank(s) per task");
}

// MPI_Send/MPI_Recv ping-pong between rank 0 and rank 1 carrying the same
// few bytes a task and its result do.
void BM_tasks_mpi_pingpong(benchmark::State& st) {
  auto& rt = bench_runtime();
  double total = 0;
  for (auto _ : st) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t = 0;
    char buf[64] = {};
    if (rt.size() > 1 && rt.rank() <= 1) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < round_trips; ++i) {
        if (rt.rank() == 0) {
          MPI_Send(buf, 48, MPI_CHAR, 1, 7, MPI_COMM_WORLD);
          MPI_Recv(buf, 64, MPI_CHAR, 1, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
          MPI_Recv(buf, 64, MPI_CHAR, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          MPI_Send(buf, 40, MPI_CHAR, 0, 8, MPI_COMM_WORLD);
        }
      }
      t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    t = rank0_seconds(t);
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, round_trips);
}

void BM_tasks_throughput(benchmark::State& st) {
  auto& rt = bench_runtime();
  define_empty(rt);
  double total = 0;
  for (auto _ : st) {
    double t = 0;
    rt.drive([&](rankflow::Scheduler& s) {
      s.submit<int>("empty", 0).get();
      std::vector<rankflow::Future<int>> fs;
      fs.reserve(stream);
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < stream; ++i) fs.push_back(s.submit<int>("empty", i));
      s.wait_all();
      t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      benchmark::DoNotOptimize(fs.back().get());
    });
    t = rank0_seconds(t);
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, stream);
}

// Hand-written master/worker: rank 0 keeps `window` small requests in flight
// per worker (as many as the worker has CPUs in rankflow's placement) and
// sends the next one as each reply comes back.
void BM_tasks_mpi_master_worker(benchmark::State& st) {
  auto& rt = bench_runtime();
  const int window = static_cast<int>(rankflow::core_pool::detect_capacity().first);
  double total = 0;
  for (auto _ : st) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t = 0;
    const auto t0 = std::chrono::steady_clock::now();
    char buf[64] = {};
    if (rt.size() > 1) {
      if (rt.rank() == 0) {
        int sent = 0, done = 0;
        for (int w = 1; w < rt.size(); ++w)
          for (int k = 0; k < window && sent < stream; ++k, ++sent) MPI_Send(buf, 48, MPI_CHAR, w, 7, MPI_COMM_WORLD);
        while (done < stream) {
          MPI_Status s;
          MPI_Recv(buf, 64, MPI_CHAR, MPI_ANY_SOURCE, 8, MPI_COMM_WORLD, &s);
          ++done;
          if (sent < stream) {
            MPI_Send(buf, 48, MPI_CHAR, s.MPI_SOURCE, 7, MPI_COMM_WORLD);
            ++sent;
          }
        }
        for (int w = 1; w < rt.size(); ++w) MPI_Send(buf, 0, MPI_CHAR, w, 9, MPI_COMM_WORLD);
      } else {
        for (;;) {
          MPI_Status s;
          MPI_Recv(buf, 64, MPI_CHAR, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &s);
          if (s.MPI_TAG == 9) break;
          MPI_Send(buf, 40, MPI_CHAR, 0, 8, MPI_COMM_WORLD);
        }
      }
    }
    t = rank0_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, stream);
}

}  // namespace

BENCHMARK(BM_tasks_serial_calls)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_tasks_mpi_pingpong)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_tasks_round_trip)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_tasks_gang_round_trip)->Arg(1)->Arg(2)->Arg(3)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_tasks_mpi_master_worker)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_tasks_throughput)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
