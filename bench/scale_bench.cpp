// Rank 0 as the scheduler at scale: how many partitions (and tasks) per
// second it hands out and collects when the work itself is trivial, and
// what each worker costs it in memory. Run at several rank counts, e.g.
//   mpirun --oversubscribe -n 64 build/bench/rankflow_bench --benchmark_filter=rank0
// (docs/design.md, "Rank 0 at scale", has the numbers and what they imply).
#include <fstream>
#include <map>
#include <thread>
#include <string>

#include "bench_util.hpp"
#include "engine_parts.hpp"  // the result frames workers send (runtime/scheduler/src)

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
  const auto before = rt.rank0_load();
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
  const auto after = rt.rank0_load();
  const double parts = static_cast<double>(after.partitions - before.partitions);
  const double msgs = static_cast<double>(after.messages - before.messages);
  st.counters["rank0_busy_us_per_partition"] = parts > 0 ? (after.busy_s - before.busy_s) / parts * 1e6 : 0;
  st.counters["messages_per_partition"] = parts > 0 ? msgs / parts : 0;
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

// Partitions of a given length (a sleep, so that 64 ranks on 2 cores do
// not slow each other): 50 per rank, chunk 1, dynamic. What rank 0 spends
// serving them (Runtime::rank0_load: poll rounds that handled or sent a
// message), per partition and per message, and how busy the ranks were
// (the partitions' time over ranks x wall). docs/design.md, "Rank 0 at
// scale", fits its model for 1,024 ranks to these counters.
void BM_rank0_serving(benchmark::State& st) {
  auto& rt = bench_runtime();
  const auto length = std::chrono::microseconds(st.range(0));
  const std::int64_t n = 50 * rt.size();
  const auto before = rt.rank0_load();
  double total = 0;
  for (auto _ : st) {
    const double t = timed_max([&] {
      auto out = rt.parallel_map(
          rankflow::range(0, n),
          [&](std::int64_t i) {
            std::this_thread::sleep_for(length);
            return i;
          },
          {.chunk_size = 1});
      benchmark::DoNotOptimize(out.data());
    });
    st.SetIterationTime(t);
    total += t;
  }
  const auto after = rt.rank0_load();
  const double parts = static_cast<double>(after.partitions - before.partitions);
  const double msgs = static_cast<double>(after.messages - before.messages);
  st.counters["rank0_busy_us_per_partition"] = parts > 0 ? (after.busy_s - before.busy_s) / parts * 1e6 : 0;
  st.counters["messages_per_partition"] = parts > 0 ? msgs / parts : 0;
  st.counters["rank0_busy_us_per_message"] = msgs > 0 ? (after.busy_s - before.busy_s) / msgs * 1e6 : 0;
  st.counters["ranks_busy"] =
      static_cast<double>(n) * static_cast<double>(st.range(0)) * 1e-6 * st.iterations() / (total * rt.size());
  st.counters["ranks"] = rt.size();
}

// Rank 0's own work per partition of a trivial chunk-1 parallel_map, without
// MPI: parse result frames of 256 entries (as workers batch them), decode
// each partition's vector and put it in order. The partitions arrive as from
// 16 workers, interleaved (p, p+16, p+32, ... per frame), so nearly all out of
// order. Beside it, the std::map the pending results used to wait in.
template <class R>
class map_ordered_results {  // the version before the slots (for comparison only)
 public:
  void put(std::int64_t p, std::vector<R>&& v) {
    if (p != next_) {
      pending_.emplace(p, std::move(v));
      return;
    }
    append(std::move(v));
    for (auto it = pending_.begin(); it != pending_.end() && it->first == next_; it = pending_.erase(it)) {
      append(std::move(it->second));
    }
  }
  std::vector<R> take() { return std::move(out_); }

 private:
  void append(std::vector<R>&& v) {
    for (auto& x : v) out_.push_back(std::move(x));
    ++next_;
  }
  std::vector<R> out_;
  std::map<std::int64_t, std::vector<R>> pending_;
  std::int64_t next_ = 0;
};

template <class Results>
void accept_frames(benchmark::State& st, Results make) {
  constexpr int workers = 16;
  std::vector<std::vector<rankflow::bytes>> by_worker(workers);
  for (int w = 0; w < workers; ++w) {
    rankflow::bytes f;
    int in_frame = 0;
    for (std::int64_t p = w; p < partitions; p += workers) {
      const std::size_t at = rankflow::detail::open_result(f, p, 1, 0.0);
      rankflow::encode(f, std::vector<std::int64_t>{p});
      rankflow::detail::close_result(f, at, 0.0);
      if (++in_frame == 256 || p + workers >= partitions) {
        by_worker[static_cast<std::size_t>(w)].push_back(std::move(f));
        f.clear();
        in_frame = 0;
      }
    }
  }
  // One frame from each worker in turn, as they would arrive.
  std::vector<const rankflow::bytes*> order;
  for (std::size_t k = 0; order.size() < partitions / 256 + workers; ++k) {
    bool any = false;
    for (const auto& w : by_worker) {
      if (k < w.size()) {
        order.push_back(&w[k]);
        any = true;
      }
    }
    if (!any) break;
  }
  for (auto _ : st) {
    auto res = make();
    for (const auto* f : order) {
      const char* d = f->data();
      std::size_t n = f->size();
      while (n > 0) {
        const auto e = rankflow::detail::next_result(d, n, partitions, 1);
        res.put(e.partition, rankflow::decode<std::vector<std::int64_t>>(e.data, e.size));
      }
    }
    auto out = res.take();
    if (static_cast<std::int64_t>(out.size()) != partitions) st.SkipWithError("results lost");
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["ns_per_partition"] =
      benchmark::Counter(static_cast<double>(partitions), benchmark::Counter::kIsIterationInvariantRate |
                                                              benchmark::Counter::kInvert);
}

void BM_rank0_accept(benchmark::State& st) {
  if (st.range(0) == 0) {
    st.SetLabel("slots (now)");
    accept_frames(st, [] {
      rankflow::detail::ordered_results<std::int64_t> r;
      r.reserve(partitions, partitions);
      return r;
    });
  } else {
    st.SetLabel("std::map (before)");
    accept_frames(st, [] { return map_ordered_results<std::int64_t>(); });
  }
}

}  // namespace

BENCHMARK(BM_rank0_accept)->Arg(0)->Arg(1)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_rank0_serving)->Arg(100)->Arg(300)->Arg(1000)->Arg(3000)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_rank0_partitions)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_rank0_tasks)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
