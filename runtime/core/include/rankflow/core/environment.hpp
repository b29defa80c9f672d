// The MPI environment every rankflow program runs in, set up once by
// rankflow::Runtime: MPI initialised with the thread level rankflow needs,
// errors returned as codes (they become rankflow::mpi_error), a private
// duplicate of MPI_COMM_WORLD so that rankflow's messages never meet the
// program's, and every rank's host name.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace rankflow::detail {

class mpi_environment {
 public:
  /// True once MPI_Init has been called (by rankflow or by the program).
  static bool initialized();

  /// Initialises MPI with MPI_THREAD_MULTIPLE unless the program already did
  /// (then it keeps the program's level and leaves finalising to it). Sets
  /// MPI_ERRORS_RETURN on MPI_COMM_WORLD, duplicates it, and gathers every
  /// rank's host name. Collective over MPI_COMM_WORLD.
  mpi_environment(int& argc, char**& argv);
  /// Frees the communicator and finalises MPI when this object initialised it.
  ~mpi_environment();
  mpi_environment(const mpi_environment&) = delete;
  mpi_environment& operator=(const mpi_environment&) = delete;

  /// Frees the communicator and finalises now (the destructor then does nothing).
  void release() noexcept;

  /// A rank leaving by an exception while the others may still be in a
  /// collective call would leave them waiting forever: log `why` and abort
  /// the whole job with `code`.
  [[noreturn]] static void abort_job(const std::string& why, int code);

  MPI_Comm comm = MPI_COMM_NULL;  ///< private duplicate of MPI_COMM_WORLD
  int rank = 0;
  int size = 1;
  int thread_level = 0;  ///< what MPI provided
  bool owns_mpi = false;  ///< this object initialised MPI (and finalises it)
  std::string host;
  std::vector<std::string> hosts;  ///< host of every rank
};

}  // namespace rankflow::detail
