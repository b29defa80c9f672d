// rankflow::Run::write_array: a collective array write, checked on every
// rank and agreed on before any collective HDF5 call (docs/design.md,
// "Tracking": arrays are written collectively into their own files).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rankflow/tracking/run.hpp>

#include "run_impl.hpp"

namespace rankflow {

using tracking::op;
using tracking::op_kind;

// Never throws: write_array must not fail on one rank before the ranks agree
// (see write_array_raw). A block that is not whole rows gets no shape, and
// write_array_raw reports it on every rank.
std::vector<std::uint64_t> Run::row_block_shape(std::size_t n, const std::vector<std::uint64_t>& global_shape) {
  if (global_shape.empty()) return {};
  std::uint64_t row = 1;
  for (std::size_t d = 1; d < global_shape.size(); ++d) {
    if (__builtin_mul_overflow(row, global_shape[d], &row)) return {};
  }
  if (row == 0 || n % row != 0) return {};
  std::vector<std::uint64_t> shape = global_shape;
  shape[0] = n / row;
  return shape;
}

namespace {
hid_t h5_type(const std::string& dtype, bool memory) {
  if (dtype == "f8") return memory ? H5T_NATIVE_DOUBLE : H5T_IEEE_F64LE;
  if (dtype == "f4") return memory ? H5T_NATIVE_FLOAT : H5T_IEEE_F32LE;
  if (dtype == "i8") return memory ? H5T_NATIVE_INT64 : H5T_STD_I64LE;
  if (dtype == "i4") return memory ? H5T_NATIVE_INT32 : H5T_STD_I32LE;
  return memory ? H5T_NATIVE_UINT8 : H5T_STD_U8LE;
}
}  // namespace

namespace {
std::string shape_text(const std::vector<std::uint64_t>& v) {
  std::string s = "[";
  for (std::size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

/// Why this rank's block cannot be written, or "" when it can. Checked
/// arithmetic throughout: an offset + block that wraps past 2^64 would pass
/// a plain comparison and send HDF5 out of bounds.
std::string block_problem(std::size_t n, const std::vector<std::uint64_t>& block_shape,
                          const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset) {
  if (global_shape.empty()) return "the global shape must have at least one dimension";
  if (global_shape.size() > 32)
    return "the global shape has " + std::to_string(global_shape.size()) + " dimensions; HDF5 allows 32";
  std::uint64_t total = 1, row = 1;
  for (std::size_t d = 0; d < global_shape.size(); ++d) {
    if (__builtin_mul_overflow(total, global_shape[d], &total) ||
        (d > 0 && __builtin_mul_overflow(row, global_shape[d], &row))) {
      return "the global shape " + shape_text(global_shape) + " holds more than 2^64 values";
    }
  }
  if (block_shape.empty()) {  // the row-block form could not derive a shape, or none was given
    if (n == 0) return "";
    return "a block of " + std::to_string(n) + " values is not a whole number of rows of " + std::to_string(row) +
           " values of the global shape " + shape_text(global_shape) + "; pass the block's shape explicitly";
  }
  if (block_shape.size() != global_shape.size()) {
    return "the block shape " + shape_text(block_shape) + " has " + std::to_string(block_shape.size()) +
           " dimensions but the global shape " + shape_text(global_shape) + " has " +
           std::to_string(global_shape.size());
  }
  std::uint64_t count = 1;
  for (auto b : block_shape) {
    if (__builtin_mul_overflow(count, b, &count)) {
      return "the block shape " + shape_text(block_shape) + " holds more than 2^64 values";
    }
  }
  if (count != n) {
    return "the block holds " + std::to_string(n) + " values but its shape " + shape_text(block_shape) + " holds " +
           std::to_string(count);
  }
  if (count == 0) return "";  // an empty block: its offset is not used
  if (offset.size() != global_shape.size()) {
    return "the offset " + shape_text(offset) + " has " + std::to_string(offset.size()) +
           " dimensions but the global shape " + shape_text(global_shape) + " has " +
           std::to_string(global_shape.size());
  }
  for (std::size_t d = 0; d < global_shape.size(); ++d) {
    std::uint64_t end = 0;
    if (__builtin_add_overflow(offset[d], block_shape[d], &end)) {
      return "offset " + std::to_string(offset[d]) + " + block " + std::to_string(block_shape[d]) + " in dimension " +
             std::to_string(d) + " is past 2^64";
    }
    if (end > global_shape[d]) {
      return "the block [" + std::to_string(offset[d]) + ", " + std::to_string(end) + ") exceeds dimension " +
             std::to_string(d) + " of size " + std::to_string(global_shape[d]) + " (offset " + shape_text(offset) +
             ", block " + shape_text(block_shape) + ", global shape " + shape_text(global_shape) + ")";
    }
  }
  return "";
}

/// Two ranks whose blocks share an element ("" when none do): the elements'
/// values would depend on MPI-IO's order. `all` holds every rank's offset
/// then block shape, `dims` each; empty blocks have a zero extent.
std::string overlapping_blocks(const std::vector<std::uint64_t>& all, std::size_t dims, int size) {
  const auto at = [&](int r, std::size_t k) { return all[static_cast<std::size_t>(r) * 2 * dims + k]; };
  std::vector<int> order;
  for (int r = 0; r < size; ++r) {
    bool empty = false;
    for (std::size_t d = 0; d < dims; ++d) empty = empty || at(r, dims + d) == 0;
    if (!empty) order.push_back(r);
  }
  // Sorted by the start in dimension 0, each block is compared with those
  // starting before its end there: row blocks cost O(P log P), not O(P^2).
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return at(a, 0) < at(b, 0) || (at(a, 0) == at(b, 0) && a < b); });
  for (std::size_t i = 0; i < order.size(); ++i) {
    const int a = order[i];
    for (std::size_t j = i + 1; j < order.size() && at(order[j], 0) < at(a, 0) + at(a, dims); ++j) {
      const int b = order[j];
      bool shared = true;
      for (std::size_t d = 0; d < dims && shared; ++d) {
        shared = at(a, d) < at(b, d) + at(b, dims + d) && at(b, d) < at(a, d) + at(a, dims + d);
      }
      if (!shared) continue;
      const auto text = [&](int r) {
        std::vector<std::uint64_t> o, b2;
        for (std::size_t d = 0; d < dims; ++d) {
          o.push_back(at(r, d));
          b2.push_back(at(r, dims + d));
        }
        return "rank " + std::to_string(r) + " writes block " + shape_text(b2) + " at " + shape_text(o);
      };
      return "the blocks of ranks " + std::to_string(std::min(a, b)) + " and " + std::to_string(std::max(a, b)) +
             " overlap (" + text(std::min(a, b)) + ", " + text(std::max(a, b)) +
             "); every element must be written by one rank only";
    }
  }
  return "";
}
}  // namespace

namespace {

// write_array's first step: everything one rank can check alone, agreed on
// by all ranks before any collective HDF5 call.
void agree_on_array(tracking::run_impl& r, const std::string& path, const char* dtype, std::size_t n,
                    const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                    const std::vector<std::uint64_t>& offset) {
  // Everything one rank could find wrong on its own is checked first and the
  // verdicts are agreed on (one allreduce) before any collective HDF5 call:
  // a rank throwing alone would leave the others waiting in H5Fcreate or
  // H5Dwrite forever. Every rank then throws the same usage_error naming the
  // lowest bad rank, nothing is written, and the run goes on.
  std::string why;
  try {
    validate_path(path);
    why = block_problem(n, block_shape, global_shape, offset);
    const auto file = r.paths.array_absolute(r.id, path);
    if (why.empty() && r.mode != tracking_mode::debug && file.size() > tracking::array_path_limit) {
      why = "its file '" + file + "' would have a path of " + std::to_string(file.size()) + " characters; Open " +
            "MPI's OMPIO aborts the job on paths longer than about 244: keep the experiment file in a directory " +
            "with a shorter path";
    }
  } catch (const usage_error& e) {
    why = e.what();
  }
  // Every rank must also describe the same array: a digest of name, type
  // and global shape travels in the same allreduce (its minimum and, as the
  // minimum of its complement, its maximum).
  std::string desc = path + '|' + dtype;
  for (auto d : global_shape) desc += '|' + std::to_string(d);
  const auto digest = static_cast<std::uint64_t>(tracking::crc32c(desc.data(), desc.size()));
  std::uint64_t agree[3] = {why.empty() ? static_cast<std::uint64_t>(r.size) : static_cast<std::uint64_t>(r.rank),
                            digest, ~digest};
  detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, agree, 3, MPI_UINT64_T, MPI_MIN, r.coll), "MPI_Allreduce");
  if (agree[0] < static_cast<std::uint64_t>(r.size)) {
    const int bad = static_cast<int>(agree[0]);
    bytes text;
    if (r.rank == bad) {
      const auto m = "write_array('" + path + "') refused on every rank because of rank " + std::to_string(bad) + ": " +
                     why + " (nothing was written; the run goes on)";
      text.assign(m.begin(), m.end());
    }
    detail::bcast_frame(r.coll, bad, text, r.seg);
    throw usage_error(std::string(text.begin(), text.end()));
  }
  if (agree[1] != ~agree[2]) {
    throw usage_error("write_array('" + path + "'): ranks passed different names, element types or global shapes; " +
                      "every rank must describe the same array");
  }
}

