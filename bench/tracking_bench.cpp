// Tracking speed, against plain HDF5 and plain write(2) in the same binary:
//  - 1,000,000 float series points from every rank, durable after wait(),
//    against one process writing the same points with plain HDF5 (+ fsync);
//  - the collective array write of a rows x rows double matrix against one
//    process write()+fsync of the same bytes to the same disk;
//  - bigsum with and without tracking.
// Sizes: RANKFLOW_BENCH_POINTS (default 1000000 per rank),
// RANKFLOW_BENCH_ARRAY_ROWS (default 20000), RANKFLOW_BENCH_ROWS/COLS (bigsum).
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "../examples/bigsum/bigsum.hpp"
#include "bench_util.hpp"
#include "h5.hpp"  // tracking/src: HDF5 helpers private to rankflow (HDF5 is ours, not the user's)

namespace {

std::int64_t points() { return env_int("RANKFLOW_BENCH_POINTS", 1000000); }

void clean(const std::string& file) {
  if (bench_runtime().is_scheduler()) {
    std::remove(file.c_str());
    std::system(("rm -rf '" + file + ".d'").c_str());
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  ::fsync(fd);
  ::close(fd);
}

rankflow::run_options bench_run(const std::string& file) {
  rankflow::run_options o;
  o.experiment = file;
  o.mode = rankflow::tracking_mode::async;
  return o;
}

// One process writes every rank's points, laid out as rankflow lays out a
// series (chunked, extendible step/value/timestamp columns), then fsyncs.
void BM_series_plain_hdf5(benchmark::State& state) {
  auto& rt = bench_runtime();
  const auto n = static_cast<hsize_t>(points());
  const std::string file = "bench_series_plain.h5";
  std::vector<double> step(n), value(n), ts(n);
  for (hsize_t k = 0; k < n; ++k) {
    step[k] = static_cast<double>(k);
    value[k] = 1.0 / static_cast<double>(k + 1);
    ts[k] = 1.7e9 + static_cast<double>(k) * 1e-3;
  }
  for (auto _ : state) {
    const double s = timed_max([&] {
      if (!rt.is_scheduler()) return;
      hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
      for (int r = 0; r < rt.size(); ++r) {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        const std::string g = "runs/RUN-1/r" + std::to_string(r) + "/loss";
        hid_t grp = H5Gcreate2(f, g.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
        for (auto* col : {&step, &value, &ts}) {
          const char* name = col == &step ? "step" : col == &value ? "value" : "timestamp";
          const hsize_t maxd = H5S_UNLIMITED, chunk = 16384;
          hid_t sp = H5Screate_simple(1, &n, &maxd);
          hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
          H5Pset_chunk(dcpl, 1, &chunk);
          hid_t d = H5Dcreate2(grp, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
          H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, col->data());
          H5Dclose(d);
          H5Pclose(dcpl);
          H5Sclose(sp);
        }
        H5Gclose(grp);
        H5Pclose(lcpl);
      }
      H5Fclose(f);
      fsync_file(file);
    });
    state.SetIterationTime(s);
  }
  state.counters["points"] = static_cast<double>(n) * rt.size();
}

// Every rank appends its points; the time ends when every rank's wait() has
// returned, i.e. everything is accepted by rank 0 and fsync'd in the journal.
void BM_series_rankflow_wait(benchmark::State& state) {
  auto& rt = bench_runtime();
  const auto n = points();
  const std::string file = "bench_series_rankflow.h5";
  const bool with_stop = state.range(0) != 0;
  for (auto _ : state) {
    clean(file);
    auto run = rt.start_run("bench", bench_run(file));
    auto loss = run["r" + std::to_string(rt.rank()) + "/loss"];
    const double s = timed_max([&] {
      for (std::int64_t k = 0; k < n; ++k) loss.append(1.0 / static_cast<double>(k + 1));
      run.wait();
      if (with_stop) run.stop();  // ... and written into the HDF5 file
    });
    state.SetIterationTime(s);
  }
  state.counters["points"] = static_cast<double>(n) * rt.size();
}

std::int64_t array_rows() { return env_int("RANKFLOW_BENCH_ARRAY_ROWS", 20000); }

// One process writes the matrix's bytes sequentially with write(2), then fsync.
void BM_array_plain_write(benchmark::State& state) {
  auto& rt = bench_runtime();
  const auto rows = static_cast<std::size_t>(array_rows());
  const std::size_t bytes = rows * rows * sizeof(double);
  std::vector<char> buf;
  if (rt.is_scheduler()) buf.assign(std::size_t{64} << 20, 'x');
  for (auto _ : state) {
    const double s = timed_max([&] {
      if (!rt.is_scheduler()) return;
      const int fd = ::open("bench_plain.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
      for (std::size_t off = 0; off < bytes; off += buf.size()) {
        if (::write(fd, buf.data(), std::min(buf.size(), bytes - off)) < 0) std::abort();
      }
      ::fsync(fd);
      ::close(fd);
    });
    state.SetIterationTime(s);
    if (rt.is_scheduler()) std::remove("bench_plain.bin");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes) * state.iterations());
}

// Every rank writes its row block with Run::write_array (collective MPI-IO),
// made durable (fsync) before it is recorded.
void BM_array_rankflow_write(benchmark::State& state) {
  auto& rt = bench_runtime();
  const auto rows = static_cast<std::uint64_t>(array_rows());
  const auto mine = rt.owned_items(rankflow::range(0, static_cast<std::int64_t>(rows)), 1);
  std::vector<double> block(static_cast<std::size_t>(mine.size()) * rows, 0.5);
  const std::string file = "bench_array.h5";
  for (auto _ : state) {
    clean(file);
    auto run = rt.start_run("bench", bench_run(file));
    const double s = timed_max([&] {
      run.write_array("matrix", std::span<const double>(block), {static_cast<std::uint64_t>(mine.size()), rows},
                      {rows, rows}, {static_cast<std::uint64_t>(mine.first), 0});
    });
    state.SetIterationTime(s);
    run.stop();
    clean(file);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(rows * rows * sizeof(double)) * state.iterations());
}

bigsum::params bigsum_params() {
  bigsum::params p;
  p.rows = env_int("RANKFLOW_BENCH_ROWS", 20000);
  p.cols = env_int("RANKFLOW_BENCH_COLS", 20000);
  p.how = bigsum::mode::stream;
  return p;
}

// One bigsum as the program runs it: tracked (start_run, parameters,
// per-partition times, result, stop with the merge) or not.
void bigsum_once(const bigsum::params& p, const std::string& file, bool tracked) {
  auto& rt = bench_runtime();
  if (tracked) {
    auto run = rt.start_run("bigsum", bench_run(file));
    bigsum::track_params(rt, run, p);
    auto r = bigsum::run(rt, p, &run);
    bigsum::track(rt, run, p, r);
    run.stop();
  } else {
    benchmark::DoNotOptimize(bigsum::run(rt, p, nullptr).sum);
  }
}

// bigsum stream, 0: untracked, 1: tracked (start_run, per-partition times,
// fields, stop with the merge into the file), whole program time.
void BM_bigsum_tracking(benchmark::State& state) {
  const auto p = bigsum_params();
  const bool tracked = state.range(0) != 0;
  const std::string file = "bench_bigsum.h5";
  for (auto _ : state) {
    clean(file);
    state.SetIterationTime(timed_max([&] { bigsum_once(p, file, tracked); }));
  }
}

// The same comparison with tracked and untracked runs interleaved (order
// alternating), so that this VM's drift of several percent between minutes
// cancels out; reports both medians and the overhead.
void BM_bigsum_tracking_paired(benchmark::State& state) {
  const auto p = bigsum_params();
  const std::string file = "bench_bigsum_paired.h5";
  std::vector<double> plain, tracked;
  bool tracked_first = false;
  for (auto _ : state) {
    clean(file);
    double pair[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const bool track = (k == 0) == tracked_first;
      pair[track ? 1 : 0] = timed_max([&] { bigsum_once(p, file, track); });
    }
    tracked_first = !tracked_first;
    plain.push_back(pair[0]);
    tracked.push_back(pair[1]);
    state.SetIterationTime(pair[0] + pair[1]);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  state.counters["untracked_ms"] = median(plain) * 1e3;
  state.counters["tracked_ms"] = median(tracked) * 1e3;
  state.counters["overhead_pct"] = (median(tracked) / median(plain) - 1.0) * 100.0;
}

}  // namespace

BENCHMARK(BM_series_plain_hdf5)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_series_rankflow_wait)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_array_plain_write)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_array_rankflow_write)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_bigsum_tracking)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(7);
BENCHMARK(BM_bigsum_tracking_paired)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(9);
