// What `rankflow ui` and `rankflow report` cost (issue 16's speed goals):
// - the first page of the runs table of 100,000 runs, from a cold server
//   (the index read and filtered) and from a warm one (the index cached);
// - one 10M-point series reduced to a chart's width, cold (the run read)
//   and warm (another zoom window of the same run);
// - `rankflow report` of a run with 10,000 partitions and 20 series.
// The browser's part (drawing) is measured with RANKFLOW_BENCH_KEEP=1 (the
// experiments stay) and bench/ui_browser_timing.py (docs/benchmarks.md).
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "bench_util.hpp"
#include "synthetic.hpp"
#include "ui_commands.hpp"
#include "ui_data.hpp"

namespace {

namespace ui = rankflow::ui;

template <class F>
double rank0_seconds(F&& f) {
  double s = 0;
  if (bench_runtime().is_scheduler()) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  MPI_Bcast(&s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return s;
}

// Arg 0: a fresh server's first page; 1: a warm server's next page, sorted.
void BM_ui_runs_page(benchmark::State& state) {
  auto& rt = bench_runtime();
  const std::string file = "bench_ui_index.h5";
  const auto n = env_int("RANKFLOW_BENCH_INDEX_RUNS", 100000);
  remove_experiment(file);
  if (rt.is_scheduler()) make_synthetic_experiment(file, n);
  const bool warm = state.range(0) == 1;
  std::unique_ptr<ui::experiments> server;
  if (warm && rt.is_scheduler()) {
    server = std::make_unique<ui::experiments>(std::vector<std::string>{file});
    (void)server->runs({{"exp", "0"}});
  }
  std::size_t rows = 0;
  for (auto _ : state) {
    state.SetIterationTime(rank0_seconds([&] {
      if (warm) {
        rows = server->runs({{"exp", "0"}, {"offset", "100"}, {"sort", "-eval/acc"}, {"where", "status=succeeded"}})["rows"].size();
      } else {
        ui::experiments fresh({file});
        rows = fresh.runs({{"exp", "0"}})["rows"].size();
      }
    }));
  }
  state.counters["runs"] = static_cast<double>(n);
  state.counters["rows"] = static_cast<double>(rows);
  state.SetLabel(warm ? "warm server, page 2 of status=succeeded by -eval/acc" : "fresh server, first page");
  server.reset();
  if (env_int("RANKFLOW_BENCH_KEEP", 0) == 0) remove_experiment(file);
}

// Arg 0: a fresh server (the run read); 1: a warm one (a zoom window).
void BM_ui_series_10M(benchmark::State& state) {
  auto& rt = bench_runtime();
  const std::string file = "bench_ui_series.h5";
  const auto points = env_int("RANKFLOW_BENCH_UI_POINTS", 10000000);
  remove_experiment(file);
  {
    rankflow::run_options o;
    o.experiment = file;
    auto run = rt.start_run("uibench", o);
    if (rt.is_scheduler()) {
      auto s = run["train/loss"];
      for (std::int64_t k = 0; k < points; ++k) s.append(1.0 / static_cast<double>(k + 1) + (k % 1000 == 0 ? 1.0 : 0.0));
    }
    run.stop();
  }
  const bool warm = state.range(0) == 1;
  std::unique_ptr<ui::experiments> server;
  if (warm && rt.is_scheduler()) {
    server = std::make_unique<ui::experiments>(std::vector<std::string>{file});
    (void)server->series({{"exp", "0"}, {"id", "RUN-1"}, {"path", "train/loss"}});
  }
  std::size_t drawn = 0;
  for (auto _ : state) {
    state.SetIterationTime(rank0_seconds([&] {
      if (warm) {
        drawn = server->series({{"exp", "0"}, {"id", "RUN-1"}, {"path", "train/loss"}, {"from", "1000000"}, {"to", "6000000"}})["points"].size();
      } else {
        ui::experiments fresh({file});
        drawn = fresh.series({{"exp", "0"}, {"id", "RUN-1"}, {"path", "train/loss"}, {"width", "800"}})["points"].size();
      }
    }));
  }
  state.counters["points"] = static_cast<double>(points);
  state.counters["drawn"] = static_cast<double>(drawn);
  state.SetLabel(warm ? "warm server, a zoom window of 5M points" : "fresh server, whole series");
  server.reset();
  if (env_int("RANKFLOW_BENCH_KEEP", 0) == 0) remove_experiment(file);
}

void BM_ui_report(benchmark::State& state) {
  auto& rt = bench_runtime();
  const std::string file = "bench_ui_report.h5", out = "bench_ui_report.html";
  remove_experiment(file);
  {
    rankflow::run_options o;
    o.experiment = file;
    auto run = rt.start_run("uireport", o);
    rankflow::map_options m;
    m.chunk_size = 1;
    (void)rt.parallel_map(rankflow::range(0, 10000), [](std::int64_t i) { return i * i; }, m);
    if (rt.is_scheduler()) {
      for (int s = 0; s < 20; ++s) {
        auto series = run["metrics/m" + std::to_string(s)];
        for (int k = 0; k < 5000; ++k) series.append(static_cast<double>((k * (s + 1)) % 977));
      }
    }
    run.stop();
  }
  for (auto _ : state) {
    state.SetIterationTime(rank0_seconds([&] { ui::cmd_report(file, {"RUN-1"}, out); }));
  }
  struct stat st {};
  if (::stat(out.c_str(), &st) == 0) state.counters["report_MB"] = static_cast<double>(st.st_size) / 1e6;
  state.counters["partitions"] = 10000;
  state.counters["series"] = 20;
  if (env_int("RANKFLOW_BENCH_KEEP", 0) == 0) {  // 1: keep the report and its experiment to look at
    std::remove(out.c_str());
    remove_experiment(file);
  }
}

}  // namespace

BENCHMARK(BM_ui_runs_page)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_ui_series_10M)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_ui_report)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
