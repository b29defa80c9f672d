// Task Bench's measure (Slaughter et al., SC20): efficiency against task
// granularity, and METG(50%), the smallest task that still runs at 50%
// efficiency. Each task is Task Bench's compute-bound kernel: a dependent
// chain of `iterations` multiply-adds. Three graphs, each beside the same
// graph in plain MPI in the same run:
//   - trivial: width x steps independent tasks (rankflow: one parallel_map,
//     automatic chunk; MPI: a static split and one MPI_Allreduce);
//   - stencil: `steps` steps of `width` points, each needing its two
//     neighbours of the step before (rankflow: a parallel_map per step with
//     results_on_all_ranks; MPI: a halo exchange with MPI_Sendrecv per step);
//   - tasks: width x steps independent driver-mode tasks (rankflow: submit
//     all, then get; MPI: a master/worker loop, one task per message).
// Args: graph (0 trivial, 1 stencil, 2 tasks), system (0 rankflow, 1 MPI),
// log2(iterations). Counters: task_us (wall time x ranks / tasks: the
// granularity) and rate (iterations per second). bench/taskbench_metg.py
// turns the JSON into efficiency curves and METG(50%) (docs/benchmarks.md).
#include <cmath>
#include <vector>

#include "bench_util.hpp"

namespace {

// Task Bench's compute_bound kernel: a chain the compiler cannot shorten.
// Not inlined: every system runs the same machine code (inlined into a
// loop over tasks, the compiler scheduled it 2.5x faster in the MPI
// versions than inside rankflow's lambdas, which measured the compiler).
__attribute__((noinline)) double kernel(std::int64_t iterations, double x) noexcept {
  double a = x;
  for (std::int64_t k = 0; k < iterations; ++k) a = a * 0.9999999 + 1e-7;
  return a;
}

int width_for(int ranks) { return 4 * ranks; }
constexpr int steps = 50;

double trivial_rankflow(std::int64_t it, int width) {
  auto& rt = bench_runtime();
  return rt.mapreduce(
      rankflow::range(0, static_cast<std::int64_t>(width) * steps),
      [it](std::int64_t i) { return kernel(it, static_cast<double>(i)); }, [](double a, double b) { return a + b; });
}

double trivial_mpi(std::int64_t it, int width) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::int64_t n = static_cast<std::int64_t>(width) * steps;
  double s = 0;
  for (std::int64_t i = n * rank / size; i < n * (rank + 1) / size; ++i) s += kernel(it, static_cast<double>(i));
  MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return s;
}

double stencil_rankflow(std::int64_t it, int width) {
  auto& rt = bench_runtime();
  std::vector<double> prev(static_cast<std::size_t>(width), 1.0);
  const rankflow::map_options o{.results_on_all_ranks = true, .step = "stencil"};
  for (int t = 0; t < steps; ++t) {
    prev = rt.parallel_map(
        rankflow::range(0, width),
        [&prev, it, width](std::int64_t i) {
          const double l = i > 0 ? prev[i - 1] : 0.0, r = i + 1 < width ? prev[i + 1] : 0.0;
          return kernel(it, (l + prev[i] + r) / 3);
        },
        o);
  }
  return prev[0];
}

