// A slow rank against backup copies (issue 17 item 1): one dynamic mapreduce
// of 64 partitions of 5 ms each, every rank healthy, then with the last rank
// 10x slower (a throttled or shared node), without and with backups, in one
// run. A partition "runs" by sleeping for its time, so that ranks sharing a
// core (-n 4 on 2 cores) do not slow each other and the numbers show the
// schedule alone. Counters: the ideal for the slowed job (its work over its
// ranks' capacity, 1 + 1/10 for the slow one, with every rank busy to the end)
// and how many backup copies each call made.
//
//   mpirun -n 2 build/bench/rankflow_bench --benchmark_filter=backups
#include <thread>

#include "bench_util.hpp"

namespace {

constexpr std::int64_t partitions = 64;
constexpr double cost_s = 5e-3;
constexpr int slowdown = 10;

void BM_backups_slow_rank(benchmark::State& st) {
  auto& rt = bench_runtime();
  const int setting = static_cast<int>(st.range(0));  // 0 healthy, 1 slowed without backups, 2 slowed with
  const bool slowed = setting > 0 && rt.size() > 1;
  const bool slow_here = slowed && rt.rank() == rt.size() - 1;
  const auto part = std::chrono::duration<double>(cost_s * (slow_here ? slowdown : 1));
  const rankflow::map_options opts{.chunk_size = 1, .step = "backups", .backups = setting == 2};
  double sum = 0;
  for (auto _ : st) {
    st.SetIterationTime(timed_max([&] {
      sum = rt.mapreduce(
          rankflow::range(0, partitions),
          [&](std::int64_t i) {
            std::this_thread::sleep_for(part);
            return static_cast<double>(i);
          },
          [](double a, double b) { return a + b; }, opts);
    }));
  }
  benchmark::DoNotOptimize(sum);
  const double capacity = slowed ? (rt.size() - 1) + 1.0 / slowdown : rt.size();
  st.counters["ideal_ms"] = partitions * cost_s / capacity * 1e3;
  st.SetLabel(setting == 0 ? "healthy" : setting == 1 ? "slow rank, no backups" : "slow rank, backups");
}

}  // namespace

BENCHMARK(BM_backups_slow_rank)->Arg(0)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

namespace {

// What the bookkeeping costs a healthy call: 100,000 trivial partitions
// (chunk 1, the protocol's worst case), backups off and on. Run with
// --small-call-us 0, or the second iteration on is a small call.
void BM_backups_overhead(benchmark::State& st) {
  auto& rt = bench_runtime();
  const rankflow::map_options opts{.chunk_size = 1, .backups = st.range(0) == 1};
  std::int64_t n = 0;
  for (auto _ : st) {
    st.SetIterationTime(timed_max([&] {
      n = rt.mapreduce(rankflow::range(0, 100000), [](std::int64_t i) { return i & 1; },
                       [](std::int64_t a, std::int64_t b) { return a + b; }, opts);
    }));
  }
  benchmark::DoNotOptimize(n);
  st.SetLabel(st.range(0) == 1 ? "backups on" : "backups off");
}

}  // namespace

BENCHMARK(BM_backups_overhead)->Arg(0)->Arg(1)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
