// A run that stays live, for the web UI tests (tests/ui/ui_test.sh): it sets
// params/..., then appends one point to live/loss (FloatSeries) and live/count
// (IntSeries) every --interval seconds and makes each durable with wait(),
// until the file --until-file names exists, --points points were written, or
// --max-seconds passed. Then it stops the run (or fails it with --fail). With
// --map N, each interval is spent in a parallel_map of N partitions (sleeping
// interval/N each), so the run's ledger grows while it is live.
//
//   live_writer --experiment FILE [--until-file PATH] [--max-seconds 60] [--interval 0.3]
//               [--points N] [--map N] [--lr X] [--upload PATH] [--fail REASON] [rankflow flags]
//
// Prints "live_writer: RUN-N started" once the params and the first point are
// durable, and "live_writer: RUN-N stopped after K points" at the end (rank 0).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <thread>

#include <rankflow/rankflow.hpp>

namespace {
bool exists(const std::string& p) {
  struct stat st{};
  return !p.empty() && ::stat(p.c_str(), &st) == 0;
}
}  // namespace

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);  // takes its own flags (--experiment, ...) out of argv
  std::string until, upload, fail_reason;
  double max_seconds = 60, interval = 0.3, lr = 0.1;
  long max_points = -1, map = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      if (rt.is_scheduler()) std::fprintf(stderr, "live_writer: %s needs a value\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--until-file") {
      until = v;
    } else if (a == "--max-seconds") {
      max_seconds = std::atof(v.c_str());
    } else if (a == "--interval") {
      interval = std::atof(v.c_str());
    } else if (a == "--points") {
      max_points = std::atol(v.c_str());
    } else if (a == "--map") {
      map = std::atol(v.c_str());
    } else if (a == "--lr") {
      lr = std::atof(v.c_str());
    } else if (a == "--upload") {
      upload = v;
    } else if (a == "--fail") {
      fail_reason = v;
    } else {
      if (rt.is_scheduler()) std::fprintf(stderr, "live_writer: unknown option %s\n", a.c_str());
      return 2;
    }
  }

  auto run = rt.start_run("live");
  const bool root = rt.is_scheduler();
  if (root) {
    run["params/lr"] = lr;
    run["params/interval_s"] = interval;
    run["params/writer"] = "live_writer";
    if (!upload.empty()) run["artifacts/blob"].upload(upload);
  }
  const auto t0 = std::chrono::steady_clock::now();
  long k = 0;
  for (;; ++k) {
    if (root) {
      run["live/loss"].append(1.0 / static_cast<double>(k + 1));
      run["live/count"].append(k);
      if (k % 5 == 0) run["live/phase"].append("point " + std::to_string(k));
    }
    run.wait();  // durable: a reader of the journal sees the point now
    if (root && k == 0) {
      std::printf("live_writer: %s started\n", run.id().c_str());
      std::fflush(stdout);
    }
    // Rank 0 decides; every rank leaves the loop at the same point.
    int done = 0;
    if (root) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      done = exists(until) || s >= max_seconds || (max_points > 0 && k + 1 >= max_points);
    }
    MPI_Bcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (done) break;
    if (map > 0) {
      const auto each = std::chrono::duration<double>(interval / static_cast<double>(map));
      rt.parallel_map(
          rankflow::range(0, map),
          [&](std::int64_t i) {
            std::this_thread::sleep_for(each);
            return i;
          },
          {.chunk_size = 1, .step = "live_map"});
    } else if (interval > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(interval));
    }
  }
  if (fail_reason.empty()) {
    run.stop();
  } else {
    run.fail(fail_reason);
  }
  if (root) {
    std::printf("live_writer: %s stopped after %ld points\n", run.id().c_str(), k + 1);
    std::fflush(stdout);
  }
  return 0;
}