// Second step: each block is within the shape; no two may share an element.
void refuse_overlaps(tracking::run_impl& r, const std::string& path, std::size_t n, const std::vector<std::uint64_t>& block_shape,
                     const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset) {
  // Each block is within the shape; now no two may share an element. The
  // rank count of dimensions is agreed (same global shape everywhere).
  const std::size_t dims = global_shape.size();
  std::vector<std::uint64_t> mine(2 * dims, 0), all(2 * dims * static_cast<std::size_t>(r.size));
  if (n > 0) {
    std::copy(offset.begin(), offset.end(), mine.begin());
    std::copy(block_shape.begin(), block_shape.end(), mine.begin() + static_cast<std::ptrdiff_t>(dims));
  }
  detail::check_mpi(MPI_Allgather(mine.data(), static_cast<int>(2 * dims), MPI_UINT64_T, all.data(),
                                  static_cast<int>(2 * dims), MPI_UINT64_T, r.coll),
                    "MPI_Allgather");
  const auto overlap = overlapping_blocks(all, dims, r.size);
  if (!overlap.empty()) {
    throw usage_error("write_array('" + path + "') refused on every rank: " + overlap +
                      " (nothing was written; the run goes on)");
  }
}

// Third step: rank 0 checks the path against the run and makes the array's
// directory; every rank learns the outcome. Returns the array file's path.
std::string prepare_array(tracking::run_impl& r, const std::string& path) {
  // Rank 0 checks the path against the run (an Array may not replace a Float)
  // and prepares the directory; everyone learns the outcome.
  tracking::err_kind k = tracking::err_kind::none;
  std::string msg;
  const auto abs = r.paths.array_absolute(r.id, path);
  if (r.rank == 0) {
    try {
      auto refused = r.request(tracking::msg_check, path);  // after this rank's own earlier writes
      if (!refused.empty()) throw type_error(refused);
      if (r.mode != tracking_mode::debug) {
        const auto dir = abs.substr(0, abs.rfind('/'));
        for (std::size_t p = dir.find('/', 1);; p = dir.find('/', p + 1)) {
          const auto sub = p == std::string::npos ? dir : dir.substr(0, p);
          if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) {
            throw storage_error(detail::sys_error("cannot create directory", sub));
          }
          if (p == std::string::npos) break;
        }
      }
    } catch (const type_error& e) {
      k = tracking::err_kind::tracking;
      msg = e.what();
    } catch (...) {
      std::tie(k, msg) = tracking::classify(std::current_exception());
    }
  }
  try {
    tracking::share_outcome(r.coll, r.rank, k, msg);
  } catch (const tracking_error& e) {
    throw type_error(e.what());
  }
  return abs;
}

