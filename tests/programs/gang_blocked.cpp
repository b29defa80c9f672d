// A multi-rank task whose member 1 fails while member 0 is blocked in a plain
// MPI_Barrier on the task's communicator, waiting for member 1 forever. The
// task's future reports member 1's error at once; at the end of drive() the
// blocked member's rank cannot leave, and rankflow ends the job with an error
// naming it (after --peer-timeout, at least 5 s) instead of hanging.
// tests/scripts/gang_blocked.sh runs it.
#include <cstdio>
#include <stdexcept>

#include <rankflow/rankflow.hpp>

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  rt.define("blocked", [](rankflow::task_context& c) {
    if (c.member() == 1) throw std::runtime_error("member 1 failed before the barrier");
    MPI_Barrier(c.comm());  // not c.barrier(): nothing can end this wait
    return 0;
  });
  try {
    rt.drive([](rankflow::Scheduler& s) {
      auto f = s.with({.ranks = 2}).submit<int>("blocked");
      try {
        f.get();
        std::printf("task succeeded?\n");
      } catch (const rankflow::task_error& e) {
        std::printf("task failed: %s\n", e.what());
        std::fflush(stdout);
      }
    });
  } catch (const std::exception& e) {
    std::printf("drive failed: %s\n", e.what());
  }
  if (rt.is_scheduler()) std::printf("after drive\n");  // workers not blocked leave drive() too
  return 0;
}
