#include <rankflow/core/error.hpp>

#include <cerrno>
#include <cstring>

#include <mpi.h>

#include <string>

namespace rankflow {

namespace {
std::string mpi_message(const std::string& routine, int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  return routine + " failed: " + std::string(text, static_cast<std::size_t>(len)) + " (MPI error " +
         std::to_string(code) + ")";
}

std::string task_message(const task_error::details& d) {
  if (d.task_id >= 0) {
    std::string m = "task '" + d.step + "' (id " + std::to_string(d.task_id) + ")";
    if (d.rank < 0) return m + " failed: " + d.message;
    m += " failed on rank " + std::to_string(d.rank) + " (host " + d.host + ")";
    if (d.attempts > 1) m += " after " + std::to_string(d.attempts) + " attempts";
    return m + ": " + d.message;
  }
  std::string m = d.step + " failed: item " + std::to_string(d.item) + " (partition " + std::to_string(d.partition) +
                  ") raised on rank " + std::to_string(d.rank) + " (host " + d.host + ")";
  if (d.attempts > 1) m += " after " + std::to_string(d.attempts) + " attempts";
  return m + ": " + d.message;
}
}  // namespace

mpi_error::mpi_error(const std::string& routine, int code)
    : error(mpi_message(routine, code)), routine_(routine), code_(code) {}

task_error::task_error(details d) : error(task_message(d)), d_(std::move(d)) {}

namespace detail {
std::string sys_error(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}
}  // namespace detail

}  // namespace rankflow
