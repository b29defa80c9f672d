// spacecadet's model_report: an argument written rankflow::artifact("features")
// is replaced, before the task runs, by that artifact of a tracked run.
//
//   mpirun -n 2 rankflow-model_report --experiment project.h5
//
// The first part logs the experiment "my-experiment" (as lazyscribe's
// project.log would); the second runs model_report with its features
// substituted on a worker rank.
#include <cstdio>
#include <string>
#include <vector>

#include <rankflow/rankflow.hpp>

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  const std::string experiment = rt.settings().experiment;

  {  // Track an experiment: its features and a parameter.
    auto run = rt.start_run("my-experiment");
    if (rt.is_scheduler()) {
      run["features"] = std::vector<std::string>{"a", "b", "c"};
      run["params/alpha"] = 0.5;
    }
    run.stop();
  }

  // The source run is fixed when the task is defined ...
  auto model_report = [](rankflow::task_context& ctx, const std::string& model_name,
                         const std::vector<std::string>& features) {
    std::string list;
    for (const auto& f : features) list += (list.empty() ? "" : ", ") + f;
    return "Model " + model_name + " uses the following features: " + list + " (rank " + std::to_string(ctx.rank()) +
           ")";
  };
  rt.define("model_report", model_report, {.from = rankflow::source{experiment, "my-experiment"}});
  // ... or left to the caller (application code vs. user code).
  rt.define("model_report_later", model_report);

  rt.drive([&](rankflow::Scheduler& s) {
    using rankflow::artifact;
    std::printf("%s\n", s.submit<std::string>("model_report", "My model name", artifact("features")).get().c_str());
    const rankflow::source src{experiment, "my-experiment"};
    std::printf(
        "%s\n",
        s.from(src).submit<std::string>("model_report_later", "Other model", artifact("features")).get().c_str());
    // A missing artifact is a clear task error, not a crash.
    try {
      s.from(src).submit<std::string>("model_report_later", "x", artifact("labels")).get();
    } catch (const rankflow::task_error& e) {
      std::printf("as expected: %s\n", e.what());
    }
  });
  return 0;
}