double stencil_mpi(std::int64_t it, int width) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int first = width * rank / size, last = width * (rank + 1) / size, n = last - first;
  std::vector<double> cur(static_cast<std::size_t>(n) + 2, 1.0), next(cur.size());
  const int left = rank > 0 ? rank - 1 : MPI_PROC_NULL, right = rank + 1 < size ? rank + 1 : MPI_PROC_NULL;
  for (int t = 0; t < steps; ++t) {
    cur[0] = cur[static_cast<std::size_t>(n) + 1] = 0.0;
    MPI_Sendrecv(&cur[1], 1, MPI_DOUBLE, left, 0, &cur[static_cast<std::size_t>(n) + 1], 1, MPI_DOUBLE, right, 0,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&cur[static_cast<std::size_t>(n)], 1, MPI_DOUBLE, right, 1, &cur[0], 1, MPI_DOUBLE, left, 1,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (int i = 1; i <= n; ++i) next[i] = kernel(it, (cur[i - 1] + cur[i] + cur[i + 1]) / 3);
    std::swap(cur, next);
  }
  double s = n > 0 ? cur[1] : 0.0;
  MPI_Bcast(&s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return s;
}

double tasks_rankflow(std::int64_t it, int width) {
  auto& rt = bench_runtime();
  double s = 0;
  rt.drive([&](rankflow::Scheduler& sch) {
    std::vector<rankflow::Future<double>> f;
    const int n = width * steps;
    f.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) f.push_back(sch.submit<double>("taskbench", it, static_cast<double>(i)));
    for (auto& x : f) s += x.get();
  });
  MPI_Bcast(&s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return s;
}

// Hand-written master/worker: rank 0 deals one task per message, a few in
// flight per worker; with one rank, it runs them itself.
double tasks_mpi(std::int64_t it, int width) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int n = width * steps;
  double s = 0;
  if (size == 1) {
    for (int i = 0; i < n; ++i) s += kernel(it, i);
    return s;
  }
  if (rank == 0) {
    int sent = 0, done = 0;
    for (int w = 1; w < size; ++w) {
      for (int k = 0; k < 2 && sent < n; ++k, ++sent) MPI_Send(&sent, 1, MPI_INT, w, 0, MPI_COMM_WORLD);
    }
    while (done < n) {
      double r = 0;
      MPI_Status st;
      MPI_Recv(&r, 1, MPI_DOUBLE, MPI_ANY_SOURCE, 1, MPI_COMM_WORLD, &st);
      s += r;
      ++done;
      const int next = sent < n ? sent++ : -1;
      if (next >= 0) MPI_Send(&next, 1, MPI_INT, st.MPI_SOURCE, 0, MPI_COMM_WORLD);
    }
    for (int w = 1; w < size; ++w) {
      const int stop = -1;
      MPI_Send(&stop, 1, MPI_INT, w, 0, MPI_COMM_WORLD);
    }
  } else {
    for (;;) {
      int i = 0;
      MPI_Recv(&i, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (i < 0) break;
      const double r = kernel(it, i);
      MPI_Send(&r, 1, MPI_DOUBLE, 0, 1, MPI_COMM_WORLD);
    }
  }
  MPI_Bcast(&s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return s;
}

void BM_taskbench(benchmark::State& st) {
  auto& rt = bench_runtime();
  static bool defined = false;
  if (!defined) {
    rt.define("taskbench", [](std::int64_t it, double x) { return kernel(it, x); });
    defined = true;
  }
  const int graph = static_cast<int>(st.range(0)), system = static_cast<int>(st.range(1));
  const std::int64_t it = std::int64_t{1} << st.range(2);
  const int width = width_for(rt.size());
  using fn = double (*)(std::int64_t, int);
  const fn impl[3][2] = {{trivial_rankflow, trivial_mpi}, {stencil_rankflow, stencil_mpi}, {tasks_rankflow, tasks_mpi}};
  double total = 0, sink = 0;
  for (auto _ : st) {
    const double t = timed_max([&] { sink += impl[graph][system](it, width); });
    st.SetIterationTime(t);
    total += t;
  }
  benchmark::DoNotOptimize(sink);
  const double tasks = static_cast<double>(width) * steps;
  const double wall = total / static_cast<double>(st.iterations());
  st.counters["task_us"] = wall * rt.size() / tasks * 1e6;
  st.counters["rate"] = tasks * static_cast<double>(it) / wall;
  st.counters["iterations"] = static_cast<double>(it);
  static const char* graphs[] = {"trivial", "stencil", "tasks"};
  st.SetLabel(std::string(graphs[graph]) + (system ? " mpi" : " rankflow"));
}

void taskbench_args(benchmark::internal::Benchmark* b) {
  for (int graph = 0; graph < 3; ++graph) {
    for (int system = 0; system < 2; ++system) {
      for (int lg = 4; lg <= 20; lg += 2) b->Args({graph, system, lg});
    }
  }
}

}  // namespace

BENCHMARK(BM_taskbench)->Apply(taskbench_args)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
