// Experiments at scale (issue 15):
//  - the stop of a run holding one series of RANKFLOW_BENCH_STOP_POINTS points
//    (default 2,000,000) into an experiment that already holds 1, 10 and 100
//    such runs: it must not grow with the experiment;
//  - `rankflow runs --where ... --sort ...` and `rankflow show` (the command,
//    as a user runs it: a process each time) on a synthetic experiment of
//    RANKFLOW_BENCH_INDEX_RUNS runs (default 100,000): index entries and links
//    made directly, plus one real run to show.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "bench_util.hpp"
#include "synthetic.hpp"
#include "experiment_io.hpp"  // tracking/src: create_experiment_file, the link layout
#include "run_index.hpp"

namespace {

// One run: a series of `points` points from rank 0, then stop() (timed when asked).
double one_run(const std::string& file, std::int64_t points, bool time_stop) {
  auto& rt = bench_runtime();
  rankflow::run_options o;
  o.experiment = file;
  auto run = rt.start_run("stopbench", o);
  if (rt.is_scheduler()) {
    auto loss = run["train/loss"];
    for (std::int64_t k = 0; k < points; ++k) loss.append(1.0 / static_cast<double>(k + 1));
  }
  run.wait();
  if (!time_stop) {
    run.stop();
    return 0;
  }
  // The earlier runs' files may still be in the page cache, dirty: written
  // back first, so that the stop's own fsync does not pay for them (the disk's
  // state, not the experiment's size). wait() made this run's journal durable.
  if (rt.is_scheduler()) ::sync();
  return timed_max([&] { run.stop(); });
}

void BM_stop_into_experiment(benchmark::State& state) {
  const std::string file = "bench_stop.h5";
  const auto points = env_int("RANKFLOW_BENCH_STOP_POINTS", 2000000);
  const auto before = state.range(0);
  // The control (range(1) == 1): the earlier runs go into another experiment,
  // so the disk and page cache hold the same data but the experiment stopped
  // into is new. A difference to the plain case is the experiment's size.
  const bool control = state.range(1) != 0;
  const std::string other = "bench_stop_other.h5";
  remove_experiment(file);
  remove_experiment(other);
  for (std::int64_t k = 0; k < before; ++k) one_run(control ? other : file, points, false);
  for (auto _ : state) state.SetIterationTime(one_run(file, points, true));
  state.counters["runs_before"] = static_cast<double>(before);
  state.counters["points"] = static_cast<double>(points);
  state.SetLabel(control ? "earlier runs in another experiment" : "earlier runs in this experiment");
  remove_experiment(file);
  remove_experiment(other);
}

namespace tr = rankflow::tracking;

double run_command(const std::string& args) {
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = std::system((std::string(RANKFLOW_CLI_PATH) + " " + args + " > /dev/null").c_str());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rc != 0) std::abort();
  return s;
}

void BM_index_commands(benchmark::State& state) {
  auto& rt = bench_runtime();
  const std::string file = "bench_index.h5";
  const auto n = env_int("RANKFLOW_BENCH_INDEX_RUNS", 100000);
  remove_experiment(file);
  if (rt.is_scheduler()) make_synthetic_experiment(file, n);
  MPI_Barrier(MPI_COMM_WORLD);
  one_run(file, 1000, false);  // one real run, RUN-<n+1>, for show
  const std::string show_id = "RUN-" + std::to_string(n + 1);
  const bool query = state.range(0) == 0;
  for (auto _ : state) {
    double s = 0;
    if (rt.is_scheduler()) {
      s = query ? run_command("runs " + file +
                              " --where 'params/lr<0.5 and status=succeeded' --sort -eval/acc "
                              "--cols id,params/lr,eval/acc --limit 20")
                : run_command("show " + file + " " + show_id);
    }
    MPI_Bcast(&s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    state.SetIterationTime(s);
  }
  state.SetLabel(query ? "rankflow runs --where --sort" : "rankflow show");
  state.counters["runs"] = static_cast<double>(n);
  struct stat st {};
  if (::stat((file + ".d/index").c_str(), &st) == 0) state.counters["index_MB"] = static_cast<double>(st.st_size) / 1e6;
  if (::stat(file.c_str(), &st) == 0) state.counters["links_MB"] = static_cast<double>(st.st_size) / 1e6;
  remove_experiment(file);
}

// start_run + stop of an empty run, with and without provenance: what
// recording provenance adds to every run (git runs only inside a checkout:
// the benchmark's working directory decides).
void BM_start_stop_provenance(benchmark::State& state) {
  auto& rt = bench_runtime();
  const std::string file = "bench_provenance.h5";
  remove_experiment(file);
  rankflow::run_options o;
  o.experiment = file;
  o.provenance = state.range(0) != 0;
  for (auto _ : state) {
    state.SetIterationTime(timed_max([&] {
      auto run = rt.start_run("prov", o);
      run.stop();
    }));
  }
  state.SetLabel(state.range(0) ? "provenance on" : "provenance off");
  remove_experiment(file);
}

}  // namespace

