// Must compile: the umbrella gives a program all of rankflow, and neither
// HDF5's C API nor its macros (test layering_umbrella_without_hdf5).
#include <rankflow/rankflow.hpp>

#if defined(H5_VERS_MAJOR) || defined(H5_VERSION)
#error "<rankflow/rankflow.hpp> pulls in <hdf5.h>"
#endif

int layering_umbrella() { return sizeof(rankflow::map_options) > 0 ? 0 : 1; }
