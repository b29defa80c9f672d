// What produced a run, recorded by start_run without user code (issue 15,
// item 5): the source revision and a size-capped diff when the working
// directory is in a git checkout, a hash of the executable on every rank
// (a warning when ranks ran different binaries), the compiler, MPI, Boost and
// HDF5 versions, the job's environment from an allow-list, loaded
// environment modules, and each host's CPU model, cores and memory.
// Everything lands under `sys/provenance/` (docs/tracking.md, "Provenance").
#pragma once

#include <mpi.h>

#include <string>
#include <utility>
#include <vector>

namespace rankflow::tracking {

struct provenance {
  std::vector<std::pair<std::string, std::string>> strings;              ///< path -> String field
  std::vector<std::pair<std::string, std::vector<std::string>>> lists;  ///< path -> StringList field
  std::string diff;     ///< `git diff HEAD` (capped), a File field when not empty
  std::string warning;  ///< ranks ran different binaries: what differs, where
};

/// Largest diff kept; a bigger one is cut and says so in its last line.
inline constexpr std::size_t provenance_diff_cap = std::size_t{1} << 20;

/// Collective over `comm`: every rank hashes its executable and describes its
/// host; the result is complete on rank 0 (other ranks get an empty one).
/// Never throws for what it cannot find out (no git, no /proc): it leaves it out.
provenance collect_provenance(MPI_Comm comm, int rank, int size, const std::vector<std::string>& hosts);

/// The environment variables recorded: SLURM_*, OMP_*, RANKFLOW_*, CUDA_VISIBLE_DEVICES
/// (and nothing else: tokens and passwords live in other variables).
bool recorded_variable(const std::string& name);

}  // namespace rankflow::tracking
