// The experiment-file reader (tracking::list_runs and load_run): what
// `rankflow runs/show/export`, `--resume` and read-only jobs do with a file
// found on disk. Any bytes must list and load runs or throw a rankflow error
// (format_error naming the file), never crash, hang or exhaust memory.
//
// The reader is serial HDF5 on one process and makes no MPI call, so no
// MPI_Init is needed. HDF5 itself is not instrumented: a crash inside
// libhdf5 still stops the fuzzer, with HDF5 frames on the stack.
#include <string>

#include <rankflow/core/error.hpp>
#include <rankflow/tracking/experiment.hpp>

#include "fuzz_util.hpp"

using namespace rankflow;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tracking::set_other_file_advice("fuzz input");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // No sidecar directory exists beside it: only the HDF5 file is read.
  static const std::string path = fuzz::scratch_dir() + "/experiment.h5";
  fuzz::write_file(path, data, size);
  try {
    for (const auto& run : tracking::list_runs(path)) {
      try {
        (void)tracking::load_run(path, run.id, true);
      } catch (const rankflow::error&) {
        // One damaged run must not hide the others: the next is still read.
      }
    }
  } catch (const rankflow::error&) {
  }
  return 0;
}
