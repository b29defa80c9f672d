// A thin RAII layer over parallel HDF5, the base of rankflow's experiment
// files (issue #3). Every failing HDF5 call becomes rankflow::storage_error
// naming the call, the object and HDF5's own error stack; HDF5's habit of
// printing that stack to stderr is switched off.
//
// Debian's HDF5 is built without thread safety: call these from one thread.
#pragma once

#include <hdf5.h>
#include <mpi.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <rankflow/tracking/errors.hpp>

namespace rankflow {

namespace h5 {

/// Owns one hid_t and closes it with the matching H5?close.
class handle {
 public:
  handle() = default;
  explicit handle(hid_t id) : id_(id) {}
  handle(handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  handle& operator=(handle&& o) noexcept;
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;
  ~handle();
  hid_t id() const noexcept { return id_; }
  /// Gives up ownership (after the caller closed it and checked the result).
  hid_t release() noexcept {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }
  explicit operator bool() const noexcept { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

/// Throws storage_error when `id` < 0 (or `status` < 0 for herr_t calls).
hid_t check(hid_t id, const char* call, const std::string& object);

/// Creates (truncating) `path` for collective use by every rank of `comm`,
/// with the MPI-IO driver. Collective.
handle create_parallel(const std::string& path, MPI_Comm comm);
/// Opens an existing file read-only, on one rank, with the default driver.
handle open_read(const std::string& path);

/// Writes this rank's block of a row-major N-d double dataset: `block` holds
/// prod(block_shape) values placed at `offset` in a dataset of `global_shape`.
/// Every rank of the file's communicator calls it (a rank with nothing to
/// write passes an empty block); the transfer is collective (MPI-IO).
void write_block(hid_t file, const std::string& name, const double* block,
                 const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                 const std::vector<std::uint64_t>& offset);

/// Same for any element type: `file_type` is stored, `mem_type` describes
/// `block`. Returns the dataset so the caller can add attributes (also a
/// collective operation: every rank must write the same ones).
handle write_block(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, const void* block,
                   const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                   const std::vector<std::uint64_t>& offset);

/// Scalar attributes: a variable-length UTF-8 string, or a double.
void write_attr(hid_t obj, const char* name, const std::string& value);
void write_attr(hid_t obj, const char* name, double value);
void write_attr(hid_t obj, const char* name, std::int64_t value);
/// A 1-d attribute of UTF-8 strings.
void write_attr(hid_t obj, const char* name, const std::vector<std::string>& values);

/// Calls `fn(name, info)` for every link of the group `group`, in name order
/// (H5Literate). An exception thrown by `fn` never crosses HDF5's C frames,
/// which it would leave half-unwound (HDF5 then crashes at exit): the callback
/// catches it, stops the iteration, and it is rethrown here once H5Literate
/// has returned. `what` names the group in errors.
void for_each_link(hid_t group, const std::string& what,
                   const std::function<void(const char* name, const H5L_info_t& info)>& fn);

/// Identity of an object within the open files of this process: a second
/// hard link to an object gives the same key (how readers detect cycles).
struct object_key {
  unsigned long fileno = 0;
  haddr_t addr = 0;
  auto operator<=>(const object_key&) const = default;
};
/// The key and type of the object `name` names under `loc` (the link is
/// followed). Throws storage_error.
object_key key_of(hid_t loc, const std::string& name, H5O_type_t* type = nullptr);

/// The path HDF5 knows an open object by ("/runs/RUN-1/params"), or "?".
std::string name_of(hid_t obj);

/// Reads a whole double dataset (for tests and tools).
std::vector<double> read_all(hid_t file, const std::string& name, std::vector<std::uint64_t>* shape = nullptr);

}  // namespace h5
}  // namespace rankflow
