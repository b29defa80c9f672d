// bigsum three ways in one run: serial (one rank), hand-written MPI (static
// row partition, same generator, MPI_Reduce) and rankflow (materialize and
// stream), plus a STREAM-like read of the same bytes to rate the sum phase.
//
// Size from RANKFLOW_BENCH_ROWS / RANKFLOW_BENCH_COLS (default 20000 x 20000).
#include <cstdlib>
#include <memory>

#include "bench_util.hpp"
#include "bigsum.hpp"

namespace {

std::int64_t env_or(const char* name, std::int64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : dflt;
}
const std::int64_t rows = env_or("RANKFLOW_BENCH_ROWS", 20000);
const std::int64_t cols = env_or("RANKFLOW_BENCH_COLS", 20000);
constexpr std::uint64_t seed = 42;

void set_bytes(benchmark::State& st, double seconds_gen, double seconds_sum, std::int64_t iters) {
  st.counters["gen_ms"] = seconds_gen / iters * 1e3;
  st.counters["sum_ms"] = seconds_sum / iters * 1e3;
  st.counters["sum_GBps"] = seconds_sum > 0 ? rows * cols * 8.0 * iters / seconds_sum / 1e9 : 0;
}

// The serial program: one process, one array, fill then sum (rank 0 only).
void BM_bigsum_serial(benchmark::State& st) {
  auto& rt = bench_runtime();
  double gen = 0, sum_s = 0, sum = 0;
  for (auto _ : st) {
    double g = 0, s = 0;
    const double total = timed_max([&] {
      if (!rt.is_scheduler()) return;
      std::unique_ptr<double[]> m(new double[static_cast<std::size_t>(rows * cols)]);
      auto t0 = std::chrono::steady_clock::now();
      for (std::int64_t i = 0; i < rows; ++i) bigsum::generate_row(seed, i, m.get() + i * cols, cols);
      auto t1 = std::chrono::steady_clock::now();
      double acc = 0;
      for (std::int64_t i = 0; i < rows; ++i) acc += bigsum::row_sum(m.get() + i * cols, cols);
      sum = acc;
      g = std::chrono::duration<double>(t1 - t0).count();
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    });
    st.SetIterationTime(total);
    gen += g;
    sum_s += s;
  }
  set_bytes(st, gen, sum_s, st.iterations());
  benchmark::DoNotOptimize(sum);
}

// What a user writes by hand: rows split evenly, fill, sum, MPI_Reduce.
void BM_bigsum_mpi_handwritten(benchmark::State& st) {
  auto& rt = bench_runtime();
  const std::int64_t r0 = rows * rt.rank() / rt.size(), r1 = rows * (rt.rank() + 1) / rt.size();
  double gen = 0, sum_s = 0, sum = 0;
  for (auto _ : st) {
    std::unique_ptr<double[]> m(new double[static_cast<std::size_t>((r1 - r0) * cols)]);
    double g = 0, s = 0;
    const double total = timed_max([&] {
      auto t0 = std::chrono::steady_clock::now();
      for (std::int64_t i = r0; i < r1; ++i) bigsum::generate_row(seed, i, m.get() + (i - r0) * cols, cols);
      auto t1 = std::chrono::steady_clock::now();
      double local = 0;
      for (std::int64_t i = r0; i < r1; ++i) local += bigsum::row_sum(m.get() + (i - r0) * cols, cols);
      MPI_Reduce(&local, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
      g = std::chrono::duration<double>(t1 - t0).count();
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    });
    MPI_Allreduce(MPI_IN_PLACE, &g, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    st.SetIterationTime(total);
    gen += g;
    sum_s += s;
  }
  set_bytes(st, gen, sum_s, st.iterations());
  benchmark::DoNotOptimize(sum);
}

void BM_bigsum_rankflow(benchmark::State& st) {
  auto& rt = bench_runtime();
  bigsum::params p;
  p.rows = rows;
  p.cols = cols;
  p.seed = seed;
  p.how = st.range(0) == 0 ? bigsum::mode::materialize : bigsum::mode::stream;
  double gen = 0, sum_s = 0;
  for (auto _ : st) {
    bigsum::result r;
    const double total = timed_max([&] { r = bigsum::run(rt, p); });
    st.SetIterationTime(total);
    gen += r.generate_ms / 1e3;
    sum_s += r.sum_ms / 1e3;
  }
  set_bytes(st, gen, sum_s, st.iterations());
  st.SetLabel(p.how == bigsum::mode::materialize ? "materialize" : "stream");
}

// STREAM-like read: every rank sums its share of the bytes (already in memory),
// the ceiling for bigsum's sum phase on this machine.
void BM_stream_read(benchmark::State& st) {
  auto& rt = bench_runtime();
  const std::int64_t r0 = rows * rt.rank() / rt.size(), r1 = rows * (rt.rank() + 1) / rt.size();
  const std::size_t n = static_cast<std::size_t>((r1 - r0) * cols);
  std::unique_ptr<double[]> m(new double[n]);
  for (std::size_t i = 0; i < n; ++i) m[i] = static_cast<double>(i & 1023);
  double sum_s = 0, sink = 0;
  for (auto _ : st) {
    const double t = timed_max([&] {
      double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
      for (std::size_t i = 0; i + 8 <= n; i += 8) {
        a0 += m[i]; a1 += m[i + 1]; a2 += m[i + 2]; a3 += m[i + 3];
        a4 += m[i + 4]; a5 += m[i + 5]; a6 += m[i + 6]; a7 += m[i + 7];
      }
      sink += a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    });
    st.SetIterationTime(t);
    sum_s += t;
  }
  set_bytes(st, 0, sum_s, st.iterations());
  benchmark::DoNotOptimize(sink);
}

}  // namespace

BENCHMARK(BM_stream_read)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_bigsum_serial)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_bigsum_mpi_handwritten)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_bigsum_rankflow)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
