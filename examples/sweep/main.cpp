// A parameter sweep with foreach (Metaflow's foreach): one split per
// (learning rate, decay) pair, each split tracks its loss curve from the rank
// that runs it into the run's experiment file, and rank 0 records the best.
//
//   mpirun -n 4 rankflow-sweep --experiment sweep.h5
//   rankflow show sweep.h5 RUN-1
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <rankflow/rankflow.hpp>

namespace {
struct point {
  double lr = 0, decay = 0;
};
struct outcome {
  double final_loss = 0;
  int rank = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& final_loss& rank;
  }
};
}  // namespace

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  std::vector<point> grid;
  for (double lr : {0.01, 0.05, 0.1, 0.3})
    for (double decay : {0.0, 0.5, 0.9}) grid.push_back({lr, decay});

  auto run = rt.start_run("sweep");
  if (rt.is_scheduler()) run["params/grid_size"] = static_cast<std::int64_t>(grid.size());

  const auto results = rt.foreach (grid, [&](const point& p) {
    // A toy optimiser on f(w) = (w - 2)^2 with momentum `decay`.
    char base_buf[64];
    std::snprintf(base_buf, sizeof base_buf, "splits/lr_%.2f_decay_%.1f", p.lr, p.decay);
    const std::string base = base_buf;
    run[base + "/lr"] = p.lr;
    run[base + "/decay"] = p.decay;
    run[base + "/rank"] = rt.rank();
    double w = 0, v = 0, loss = 0;
    for (int step = 0; step < 50; ++step) {
      v = p.decay * v - p.lr * 2 * (w - 2);
      w += v;
      loss = (w - 2) * (w - 2);
      run[base + "/loss"].append(loss, {.step = static_cast<double>(step)});
    }
    return outcome{loss, rt.rank()};
  });

  if (rt.is_scheduler()) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < results.size(); ++i)
      if (results[i].final_loss < results[best].final_loss) best = i;
    run["best/lr"] = grid[best].lr;
    run["best/decay"] = grid[best].decay;
    run["best/loss"] = results[best].final_loss;
    std::printf("sweep: %zu splits; best lr %.2f decay %.1f, final loss %.3g (split ran on rank %d)\n", grid.size(),
                grid[best].lr, grid[best].decay, results[best].final_loss, results[best].rank);
  }
  run.stop();
  if (rt.is_scheduler()) std::printf("tracked in %s as %s\n", run.experiment().c_str(), run.id().c_str());
  return 0;
}
