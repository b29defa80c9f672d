// The fixed cost of one collective call: programs that call parallel_map or
// mapreduce once per time step or solver iteration pay it every time. Each
// benchmark makes `calls` back-to-back calls over trivial functions and
// reports the mean per call (slowest rank), beside MPI_Allreduce and
// MPI_Bcast of one double in the same run.
#include <vector>

#include "bench_util.hpp"

namespace {

constexpr int calls = 400;

template <class Call>
void per_call(benchmark::State& st, Call&& call) {
  double total = 0;
  for (auto _ : st) {
    const double t = timed_max([&] {
      for (int k = 0; k < calls; ++k) call();
    });
    st.SetIterationTime(t);
    total += t;
  }
  st.counters["us_per_call"] = total / static_cast<double>(st.iterations()) / calls * 1e6;
}

void BM_call_mpi_allreduce(benchmark::State& st) {
  per_call(st, [] {
    double x = 1.0, y = 0.0;
    MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    benchmark::DoNotOptimize(y);
  });
}

void BM_call_mpi_bcast(benchmark::State& st) {
  per_call(st, [] {
    double x = 1.0;
    MPI_Bcast(&x, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    benchmark::DoNotOptimize(x);
  });
}

// Args: items, results_on_all_ranks, schedule (0 dynamic, 1 blocked).
void BM_call_parallel_map(benchmark::State& st) {
  auto& rt = bench_runtime();
  const rankflow::map_options o{.results_on_all_ranks = st.range(1) != 0,
                                .sched = st.range(2) ? rankflow::schedule::blocked : rankflow::schedule::dynamic};
  per_call(st, [&] {
    auto v = rt.parallel_map(
        rankflow::range(0, st.range(0)), [](std::int64_t i) { return i + 1; }, o);
    benchmark::DoNotOptimize(v.data());
  });
  st.SetLabel(std::to_string(st.range(0)) + " items" + (st.range(1) ? ", on all ranks" : "") +
              (st.range(2) ? ", blocked" : ""));
}

// Args: items, schedule.
void BM_call_mapreduce(benchmark::State& st) {
  auto& rt = bench_runtime();
  const rankflow::map_options o{.sched = st.range(1) ? rankflow::schedule::blocked : rankflow::schedule::dynamic};
  per_call(st, [&] {
    double s = rt.mapreduce(
        rankflow::range(0, st.range(0)), [](std::int64_t i) { return static_cast<double>(i); },
        [](double a, double b) { return a + b; }, o);
    benchmark::DoNotOptimize(s);
  });
  st.SetLabel(std::to_string(st.range(0)) + " items" + (st.range(1) ? ", blocked" : ""));
}

void BM_call_foreach(benchmark::State& st) {
  auto& rt = bench_runtime();
  const std::vector<int> items{1, 2};
  per_call(st, [&] {
    auto v = rt.foreach (items, [](int x) { return x * 2; });
    benchmark::DoNotOptimize(v.data());
  });
  st.SetLabel("2 items");
}

}  // namespace

BENCHMARK(BM_call_mpi_allreduce)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_call_mpi_bcast)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_call_parallel_map)
    ->Args({2, 0, 0})
    ->Args({2, 1, 0})
    ->Args({2, 0, 1})
    ->Args({64, 0, 0})
    ->Args({64, 1, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5);
BENCHMARK(BM_call_mapreduce)
    ->Args({2, 0})
    ->Args({2, 1})
    ->Args({64, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5);
BENCHMARK(BM_call_foreach)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
