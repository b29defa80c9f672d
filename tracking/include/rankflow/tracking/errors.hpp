// The errors of run tracking, on top of core's (rankflow/core/error.hpp).
// The whole hierarchy a rankflow program can catch:
//
//   std::runtime_error
//   └── rankflow::error                     core/error.hpp
//       ├── usage_error                     a call made wrongly (flags, arguments, ranks that disagree)
//       ├── resource_error                  not enough memory, GPUs, ... for what was asked
//       ├── mpi_error                       an MPI call failed
//       ├── task_error                      runtime/errors.hpp: a partition or task threw (rank, host, item, message)
//       ├── interrupted                     a time-limit signal stopped the call
//       ├── storage_error                   this file: an experiment file could not be read or written
//       │   └── format_error                this file: not a file rankflow can read
//       └── tracking_error                  this file: rank 0 refused a tracking operation
//           └── type_error                  this file: a value of another type than the field holds
//
// No HDF5 here: a program that includes <rankflow/rankflow.hpp> does not get
// <hdf5.h> (tracking/src/h5.hpp, which needs it, is private to rankflow's sources).
#pragma once

#include <rankflow/core/error.hpp>

namespace rankflow {

/// An experiment file could not be created, opened, read or written.
class storage_error : public error {
 public:
  using error::error;
};

/// A file is not an experiment file rankflow can read: not HDF5, truncated,
/// or written by a newer major format version.
class format_error : public storage_error {
 public:
  using storage_error::storage_error;
};

/// Rank 0 refused a tracking operation (a step that goes backwards, a path
/// that is already a namespace, ...). Nothing of the operation was written.
class tracking_error : public error {
 public:
  using error::error;
};

/// A field was written with a value of another type than it holds, e.g.
/// "Float field 'lr' cannot be assigned a String".
class type_error : public tracking_error {
 public:
  using tracking_error::tracking_error;
};

}  // namespace rankflow
