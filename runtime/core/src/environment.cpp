#include <rankflow/core/environment.hpp>

#include <limits.h>
#include <unistd.h>

#include <cstring>

#include <rankflow/core/log.hpp>
#include <rankflow/core/detail/transport.hpp>

namespace rankflow::detail {

namespace {
std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}
}  // namespace

bool mpi_environment::initialized() {
  int inited = 0;
  check_mpi(MPI_Initialized(&inited), "MPI_Initialized");
  return inited != 0;
}

mpi_environment::mpi_environment(int& argc, char**& argv) {
  if (!initialized()) {
    // MULTIPLE: a run's service thread on rank 0 receives every rank's
    // tracking while the main thread computes and schedules.
    check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &thread_level), "MPI_Init_thread");
    owns_mpi = true;
  } else {
    MPI_Query_thread(&thread_level);
  }
  // Errors come back as codes and become rankflow::mpi_error, instead of
  // MPI's default of killing the job with a terse message.
  check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  check_mpi(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm, &size), "MPI_Comm_size");

  host = host_name();
  std::vector<char> all(static_cast<std::size_t>(size) * (HOST_NAME_MAX + 1));
  std::vector<char> mine(HOST_NAME_MAX + 1, '\0');
  std::strncpy(mine.data(), host.c_str(), HOST_NAME_MAX);
  check_mpi(MPI_Allgather(mine.data(), HOST_NAME_MAX + 1, MPI_CHAR, all.data(), HOST_NAME_MAX + 1, MPI_CHAR, comm),
            "MPI_Allgather");
  for (int r = 0; r < size; ++r) hosts.emplace_back(all.data() + static_cast<std::size_t>(r) * (HOST_NAME_MAX + 1));
}

mpi_environment::~mpi_environment() { release(); }

void mpi_environment::release() noexcept {
  if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi && !finalized) MPI_Finalize();
  owns_mpi = false;
}

void mpi_environment::abort_job(const std::string& why, int code) {
  log::error() << why;
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return; if it ever did, end this rank
}

}  // namespace rankflow::detail
