// Rank 0 as the scheduler at scale: how many partitions (and tasks) per
// second it hands out and collects when the work itself is trivial, and
// what each worker costs it in memory. Run at several rank counts, e.g.
//   mpirun --oversubscribe -n 64 build/bench/rankflow_bench --benchmark_filter=rank0
// (docs/design.md, "Rank 0 at scale", has the numbers and what they imply).
#include <fstream>
#include <string>

#include "bench_util.hpp"

namespace {

constexpr std::int64_t partitions = 20000;

// Rank 0's resident memory now and at its peak (kB), from /proc.
std::pair<double, double> rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  double now = 0, peak = 0;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) now = std::stod(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) peak = std::stod(line.substr(6));
  }
  return {now, peak};
}

void report(benchmark::State& st, double total, std::int64_t per_iteration, const char* what) {
  auto& rt = bench_runtime();
  st.counters[std::string(what) + "_per_s"] = static_cast<double>(per_iteration) * st.iterations() / total;
  st.counters["us_per_" + std::string(what)] = total / st.iterations() / static_cast<double>(per_iteration) * 1e6;
  const auto [now, peak] = rss_kb();
  st.counters["rank0_rss_MB"] = now / 1024;
  st.counters["rank0_peak_MB"] = peak / 1024;
  st.counters["ranks"] = rt.size();
}

// parallel_map with chunk 1 over trivial items: every partition is one
// assignment and one result message through rank 0.
void BM_rank0_partitions(benchmark::State& st) {
  auto& rt = bench_runtime();
  double total = 0;
  for (auto _ : st) {
    const double t = timed_max([&] {
      auto out = rt.parallel_map(rankflow::range(0, partitions), [](std::int64_t i) { return i; }, {.chunk_size = 1});
      benchmark::DoNotOptimize(out.data());
    });
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, partitions, "partition");
}

void BM_rank0_tasks(benchmark::State& st) {
  auto& rt = bench_runtime();
  rt.define("noop", [](int x) { return x; });
  double total = 0;
  for (auto _ : st) {
    double t = 0;
    rt.drive([&](rankflow::Scheduler& s) {
      const auto t0 = std::chrono::steady_clock::now();
      for (std::int64_t i = 0; i < partitions; ++i) s.submit<int>("noop", static_cast<int>(i));
      s.wait_all();
      t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
    MPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    st.SetIterationTime(t);
    total += t;
  }
  report(st, total, partitions, "task");
}

}  // namespace

BENCHMARK(BM_rank0_partitions)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_rank0_tasks)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
