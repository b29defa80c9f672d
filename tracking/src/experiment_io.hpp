// Private to run tracking: what the experiment file's reader, writer and
// sidecar code share (experiment_read.cpp, experiment_write.cpp,
// experiment.cpp): file-system and HDF5 helpers, and each part's entry points.
#pragma once

#include <rankflow/tracking/experiment.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <utility>

#include "h5.hpp"
#include "journal.hpp"
#include "run_index.hpp"

namespace rankflow::tracking {

using h5::check;
using h5::handle;


using detail::sys_error;  // core's (error.hpp)

inline std::string dirname_of(const std::string& file) {
  const auto slash = file.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : file.substr(0, slash);
}

inline std::string basename_of(const std::string& file) {
  const auto slash = file.rfind('/');
  return slash == std::string::npos ? file : file.substr(slash + 1);
}

inline bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The sidecar `<file>.d` is created next to the experiment file, but never
// the directories above it: a mistyped --experiment (a/b/c/x.h5) would
// otherwise scatter runs into a tree nobody looks at.
inline void make_sidecar_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw usage_error("the experiment file's directory '" + parent + "' does not exist (or is not a directory): " +
                      "create it first (mkdir -p '" + parent + "') or choose another experiment file");
  }
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    throw storage_error(sys_error("cannot create directory", path));
  }
}

inline void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) throw storage_error(sys_error("cannot open for fsync", path));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 && !directory) throw storage_error(sys_error("cannot fsync", path));
}

// The sidecar's lock: taken to allocate run ids and to replace the file.
class dir_lock {
 public:
  explicit dir_lock(const experiment_paths& p) {
    make_sidecar_dir(p.dir);
    const auto path = p.dir + "/lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw storage_error(sys_error("cannot open lock", path));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) throw storage_error(sys_error("cannot lock", path));
    }
  }
  ~dir_lock() { ::close(fd_); }
  dir_lock(const dir_lock&) = delete;
  dir_lock& operator=(const dir_lock&) = delete;

 private:
  int fd_ = -1;
};

inline void copy_file(const std::string& from, const std::string& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw storage_error(sys_error("cannot open", from));
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    throw storage_error(sys_error("cannot create", to));
  }
  struct stat st {};
  ::fstat(in, &st);
  ::fchmod(out, st.st_mode & 07777);
  // copy_file_range lets the file system share blocks (XFS, Btrfs) or copy in
  // the kernel; fall back to read/write where it is not supported.
  off_t left = st.st_size;
  bool fallback = false;
  while (left > 0) {
    const auto n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<std::size_t>(left), 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
      fallback = true;
      break;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(in);
      ::close(out);
      throw storage_error(sys_error("cannot copy to", to));
    }
    left -= n;
  }
  if (fallback) {
    std::vector<char> buf(1 << 20);
    for (;;) {
      const auto r = ::read(in, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      if (::write(out, buf.data(), static_cast<std::size_t>(r)) != r) {
        ::close(in);
        ::close(out);
        throw storage_error(sys_error("cannot write", to));
      }
    }
  }
  ::close(in);
  if (::fsync(out) != 0 || ::close(out) != 0) throw storage_error(sys_error("cannot write", to));
}

inline int run_number(const std::string& id) {
  if (id.rfind("RUN-", 0) != 0) return 0;
  try {
    return std::stoi(id.substr(4));
  } catch (...) {
    return 0;
  }
}

/// Runs in the order they were created: by run number, RUN-9 before RUN-10.
inline bool run_order(const std::string& a, const std::string& b) {
  const int x = run_number(a), y = run_number(b);
  return x != y ? x < y : a < b;
}

inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (auto* e = ::readdir(d)) out.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::string> journal_ids(const experiment_paths& p) {
  std::vector<std::string> ids;
  for (const auto& name : list_dir(p.dir)) {
    const std::string suffix = ".journal";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      ids.push_back(name.substr(0, name.size() - suffix.size()));
    }
  }
  return ids;
}

// --------------------------------------------------------- HDF5 helpers --

