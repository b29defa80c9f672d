#include "h5.hpp"

#include <algorithm>
#include <exception>
#include <numeric>

namespace rankflow::h5 {

namespace {

// Called from C (H5Ewalk2): nothing may be thrown through it.
herr_t collect_frame(unsigned n, const H5E_error2_t* e, void* data) noexcept {
  auto* out = static_cast<std::string*>(data);
  if (n < 4) {  // the innermost frames say what went wrong; the rest is noise
    try {
      *out += "\n  ";
      *out += e->func_name ? e->func_name : "?";
      *out += ": ";
      *out += e->desc ? e->desc : "";
    } catch (...) {  // out of memory: the message stays shorter
      return -1;
    }
  }
  return 0;
}

struct link_visit {
  const std::function<void(const char*, const H5L_info_t&)>* fn;
  std::exception_ptr error;
};

// Called from C (H5Literate): an exception is kept for the caller, and a
// negative value stops the iteration.
herr_t visit_link(hid_t, const char* name, const H5L_info_t* info, void* data) noexcept {
  auto* v = static_cast<link_visit*>(data);
  try {
    (*v->fn)(name, *info);
    return 0;
  } catch (...) {
    v->error = std::current_exception();
    return -1;
  }
}

// HDF5 prints its error stack on every failure unless told not to; rankflow
// reports errors as exceptions instead, with the stack in the message.
struct silence_hdf5 {
  silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const silence_hdf5 silence_once;

}  // namespace

handle& handle::operator=(handle&& o) noexcept {
  if (this != &o) {
    this->~handle();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

handle::~handle() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      H5Fclose(id_);
      break;
    case H5I_GROUP:
      H5Gclose(id_);
      break;
    case H5I_DATASET:
      H5Dclose(id_);
      break;
    case H5I_DATASPACE:
      H5Sclose(id_);
      break;
    case H5I_DATATYPE:
      H5Tclose(id_);
      break;
    case H5I_ATTR:
      H5Aclose(id_);
      break;
    case H5I_GENPROP_LST:
      H5Pclose(id_);
      break;
    default:
      break;
  }
  id_ = H5I_INVALID_HID;
}

hid_t check(hid_t id, const char* call, const std::string& object) {
  if (id >= 0) return id;
  std::string stack;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_frame, &stack);
  H5Eclear2(H5E_DEFAULT);
  throw storage_error(std::string(call) + " failed for '" + object + "'" + stack);
}

handle create_parallel(const std::string& path, MPI_Comm comm) {
  handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", path));
  check(H5Pset_fapl_mpio(fapl.id(), comm, MPI_INFO_NULL), "H5Pset_fapl_mpio", path);
  // Metadata writes collective too: every rank takes part in each create.
  check(H5Pset_all_coll_metadata_ops(fapl.id(), true), "H5Pset_all_coll_metadata_ops", path);
  check(H5Pset_coll_metadata_write(fapl.id(), true), "H5Pset_coll_metadata_write", path);
  return handle(check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()), "H5Fcreate", path));
}

handle open_read(const std::string& path) {
  return handle(check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "H5Fopen", path));
}

void write_block(hid_t file, const std::string& name, const double* block,
                 const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                 const std::vector<std::uint64_t>& offset) {
  write_block(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, block, block_shape, global_shape, offset);
}

