// Running a helper command from an MPI process (git for provenance, squeue
// for the job's end): posix_spawn, never fork.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace rankflow::detail {

/// Runs `argv` (no shell; argv[0] is looked up in PATH) and returns its
/// standard output, at most `cap` bytes (`*cut` is set when there was more);
/// its standard error goes to /dev/null. "" on any failure: the command is
/// missing, cannot start, or exits with a code other than 0 or by a signal.
/// posix_spawn, not fork: an MPI process must not fork (Open MPI warns, and
/// InfiniBand's registered memory does not survive it); glibc spawns with
/// CLONE_VFORK, which copies nothing.
std::string capture_output(const std::vector<std::string>& argv, std::size_t cap, bool* cut = nullptr);

}  // namespace rankflow::detail
