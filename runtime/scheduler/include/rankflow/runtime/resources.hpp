// What a rank has and what work needs: the node's memory budget, a worker's
// capacity (worker_info) and a task's or partition's needs (resources). Issue #4's
// resource-aware placement builds
// on this; bigsum uses it to refuse a matrix that cannot fit before allocating.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

/// What a task (or one parallel_map partition) needs, Metaflow's @resources:
/// `rankflow::resources{.cpu = 4, .memory_mb = 60000, .gpu = 1}`. Memory is in
/// MiB (Slurm's "MB").
struct resources {
  int cpu = 1;
  std::int64_t memory_mb = 0;
  int gpu = 0;
  /// Tasks: worker ranks the task runs on at once (a gang), each of them
  /// holding cpu, memory_mb and gpu; the task gets a communicator of just
  /// those ranks (task_context::comm()). See docs/tasks.md, "Multi-rank tasks".
  int ranks = 1;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& cpu& memory_mb& gpu& ranks;
  }
};
/// "4 CPUs, 60000 MB, 1 GPU".
std::string to_string(const resources& r);

/// Whether a rank of `capacity` can ever run something that needs `need`: the
/// one rule for tasks (Scheduler) and parallel_map partitions (map_options::need).
constexpr bool fits(const resources& need, const resources& capacity) noexcept {
  return need.cpu <= capacity.cpu && need.memory_mb <= capacity.memory_mb && need.gpu <= capacity.gpu;
}
/// The order "the largest rank" is picked by in a refusal: CPUs, then memory, then GPUs.
constexpr bool larger(const resources& a, const resources& b) noexcept {
  if (a.cpu != b.cpu) return a.cpu > b.cpu;
  if (a.memory_mb != b.memory_mb) return a.memory_mb > b.memory_mb;
  return a.gpu > b.gpu;
}

/// A worker rank as rank 0 sees it: where it runs, its labels and its capacity.
struct worker_info {
  int rank = 0;
  std::string host;
  std::vector<std::string> labels;  ///< default, the host name, gpu (if any), then --labels
  resources capacity;               ///< the rank's CPUs, memory (MiB) and GPUs
  std::vector<int> gpu_ids;         ///< device numbers behind capacity.gpu
  std::string cpu_source;           ///< where each number came from, for messages
  std::string memory_source;
  std::string gpu_source;
  bool has_label(std::string_view label) const;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& rank& host& labels& capacity& gpu_ids& cpu_source& memory_source& gpu_source;
  }
};

/// This rank's worker description (what drive() gathers on rank 0). Collective
/// over `comm`: memory and GPUs are shared among the ranks of a node.
worker_info detect_worker(MPI_Comm comm, int rank, const std::string& host,
                          const std::vector<std::string>& extra_labels);

/// Celery's (and omega-ml's) task states.
enum class task_status { PENDING, STARTED, RETRY, SUCCESS, FAILURE };
const char* to_string(task_status s) noexcept;

}  // namespace rankflow
