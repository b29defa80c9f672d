// parallel_map of 1,000,000 trivial tasks (i*i): automatic chunks and chunk 1,
// beside a plain loop on one rank and a hand-written MPI static split + gather.
#include <vector>

#include "bench_util.hpp"

namespace {

constexpr std::int64_t n = 1'000'000;

void per_task(benchmark::State& st, double seconds) {
  st.counters["us_per_task"] = seconds / st.iterations() / n * 1e6;
}

void BM_map_serial_loop(benchmark::State& st) {
  double total = 0;
  for (auto _ : st) {
    std::vector<std::int64_t> out;
    const double t = timed_max([&] {
      if (!bench_runtime().is_scheduler()) return;
      out.reserve(n);
      for (std::int64_t i = 0; i < n; ++i) out.push_back(i * i);
      benchmark::DoNotOptimize(out.data());
    });
    st.SetIterationTime(t);
    total += t;
  }
  per_task(st, total);
}

void BM_map_mpi_handwritten(benchmark::State& st) {
  auto& rt = bench_runtime();
  double total = 0;
  for (auto _ : st) {
    const double t = timed_max([&] {
      std::vector<int> counts(rt.size()), displs(rt.size());
      for (int r = 0; r < rt.size(); ++r) {
        displs[r] = static_cast<int>(n * r / rt.size());
        counts[r] = static_cast<int>(n * (r + 1) / rt.size()) - displs[r];
      }
      std::vector<std::int64_t> mine;
      mine.reserve(counts[rt.rank()]);
      for (std::int64_t i = displs[rt.rank()]; i < displs[rt.rank()] + counts[rt.rank()]; ++i) mine.push_back(i * i);
      std::vector<std::int64_t> out(rt.is_scheduler() ? n : 0);
      MPI_Gatherv(mine.data(), counts[rt.rank()], MPI_INT64_T, out.data(), counts.data(), displs.data(), MPI_INT64_T,
                  0, MPI_COMM_WORLD);
      benchmark::DoNotOptimize(out.data());
    });
    st.SetIterationTime(t);
    total += t;
  }
  per_task(st, total);
}

void BM_parallel_map(benchmark::State& st) {
  auto& rt = bench_runtime();
  const std::int64_t chunk = st.range(0);
  double total = 0;
  for (auto _ : st) {
    const double t = timed_max([&] {
      auto out = rt.parallel_map(rankflow::range(0, n), [](std::int64_t i) { return i * i; }, {.chunk_size = chunk});
      benchmark::DoNotOptimize(out.data());
    });
    st.SetIterationTime(t);
    total += t;
  }
  per_task(st, total);
  st.SetLabel(chunk == 0 ? "auto chunk" : "chunk " + std::to_string(chunk));
}

}  // namespace

BENCHMARK(BM_map_serial_loop)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_map_mpi_handwritten)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_parallel_map)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
