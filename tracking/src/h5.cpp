#include <rankflow/tracking/h5.hpp>

#include <numeric>

namespace rankflow::h5 {

namespace {

herr_t collect_frame(unsigned n, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n < 4) {  // the innermost frames say what went wrong; the rest is noise
    *out += "\n  ";
    *out += e->func_name ? e->func_name : "?";
    *out += ": ";
    *out += e->desc ? e->desc : "";
  }
  return 0;
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
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
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

void write_block(hid_t file, const std::string& name, const double* block, const std::vector<std::uint64_t>& block_shape,
                 const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset) {
  const auto rank = static_cast<int>(global_shape.size());
  if (block_shape.size() != global_shape.size() || offset.size() != global_shape.size() || rank == 0) {
    throw usage_error("write_block('" + name + "'): block shape, global shape and offset must have the same, non-zero rank");
  }
  for (int d = 0; d < rank; ++d) {
    if (offset[d] + block_shape[d] > global_shape[d]) {
      throw usage_error("write_block('" + name + "'): block [" + std::to_string(offset[d]) + ", " +
                        std::to_string(offset[d] + block_shape[d]) + ") exceeds dimension " + std::to_string(d) +
                        " of size " + std::to_string(global_shape[d]));
    }
  }
  std::vector<hsize_t> gdims(global_shape.begin(), global_shape.end());
  std::vector<hsize_t> bdims(block_shape.begin(), block_shape.end());
  std::vector<hsize_t> off(offset.begin(), offset.end());
  handle fspace(check(H5Screate_simple(rank, gdims.data(), nullptr), "H5Screate_simple", name));
  handle dset(check(H5Dcreate2(file, name.c_str(), H5T_IEEE_F64LE, fspace.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                    "H5Dcreate2", name));
  const hsize_t count = std::accumulate(bdims.begin(), bdims.end(), hsize_t{1}, std::multiplies<>());
  handle mspace(check(H5Screate_simple(1, &count, nullptr), "H5Screate_simple", name));
  if (count == 0) {
    check(H5Sselect_none(fspace.id()), "H5Sselect_none", name);
    check(H5Sselect_none(mspace.id()), "H5Sselect_none", name);
  } else {
    check(H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, off.data(), nullptr, bdims.data(), nullptr),
          "H5Sselect_hyperslab", name);
  }
  handle dxpl(check(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate", name));
  check(H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio", name);
  check(H5Dwrite(dset.id(), H5T_NATIVE_DOUBLE, mspace.id(), fspace.id(), dxpl.id(), block), "H5Dwrite", name);
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
