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

// Partitions on teams of k ranks (map_options::need.ranks): 10,000 one-item
// partitions of a trivial item, so the time is the team protocol's cost (the
// leader's announcement, each member's report and acknowledgement) on top of
// the scheduling one. k = 1 is the same call with one rank a partition
// (need given either way, so neither runs as a small call).
void BM_parallel_map_teams(benchmark::State& st) {
  auto& rt = bench_runtime();
  const int k = static_cast<int>(st.range(0));
  constexpr std::int64_t parts = 10'000;
  if (k > rt.size()) {
    st.SkipWithError("fewer ranks than a team");
    return;
  }
  rankflow::map_options o;
  o.chunk_size = 1;
  o.need = rankflow::resources{.ranks = k};
  double total = 0;
  for (auto _ : st) {
    const double t = timed_max([&] {
      auto out = rt.parallel_map(
          rankflow::range(0, parts), [](const rankflow::partition_context& c, std::int64_t i) { return i + c.member(); },
          o);
      benchmark::DoNotOptimize(out.data());
    });
    st.SetIterationTime(t);
    total += t;
  }
  st.counters["us_per_partition"] = total / st.iterations() / parts * 1e6;
  st.SetLabel(k == 1 ? "one rank each" : "teams of " + std::to_string(k));
}

}  // namespace

BENCHMARK(BM_parallel_map_teams)->Arg(1)->Arg(2)->Arg(4)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_map_serial_loop)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_map_mpi_handwritten)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_parallel_map)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
