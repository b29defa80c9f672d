// A tracked program for the scripted tests (h5py/h5dump read-back, the CLI,
// kill -9 durability, two jobs sharing one file).
//
//   track_demo all  [rankflow flags]  every field type from every rank, then stop
//   track_demo loop [rankflow flags]  appends forever; prints "durable K" after
//                                     each wait(), for a test to kill it
#include <cstdio>
#include <string>
#include <thread>

#include <rankflow/rankflow.hpp>

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  const std::string what = argc > 1 ? argv[1] : "all";
  if (what == "all") {
    auto run = rt.start_run("demo");
    const auto me = "ranks/r" + std::to_string(rt.rank());
    if (rt.is_scheduler()) {
      run["params/lr"] = 0.001;
      run["params/batch"] = 64;
      run["params/shuffle"] = false;
      run["params/optimizer"] = "adam";
      run["params/when"] = rankflow::from_unix_seconds(1700000000.5);
      run["params/layers"] = std::vector<std::string>{"dense", "relu", "dense"};
      run["sys/tags"].add(std::vector<std::string>{"demo", "test"});
      run["artifacts/notes"].upload_bytes("hello, artifact\n", "notes.txt");
      for (int s = 0; s < 3; ++s) run["eval/msg"].append("epoch " + std::to_string(s));
    }
    for (int k = 0; k < 100; ++k) {
      run[me + "/loss"].append(1.0 / (k + 1));
      run[me + "/seen"].append(k * (rt.rank() + 1));
    }
    run[me + "/host"] = rt.host();
    // A 2-D array, rows split over the ranks: element (i, j) = i * 1000 + j.
    const std::uint64_t rows = 10, cols = 4;
    const auto mine = rt.owned_items(rankflow::range(0, rows), 1);
    std::vector<double> block;
    for (auto i = mine.first; i < mine.last; ++i)
      for (std::uint64_t j = 0; j < cols; ++j) block.push_back(static_cast<double>(i * 1000 + j));
    run.write_array("arrays/grid", block, {rows, cols}, {static_cast<std::uint64_t>(mine.first), 0});
    run.stop();
    if (rt.is_scheduler()) std::printf("run %s done\n", run.id().c_str());
    return 0;
  }
  if (what == "loop") {
    auto run = rt.start_run("loop");
    if (rt.is_scheduler()) std::printf("run %s started\n", run.id().c_str());
    std::fflush(stdout);
    for (long k = 0;; ++k) {
      // Every rank appends with an explicit step per rank-specific series, so
      // a test can tell exactly which points were made durable.
      run["loop/r" + std::to_string(rt.rank())].append(static_cast<double>(k), {.step = static_cast<double>(k)});
      if (rt.is_scheduler()) run["loop/last"] = k;
      if (k % 50 == 49) {
        run.wait();
        MPI_Barrier(MPI_COMM_WORLD);  // every rank's wait() returned
        if (rt.is_scheduler()) {
          std::printf("durable %ld\n", k);
          std::fflush(stdout);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  std::fprintf(stderr, "usage: track_demo all|loop [rankflow flags]\n");
  return 2;
}
