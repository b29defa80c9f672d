// A parallel_map on teams of 2 ranks (map_options::need.ranks) where one
// member fails while the other is blocked in a plain MPI_Barrier on the
// partition's communicator, waiting for it forever. rankflow ends the job
// (exit 70) with an error naming the failure and the blocked rank instead of
// hanging. `leader` makes member 0 fail (member 1 blocks; member 0 notices),
// `follower` makes member 1 fail (member 0 blocks; member 1 notices, later).
// tests/scripts/team_blocked.sh runs it.
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <rankflow/rankflow.hpp>

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  const int failing = argc > 1 && std::strcmp(argv[1], "follower") == 0 ? 1 : 0;
  rankflow::map_options o;
  o.need = rankflow::resources{.ranks = 2};
  try {
    rt.parallel_map(
        rankflow::range(0, 4),
        [failing](const rankflow::partition_context& c, std::int64_t) {
          if (c.member() == failing) throw std::runtime_error("member " + std::to_string(failing) + " failed");
          MPI_Barrier(c.comm());  // nothing can end this wait
          return 0;
        },
        o);
    std::printf("call succeeded?\n");
  } catch (const std::exception& e) {
    std::printf("call failed: %s\n", e.what());
  }
  if (rt.is_scheduler()) std::printf("after the call\n");
  return 0;
}
