// Ranks that disagree, the way a buggy SPMD program makes them, with nothing
// caught: the job must end non-zero with a message naming both calls, never
// hang and never print a result.
//   disagree leave   the last rank returns from main at once (no call)
//   disagree kind    rank 0 calls mapreduce, the others parallel_map
//   disagree count   the last rank maps 99 items, the others 100
#include <rankflow/rankflow.hpp>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  const char* mode = argc > 1 ? argv[1] : "leave";
  const bool odd = rt.rank() == rt.size() - 1;
  auto id = [](std::int64_t i) { return i; };
  auto add = [](std::int64_t a, std::int64_t b) { return a + b; };
  std::int64_t sum = 0;
  if (std::strcmp(mode, "leave") == 0) {
    if (odd) return 0;
    for (auto v : rt.parallel_map(rankflow::range(0, 100), id)) sum += v;
  } else if (std::strcmp(mode, "kind") == 0) {
    if (rt.rank() == 0) {
      sum = rt.mapreduce(rankflow::range(0, 100), id, add);
    } else {
      for (auto v : rt.parallel_map(rankflow::range(0, 100), id)) sum += v;
    }
  } else {
    for (auto v : rt.parallel_map(rankflow::range(0, odd ? 99 : 100), id)) sum += v;
  }
  if (rt.is_scheduler()) std::printf("RESULT %lld\n", static_cast<long long>(sum));
  return 0;
}
