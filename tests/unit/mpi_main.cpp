// Shared main for MPI tests: one rankflow::Runtime for the whole process,
// GoogleTest output from rank 0, failures from every rank prefixed with the
// rank, and the same exit code on all ranks.
#include "mpi_test.hpp"

#include <cstdio>
#include <memory>

namespace {
rankflow::Runtime* g_rt = nullptr;

class rank_failures : public testing::EmptyTestEventListener {
 public:
  explicit rank_failures(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed()) {
      std::fprintf(stderr, "[rank %d] FAILURE %s:%d\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
    }
  }

 private:
  int rank_;
};
}  // namespace

rankflow::Runtime& test_runtime() { return *g_rt; }

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  rankflow::Runtime rt(argc, argv);
  g_rt = &rt;
  auto& listeners = testing::UnitTest::GetInstance()->listeners();
  if (rt.rank() != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new rank_failures(rt.rank()));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  g_rt = nullptr;
  return failed;
}
