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

}  // namespace

mpi_error::mpi_error(const std::string& routine, int code)
    : error(mpi_message(routine, code)), routine_(routine), code_(code) {}


namespace detail {
std::string sys_error(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}
}  // namespace detail

}  // namespace rankflow