inline handle vl_string_type() {
  handle t(check(H5Tcopy(H5T_C_S1), "H5Tcopy", "string type"));
  check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size", "string type");
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), "H5Tset_cset", "string type");
  return t;
}

inline handle bool_type() {
  handle t(check(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create", "bool type"));
  std::int8_t v = 0;
  check(H5Tenum_insert(t.id(), "FALSE", &v), "H5Tenum_insert", "bool type");
  v = 1;
  check(H5Tenum_insert(t.id(), "TRUE", &v), "H5Tenum_insert", "bool type");
  return t;
}

// Attributes: h5.hpp's one writer (h5::write_attr).
inline void attr_str(hid_t obj, const char* name, const std::string& v) { h5::write_attr(obj, name, v); }

template <class T>
inline void attr_num(hid_t obj, const char* name, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    h5::write_attr(obj, name, static_cast<double>(v));
  } else {
    h5::write_attr(obj, name, static_cast<std::int64_t>(v));
  }
}

inline void attr_strs(hid_t obj, const char* name, const std::vector<std::string>& v) { h5::write_attr(obj, name, v); }

inline bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

// Readers of what a file holds. A file may hold anything (another program's
// edits, a newer minor format, a hostile user), so every read checks the
// class and the number of elements it expects before HDF5 writes into a
// buffer sized for them; what does not fit is a format_error naming it.

// Elements of an attribute's or a dataset's dataspace (scalar: 1, null: 0).
inline hssize_t points_of(hid_t obj, bool is_attr, const std::string& what) {
  handle sp(check(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), "get_space", what));
  return check(H5Sget_simple_extent_npoints(sp.id()), "H5Sget_simple_extent_npoints", what);
}

inline H5T_class_t class_of(hid_t obj, bool is_attr, const std::string& what) {
  handle t(check(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), "get_type", what));
  return H5Tget_class(t.id());
}

inline std::string attr_where(hid_t obj, const char* name) {
  return "attribute '" + std::string(name) + "' of '" + h5::name_of(obj) + "'";
}

inline std::vector<std::string> read_vl_strings(hid_t obj, bool is_attr, const std::string& what) {
  handle ft(check(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), "get_type", what));
  if (H5Tget_class(ft.id()) != H5T_STRING) throw format_error(what + " holds no strings (wrong datatype)");
  const auto n = points_of(obj, is_attr, what);
  std::vector<std::string> out;
  if (n <= 0) return out;
  out.reserve(static_cast<std::size_t>(n));
  if (H5Tis_variable_str(ft.id()) > 0) {
    std::vector<char*> ptrs(static_cast<std::size_t>(n), nullptr);
    auto t = vl_string_type();
    if (is_attr) {
      check(H5Aread(obj, t.id(), ptrs.data()), "H5Aread", what);
    } else {
      check(H5Dread(obj, t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "H5Dread", what);
    }
    for (char* p : ptrs) {
      out.emplace_back(p ? p : "");
      H5free_memory(p);
    }
    return out;
  }
  // Fixed-length strings (what other tools, e.g. numpy byte arrays, write).
  const std::size_t size = H5Tget_size(ft.id());
  if (size == 0) throw format_error(what + " has a string type of size 0");
  std::string buf(size * static_cast<std::size_t>(n), '\0');
  handle mt(check(H5Tcopy(ft.id()), "H5Tcopy", what));
  if (is_attr) {
    check(H5Aread(obj, mt.id(), buf.data()), "H5Aread", what);
  } else {
    check(H5Dread(obj, mt.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "H5Dread", what);
  }
  for (std::size_t k = 0; k < static_cast<std::size_t>(n); ++k) {
    std::string s = buf.substr(k * size, size);
    s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
    out.push_back(std::move(s));
  }
  return out;
}

// A scalar string attribute; "" when absent.
inline std::string read_attr_str(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) return {};
  handle a(check(H5Aopen(obj, name, H5P_DEFAULT), "H5Aopen", name));
  const auto where = attr_where(obj, name);
  if (points_of(a.id(), true, where) != 1) throw format_error(where + " should hold one string");
  return read_vl_strings(a.id(), true, where).at(0);
}

