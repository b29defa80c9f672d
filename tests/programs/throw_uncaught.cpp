// A task throws on the last rank and nobody catches the task_error: every rank
// must exit non-zero within seconds, with the rank and message in the output.
#include <rankflow/rankflow.hpp>

#include <stdexcept>

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  const int bad = rt.size() - 1;
  rt.parallel_map(rankflow::range(0, 100), [&](std::int64_t i) -> int {
    if (rt.rank() == bad) throw std::runtime_error("disk quota exceeded at item " + std::to_string(i));
    return 0;
  });
  return 0;
}
