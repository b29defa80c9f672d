// The last rank leaves main through an exception it catches outside the
// Runtime's scope, while the other ranks wait in a collective call. The
// Runtime's destructor must abort the job instead of leaving them waiting.
#include <rankflow/rankflow.hpp>

#include <cstdio>
#include <stdexcept>

int main(int argc, char** argv) {
  try {
    rankflow::Runtime rt(argc, argv);
    if (rt.size() > 1 && rt.rank() == rt.size() - 1) throw std::runtime_error("input file missing on this rank");
    rt.parallel_map(rankflow::range(0, 1000), [](std::int64_t i) { return i; });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "caught: %s\n", e.what());
    return 1;
  }
  return 0;
}