// A scalar number attribute; `fallback` when absent. Integers must be stored
// as integers and fit T (a format major of 2^32+1 is not 1).
template <class T>
inline T read_attr_num(hid_t obj, const char* name, T fallback = T{}) {
  if (!has_attr(obj, name)) return fallback;
  handle a(check(H5Aopen(obj, name, H5P_DEFAULT), "H5Aopen", name));
  const auto where = attr_where(obj, name);
  const auto cls = class_of(a.id(), true, where);
  const bool ok_class = cls == H5T_INTEGER || (std::is_floating_point_v<T> && cls == H5T_FLOAT);
  if (!ok_class || points_of(a.id(), true, where) != 1) {
    throw format_error(where + " should hold one " + (std::is_floating_point_v<T> ? "number" : "integer"));
  }
  if constexpr (std::is_floating_point_v<T>) {
    double v = 0;
    check(H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v), "H5Aread", where);
    return static_cast<T>(v);
  } else {
    std::int64_t v = 0;
    check(H5Aread(a.id(), H5T_NATIVE_INT64, &v), "H5Aread", where);
    if (!std::in_range<T>(v)) throw format_error(where + " holds " + std::to_string(v) + ", out of range");
    return static_cast<T>(v);
  }
}

inline std::vector<std::string> read_attr_strs(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) return {};
  handle a(check(H5Aopen(obj, name, H5P_DEFAULT), "H5Aopen", name));
  return read_vl_strings(a.id(), true, attr_where(obj, name));
}