// Last step: the collective write, then rank 0 makes it durable and records
// it before any rank returns.
void write_and_record(tracking::run_impl& r, const std::string& path, const std::string& abs, const char* dtype, const void* data,
                      const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                      const std::vector<std::uint64_t>& offset) {
  {
    auto file = h5::create_parallel(abs, r.coll);
    auto dset = h5::write_block(file.id(), "data", h5_type(dtype, false), h5_type(dtype, true), data, block_shape,
                                global_shape, offset);
    h5::write_attr(dset.id(), "rankflow_type", "Array");
    h5::write_attr(dset.id(), "dtype", dtype);
    h5::write_attr(dset.id(), "updated", now_unix_seconds());
  }
  if (r.rank == 0) {
    // Durable before it is recorded: the journal never points at a partial file.
    const int fd = ::open(abs.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    op o;
    o.kind = op_kind::array;
    o.rank = 0;
    o.time = now_unix_seconds();
    o.path = path;
    o.array.dtype = dtype;
    o.array.shape = global_shape;
    o.array.file = r.paths.array_relative(r.id, path);
    r.enqueue(o);
    // Applied by the service before any rank leaves the barrier below: a
    // rank that fetches the array next must find it. A request is answered
    // after this rank's earlier writes (once in ~40 runs, tracking_test at
    // -n 3 fetched before rank 0's batch had even been sent).
    (void)r.request(tracking::msg_check, path);
  }
  detail::check_mpi(MPI_Barrier(r.coll), "MPI_Barrier");
}

}  // namespace

void Run::write_array_raw(std::string_view name, const char* dtype, const void* data, std::size_t n,
                          const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                          const std::vector<std::uint64_t>& offset) {
  if (!impl_) throw usage_error("this Run is empty (moved from, or default-constructed)");
  auto& r = *impl_;
  const std::string path(name);
  // Stopped and read-only are the same on every rank (stop() is collective,
  // the mode is rank 0's): refused at once, with no collective to wait in.
  r.require_writable(path);
  agree_on_array(r, path, dtype, n, block_shape, global_shape, offset);
  refuse_overlaps(r, path, n, block_shape, global_shape, offset);
  const std::string abs = prepare_array(r, path);
  if (r.mode == tracking_mode::debug) return;
  write_and_record(r, path, abs, dtype, data, block_shape, global_shape, offset);
}

}  // namespace rankflow
