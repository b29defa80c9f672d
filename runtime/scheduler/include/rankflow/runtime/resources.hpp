// What a rank may use on its node. Issue #4's resource-aware placement builds
// on this; bigsum uses it to refuse a matrix that cannot fit before allocating.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>

namespace rankflow {

struct memory_budget {
  std::uint64_t node_bytes = 0;      ///< usable on this rank's node (the tightest limit found)
  int ranks_on_node = 1;             ///< ranks of the communicator sharing the node
  std::uint64_t per_rank_bytes = 0;  ///< node_bytes / ranks_on_node
  std::string source;                ///< which limit was tightest, for messages
};

/// Collective over `comm`. The node's limit is the smallest of MemAvailable,
/// the cgroup (v2 or v1) limit minus current usage, and Slurm's
/// SLURM_MEM_PER_NODE / SLURM_MEM_PER_CPU allocation, shared evenly by the
/// ranks on the node.
memory_budget query_memory(MPI_Comm comm);

/// Bytes as "51.2 GB" (decimal units, as `free -h --si` and Slurm's --mem G).
std::string format_bytes(std::uint64_t bytes);

}  // namespace rankflow