inline handle lcpl_intermediate() {
  handle l(check(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate", "lcpl"));
  check(H5Pset_create_intermediate_group(l.id(), 1), "H5Pset_create_intermediate_group", "lcpl");
  check(H5Pset_char_encoding(l.id(), H5T_CSET_UTF8), "H5Pset_char_encoding", "lcpl");
  return l;
}

// A 1-D dataset; chunked and extendible when `extendible` (series columns).
inline handle create_1d(hid_t loc, const std::string& name, hid_t type, hsize_t n, bool extendible) {
  const hsize_t maxdim = extendible ? H5S_UNLIMITED : n;
  handle sp(check(H5Screate_simple(1, &n, &maxdim), "H5Screate_simple", name));
  handle dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", name));
  if (extendible) {
    const hsize_t chunk = std::clamp<hsize_t>(n, 1, 16384);
    check(H5Pset_chunk(dcpl.id(), 1, &chunk), "H5Pset_chunk", name);
  }
  auto lcpl = lcpl_intermediate();
  return handle(
      check(H5Dcreate2(loc, name.c_str(), type, sp.id(), lcpl.id(), dcpl.id(), H5P_DEFAULT), "H5Dcreate2", name));
}

inline void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& v, bool extendible) {
  auto t = vl_string_type();
  auto d = create_1d(loc, name, t.id(), v.size(), extendible);
  std::vector<const char*> ptrs;
  ptrs.reserve(v.size());
  for (const auto& s : v) ptrs.push_back(s.c_str());
  if (!v.empty()) check(H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "H5Dwrite", name);
}

template <class T>
inline void write_column(hid_t loc, const std::string& name, const std::vector<T>& v, bool extendible) {
  const hid_t file_t = std::is_floating_point_v<T> ? H5T_IEEE_F64LE : H5T_STD_I64LE;
  const hid_t mem_t = std::is_floating_point_v<T> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
  auto d = create_1d(loc, name, file_t, v.size(), extendible);
  if (!v.empty()) check(H5Dwrite(d.id(), mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dwrite", name);
}

inline handle scalar_dataset(hid_t loc, const std::string& name, hid_t type) {
  handle sp(check(H5Screate(H5S_SCALAR), "H5Screate", name));
  auto lcpl = lcpl_intermediate();
  return handle(
      check(H5Dcreate2(loc, name.c_str(), type, sp.id(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Dcreate2", name));
}

inline void field_attrs(hid_t obj, const field_record& f) {
  attr_str(obj, "rankflow_type", type_name(f.type));
  attr_num(obj, "rank", f.rank);
  attr_num(obj, "updated", f.updated);
}


// ---- experiment_write.cpp

// A series whose points are streamed from the journal into its columns.
struct streamed_series {
  handle step, value, timestamp;
  field_type type = field_type::none;
  hsize_t size = 0;
  hsize_t written = 0;
};
using streamed_map = std::map<std::string, streamed_series>;
void write_slab(hid_t d, hsize_t at, hsize_t n, hid_t mem_t, const void* data, const std::string& what);
void stream_points(const std::string& journal_path, streamed_map& streamed);
void write_field(hid_t run, const std::string& path, const field_record& f, const experiment_paths& p,
                 const std::string& id, const std::function<std::string(const file_info&)>& bytes_of,
                 streamed_map* streamed);
void write_ledger(hid_t run, const run_record& rec, const std::string& journal_path);
/// Writes /runs/<id>. `in_run_file`: the run's own file (format 2), whose
/// array links are relative to it.
void write_run(hid_t file, const run_record& rec, const experiment_paths& p,
               const std::function<std::string(const file_info&)>& bytes_of, const std::string& journal_path);
/// The experiment file of format 2 (links only; root attribute index_bytes).
handle create_experiment_file(const std::string& path);
/// A run's own file (format 2): root attributes as an experiment file's, and
/// `rankflow_run`; write_run adds /runs/<id>.
handle create_run_file(const std::string& path, const std::string& id);
std::string link_from_run_file(const std::string& experiment_relative);

// ---- experiment_read.cpp

/// How a refusal of a file that is not an experiment file ends (set_other_file_advice).
extern std::string other_file_advice;
/// Opens and checks an experiment (or run) file; `major`, when given, receives
/// its format major (1 or 2).
handle open_checked(const std::string& file, unsigned flags, int* major = nullptr);
run_info read_info(hid_t g, const std::string& id);
// Reading a run's fields: a walk over its groups. Run and field paths are at
// most 1024 characters (validate_path), so a longer path, a second link to an
// object already reached (rankflow links every object once; a hard link to a
// parent group is a cycle) and links rankflow does not write (soft,
// user-defined) are format errors, never a stack overflow or an endless walk.
struct walk_state {
  run_record* rec;
  bool with_bytes;
  std::set<h5::object_key> seen;
  std::map<h5::object_key, std::string> open_groups;  ///< the groups being walked, by key
  /// Reading a run file: what `../` of its array links stands for
  /// (`<experiment>.d/`, relative to the experiment file's directory).
  std::string array_prefix = {};
  /// Which series' points to read (load_run's series_points).
  const series_points* points = nullptr;
};
void walk_group(hid_t group, const std::string& prefix, walk_state& ws);
void read_ledger(hid_t run, run_record& rec, bool with_results);
std::vector<std::string> run_ids_in_file(hid_t f);
/// Reads run `id` of an open experiment file: format 1 holds its group, format
/// 2 links to the run's own file (opened and checked here; its array links
/// are relative to it). Format errors name the file they are about.
run_record read_run_from(hid_t experiment, const experiment_paths& p, const std::string& id, bool with_bytes,
                         const series_points* points = nullptr);


// ---- experiment.cpp, experiment_commit.cpp

// The copy a merge writes before renaming it over the experiment file:
// `.<file>.tmp-<host>-<pid>` in the sidecar, so that recover can tell whose
// it is (files of older versions are `.<file>.tmp-<pid>`).
inline std::string temp_copy_prefix(const experiment_paths& p) { return "." + basename_of(p.file) + ".tmp-"; }

// This host's name as it may appear in a file name.
inline std::string safe_host() {
  auto h = this_host();
  for (auto& c : h) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_') c = '_';
  }
  return h;
}

/// Writes a run into its own run file (<dir>/runs/<id>.h5), whole, renamed into place.
void write_run_file(const experiment_paths& p, const run_record& rec, const std::string& journal_path);
/// The committed length of the run index, from the experiment file's root.
std::uint64_t committed_index(hid_t f, const std::string& file);
/// With the sidecar's lock held: appends the runs' index entries, links the
/// runs, and commits both by replacing the experiment file.
void commit_runs_locked(const experiment_paths& p, const std::vector<index_entry>& entries);

}  // namespace rankflow::tracking