handle write_block(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, const void* block,
                   const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                   const std::vector<std::uint64_t>& offset) {
  const auto rank = static_cast<int>(global_shape.size());
  const bool empty_block = block_shape.empty() || std::accumulate(block_shape.begin(), block_shape.end(),
                                                                  std::uint64_t{1}, std::multiplies<>()) == 0;
  if (rank == 0 ||
      (!empty_block && (block_shape.size() != global_shape.size() || offset.size() != global_shape.size()))) {
    throw usage_error("write_block('" + name +
                      "'): block shape, global shape and offset must have the same, non-zero rank");
  }
  if (!empty_block) {
    for (int d = 0; d < rank; ++d) {
      if (offset[d] + block_shape[d] > global_shape[d]) {
        throw usage_error("write_block('" + name + "'): block [" + std::to_string(offset[d]) + ", " +
                          std::to_string(offset[d] + block_shape[d]) + ") exceeds dimension " + std::to_string(d) +
                          " of size " + std::to_string(global_shape[d]));
      }
    }
  }
  std::vector<hsize_t> gdims(global_shape.begin(), global_shape.end());
  handle fspace(check(H5Screate_simple(rank, gdims.data(), nullptr), "H5Screate_simple", name));
  handle dset(check(H5Dcreate2(file, name.c_str(), file_type, fspace.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                    "H5Dcreate2", name));
  const hsize_t count =
      empty_block ? 0 : std::accumulate(block_shape.begin(), block_shape.end(), hsize_t{1}, std::multiplies<>());
  const hsize_t mcount = std::max<hsize_t>(count, 1);
  handle mspace(check(H5Screate_simple(1, &mcount, nullptr), "H5Screate_simple", name));
  if (count == 0) {
    check(H5Sselect_none(fspace.id()), "H5Sselect_none", name);
    check(H5Sselect_none(mspace.id()), "H5Sselect_none", name);
  } else {
    std::vector<hsize_t> bdims(block_shape.begin(), block_shape.end());
    std::vector<hsize_t> off(offset.begin(), offset.end());
    check(H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, off.data(), nullptr, bdims.data(), nullptr),
          "H5Sselect_hyperslab", name);
  }
  handle dxpl(check(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate", name));
  check(H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio", name);
  static const double dummy = 0;
  check(H5Dwrite(dset.id(), mem_type, mspace.id(), fspace.id(), dxpl.id(), count ? block : &dummy), "H5Dwrite", name);
  return dset;
}

void write_attr(hid_t obj, const char* name, const std::string& value) {
  handle t(check(H5Tcopy(H5T_C_S1), "H5Tcopy", name));
  check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size", name);
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), "H5Tset_cset", name);
  handle sp(check(H5Screate(H5S_SCALAR), "H5Screate", name));
  handle a(check(H5Acreate2(obj, name, t.id(), sp.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  const char* p = value.c_str();
  check(H5Awrite(a.id(), t.id(), &p), "H5Awrite", name);
}

void write_attr(hid_t obj, const char* name, double value) {
  handle sp(check(H5Screate(H5S_SCALAR), "H5Screate", name));
  handle a(check(H5Acreate2(obj, name, H5T_IEEE_F64LE, sp.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  check(H5Awrite(a.id(), H5T_NATIVE_DOUBLE, &value), "H5Awrite", name);
}

void write_attr(hid_t obj, const char* name, std::int64_t value) {
  handle sp(check(H5Screate(H5S_SCALAR), "H5Screate", name));
  handle a(check(H5Acreate2(obj, name, H5T_STD_I64LE, sp.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  check(H5Awrite(a.id(), H5T_NATIVE_INT64, &value), "H5Awrite", name);
}

void write_attr(hid_t obj, const char* name, const std::vector<std::string>& values) {
  handle t(check(H5Tcopy(H5T_C_S1), "H5Tcopy", name));
  check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size", name);
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), "H5Tset_cset", name);
  const hsize_t n = values.size();
  handle sp(check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple", name));
  handle a(check(H5Acreate2(obj, name, t.id(), sp.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  std::vector<const char*> ptrs;
  for (const auto& s : values) ptrs.push_back(s.c_str());
  if (n) check(H5Awrite(a.id(), t.id(), ptrs.data()), "H5Awrite", name);
}

void for_each_link(hid_t group, const std::string& what,
                   const std::function<void(const char* name, const H5L_info_t& info)>& fn) {
  link_visit v{&fn, nullptr};
  const herr_t rc = H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr, visit_link, &v);
  if (v.error) {
    H5Eclear2(H5E_DEFAULT);  // HDF5's "iteration failed" frames, not the cause
    std::rethrow_exception(v.error);
  }
  check(rc, "H5Literate", what);
}

object_key key_of(hid_t loc, const std::string& name, H5O_type_t* type) {
  H5O_info_t oi{};
  check(H5Oget_info_by_name2(loc, name.c_str(), &oi, H5O_INFO_BASIC, H5P_DEFAULT), "H5Oget_info_by_name", name);
  if (type) *type = oi.type;
  return {oi.fileno, oi.addr};
}

std::string name_of(hid_t obj) {
  const auto n = H5Iget_name(obj, nullptr, 0);
  if (n <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return "?";
  }
  std::string s(static_cast<std::size_t>(n) + 1, '\0');
  H5Iget_name(obj, s.data(), s.size());
  s.resize(static_cast<std::size_t>(n));
  return s;
}

std::vector<double> read_all(hid_t file, const std::string& name, std::vector<std::uint64_t>* shape) {
  handle dset(check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "H5Dopen2", name));
  handle space(check(H5Dget_space(dset.id()), "H5Dget_space", name));
  const int rank = check(H5Sget_simple_extent_ndims(space.id()), "H5Sget_simple_extent_ndims", name);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr), "H5Sget_simple_extent_dims", name);
  if (shape) shape->assign(dims.begin(), dims.end());
  const hsize_t n = std::accumulate(dims.begin(), dims.end(), hsize_t{1}, std::multiplies<>());
  std::vector<double> out(n);
  check(H5Dread(dset.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread", name);
  return out;
}

}  // namespace rankflow::h5
