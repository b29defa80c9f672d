// MPI first, then Google Benchmark; only rank 0 prints. The context records
// the rank count and host so saved JSON says where the numbers came from.
#include <unistd.h>

#include "bench_util.hpp"

namespace {
rankflow::Runtime* g_rt = nullptr;

class silent_reporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};
}  // namespace

rankflow::Runtime& bench_runtime() { return *g_rt; }

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  g_rt = &rt;
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("mpi_ranks", std::to_string(rt.size()));
  benchmark::AddCustomContext("host", rt.host());
  if (rt.is_scheduler()) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    silent_reporter quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  benchmark::Shutdown();
  g_rt = nullptr;
  return 0;
}
