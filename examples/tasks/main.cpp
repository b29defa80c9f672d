// omega-ml's runtime on MPI ranks: tasks defined by name, placed by labels
// and resources, futures, and the three compositions.
//
//   mpirun -n 4 rankflow-tasks                      # rank 0 drives, ranks 1-3 work
//   mpirun -n 2 rankflow-tasks : -n 1 rankflow-tasks --labels bigmem
//   rankflow ui rankflow.h5                         # the run; its tasks in the timeline
//
// Every rank runs main(); rt.drive() returns on every rank when the driver is done.
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <rankflow/rankflow.hpp>

namespace {

// A least-squares line through y = 3x + 1 + noise, by gradient descent: a
// stand-in for a model fit that uses the threads the task was given.
struct model {
  double slope = 0, intercept = 0, loss = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& slope& intercept& loss;
  }
};

std::vector<double> make_data(int n) {
  std::vector<double> xy;
  for (int i = 0; i < n; ++i) {
    const double x = i / static_cast<double>(n);
    xy.push_back(x);
    xy.push_back(3 * x + 1 + 0.01 * std::sin(i * 12.9898));
  }
  return xy;
}

model fit(const std::vector<double>& xy, double lr) {
  model m;
  const std::size_t n = xy.size() / 2;
  for (int step = 0; step < 2000; ++step) {
    double gs = 0, gi = 0, loss = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double e = m.slope * xy[2 * i] + m.intercept - xy[2 * i + 1];
      gs += e * xy[2 * i];
      gi += e;
      loss += e * e;
    }
    m.slope -= lr * gs / n;
    m.intercept -= lr * gi / n;
    m.loss = loss / n;
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  using rankflow::call;

  // Every rank defines the same tasks before drive().
  rt.define("load", [](int n) { return make_data(n); });
  rt.define("fit", [](rankflow::task_context& ctx, const std::vector<double>& xy, double lr) {
    (void)ctx.threads();  // the cores this task holds: a threaded fit would use them
    return fit(xy, lr);
  });
  rt.define("loss", [](const model& m) { return m.loss; });
  rt.define("where", [](rankflow::task_context& ctx) { return ctx.rank(); });
  rt.define("partial_sum", [](int first, int last) {
    double s = 0;
    for (int i = first; i < last; ++i) s += 1.0 / (static_cast<double>(i) * i);
    return s;
  });
  rt.define("add_up",
            [](const std::vector<double>& parts) { return std::accumulate(parts.begin(), parts.end(), 0.0); });

  // The run records what the driver found, and every task's attempts in its
  // ledger (where, when, how they ended), which `rankflow ui` draws.
  auto run = rt.start_run("tasks");

  rt.drive([&](rankflow::Scheduler& s) {
    std::printf("workers:\n");
    bool bigmem = false;
    for (const auto& w : s.labels()) {
      std::string labels;
      for (const auto& l : w.labels) labels += (labels.empty() ? "" : ",") + l;
      std::printf("  rank %d on %s: %s; %s\n", w.rank, w.host.c_str(), labels.c_str(),
                  rankflow::to_string(w.capacity).c_str());
      bigmem = bigmem || w.has_label("bigmem");
    }

    // A future: submit, then get (the error of a failed task would be rethrown here).
    auto data = s.submit<std::vector<double>>("load", 1000);
    std::printf("load: %s, %zu points\n", rankflow::to_string(data.status()), data.get().size() / 2);

    // Only where the label is, if some rank has it.
    if (bigmem) std::printf("bigmem task ran on rank %d\n", s.require("bigmem").submit<int>("where").get());

    // sequence: load -> fit -> loss, each result passed on to the next task.
    auto seq = s.sequence({call("load", 1000), call("fit", 0.5), call("loss")});
    const double loss = seq.collect<double>();
    std::printf("sequence: loss %.3g after fit\n", loss);
    run["sequence/loss"] = loss;

    // parallel: a learning-rate sweep, one task each, two cores per fit where possible.
    const std::vector<double> rates{0.05, 0.1, 0.5, 1.0};
    std::vector<call> fits;
    for (double lr : rates) fits.push_back(call("fit", data.get(), lr));
    const auto models = s.parallel(fits).getall<model>();
    for (std::size_t i = 0; i < rates.size(); ++i) {
      std::printf("parallel: lr %.2f -> slope %.3f intercept %.3f\n", rates[i], models[i].slope, models[i].intercept);
      run["parallel/slope"].append(models[i].slope);
    }

    // mapreduce: sum 1/i^2 over 8 slices, then one task adds the parts.
    std::vector<call> parts;
    for (int k = 0; k < 8; ++k) parts.push_back(call("partial_sum", 1 + k * 125000, 1 + (k + 1) * 125000));
    const double zeta2 = s.mapreduce(parts, call("add_up")).collect<double>();
    std::printf("mapreduce: sum 1/i^2 = %.9f (pi^2/6 = %.9f)\n", zeta2, M_PI * M_PI / 6);
    run["mapreduce/zeta2"] = zeta2;
  });
  run.stop();
  return 0;
}