BENCHMARK(BM_start_stop_provenance)->Arg(0)->Arg(1)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(BM_stop_into_experiment)
    ->Args({1, 0})
    ->Args({10, 0})
    ->Args({100, 0})
    ->Args({100, 1})
    ->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_index_commands)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

// A synthetic experiment of n runs, as n stops would leave it: the index and
// the links (the run files are not made: `runs` never opens them).
void make_synthetic_experiment(const std::string& file, std::int64_t n) {
  tr::experiment_paths p(file);
  tr::make_sidecar_dir(p.dir);
  std::vector<tr::index_entry> entries;
  entries.reserve(static_cast<std::size_t>(n));
  for (std::int64_t k = 1; k <= n; ++k) {
    tr::index_entry e;
    e.info.id = "RUN-" + std::to_string(k);
    e.info.name = k % 3 ? "train" : "eval";
    e.info.status = k % 17 ? "succeeded" : "failed";
    e.info.start_time = 1.7e9 + static_cast<double>(k) * 60;
    e.info.end_time = e.info.start_time + 3600;
    e.info.ranks = 64;
    e.info.hosts.assign(4, "node" + std::to_string(k % 100));
    e.info.command_line = "train --lr " + std::to_string(k);
    e.info.context["slurm_array_job_id"] = std::to_string(1000 + k / 1000);
    e.info.context["slurm_array_task_id"] = std::to_string(k % 1000);
    for (const char* name : {"lr", "momentum", "wd", "batch", "epochs", "seed", "dropout", "width"}) {
      tr::atom_value a;
      a.type = rankflow::field_type::float_;
      a.d = static_cast<double>((k * 7919 + name[0]) % 100000) * 1e-5;
      e.scalars.emplace_back(std::string("params/") + name, a);
    }
    for (const char* name : {"train/loss", "eval/acc", "eval/loss"}) {
      tr::index_series s;
      s.path = name;
      s.type = rankflow::field_type::float_series;
      s.count = 10000;
      s.last_step = 9999;
      s.summary.add(static_cast<double>(k % 1000) / 1000);
      s.summary.add(static_cast<double>(k % 997) / 997);
      e.series.push_back(s);
    }
    entries.push_back(std::move(e));
  }
  const auto length = tr::append_index(p.index(), 0, entries);
  auto f = tr::create_experiment_file(file);
  auto lcpl = tr::lcpl_intermediate();
  for (std::int64_t k = 1; k <= n; ++k) {
    const std::string id = "RUN-" + std::to_string(k);
    tr::check(H5Lcreate_external(p.run_file_relative(id).c_str(), ("/runs/" + id).c_str(), f.id(),
                                 ("runs/" + id).c_str(), lcpl.id(), H5P_DEFAULT),
              "H5Lcreate_external", id);
  }
  tr::check(H5Adelete(f.id(), "index_bytes"), "H5Adelete", "index_bytes");
  tr::attr_num(f.id(), "index_bytes", static_cast<std::int64_t>(length));
}
