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

#include "journal.hpp"
#include <rankflow/tracking/h5.hpp>  // not in rankflow.hpp: HDF5 is ours, not the user's

namespace rankflow::tracking {

using h5::check;
using h5::handle;

namespace {

using detail::sys_error;  // core's (error.hpp)

std::string dirname_of(const std::string& file) {
  const auto slash = file.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : file.substr(0, slash);
}

std::string basename_of(const std::string& file) {
  const auto slash = file.rfind('/');
  return slash == std::string::npos ? file : file.substr(slash + 1);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The sidecar `<file>.d` is created next to the experiment file, but never
// the directories above it: a mistyped --experiment (a/b/c/x.h5) would
// otherwise scatter runs into a tree nobody looks at.
void make_sidecar_dir(const std::string& path) {
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

void fsync_path(const std::string& path, bool directory) {
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

void copy_file(const std::string& from, const std::string& to) {
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

int run_number(const std::string& id) {
  if (id.rfind("RUN-", 0) != 0) return 0;
  try {
    return std::stoi(id.substr(4));
  } catch (...) {
    return 0;
  }
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (auto* e = ::readdir(d)) out.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> journal_ids(const experiment_paths& p) {
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

handle vl_string_type() {
  handle t(check(H5Tcopy(H5T_C_S1), "H5Tcopy", "string type"));
  check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size", "string type");
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), "H5Tset_cset", "string type");
  return t;
}

handle bool_type() {
  handle t(check(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create", "bool type"));
  std::int8_t v = 0;
  check(H5Tenum_insert(t.id(), "FALSE", &v), "H5Tenum_insert", "bool type");
  v = 1;
  check(H5Tenum_insert(t.id(), "TRUE", &v), "H5Tenum_insert", "bool type");
  return t;
}

void attr_str(hid_t obj, const char* name, const std::string& v) {
  auto t = vl_string_type();
  handle sp(check(H5Screate(H5S_SCALAR), "H5Screate", name));
  handle a(check(H5Acreate2(obj, name, t.id(), sp.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  const char* p = v.c_str();
  check(H5Awrite(a.id(), t.id(), &p), "H5Awrite", name);
}

template <class T>
void attr_num(hid_t obj, const char* name, T v) {
  const hid_t file_t = std::is_floating_point_v<T> ? H5T_IEEE_F64LE : H5T_STD_I64LE;
  const hid_t mem_t = std::is_floating_point_v<T> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
  using stored = std::conditional_t<std::is_floating_point_v<T>, double, std::int64_t>;
  stored s = static_cast<stored>(v);
  handle sp(check(H5Screate(H5S_SCALAR), "H5Screate", name));
  handle a(check(H5Acreate2(obj, name, file_t, sp.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  check(H5Awrite(a.id(), mem_t, &s), "H5Awrite", name);
}

void attr_strs(hid_t obj, const char* name, const std::vector<std::string>& v) {
  auto t = vl_string_type();
  const hsize_t n = v.size();
  handle sp(check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple", name));
  handle a(check(H5Acreate2(obj, name, t.id(), sp.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  std::vector<const char*> ptrs;
  for (const auto& s : v) ptrs.push_back(s.c_str());
  if (n) check(H5Awrite(a.id(), t.id(), ptrs.data()), "H5Awrite", name);
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

// Readers of what a file holds. A file may hold anything (another program's
// edits, a newer minor format, a hostile user), so every read checks the
// class and the number of elements it expects before HDF5 writes into a
// buffer sized for them; what does not fit is a format_error naming it.

// Elements of an attribute's or a dataset's dataspace (scalar: 1, null: 0).
hssize_t points_of(hid_t obj, bool is_attr, const std::string& what) {
  handle sp(check(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), "get_space", what));
  return check(H5Sget_simple_extent_npoints(sp.id()), "H5Sget_simple_extent_npoints", what);
}

H5T_class_t class_of(hid_t obj, bool is_attr, const std::string& what) {
  handle t(check(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), "get_type", what));
  return H5Tget_class(t.id());
}

std::string attr_where(hid_t obj, const char* name) {
  return "attribute '" + std::string(name) + "' of '" + h5::name_of(obj) + "'";
}

std::vector<std::string> read_vl_strings(hid_t obj, bool is_attr, const std::string& what) {
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
std::string read_attr_str(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) return {};
  handle a(check(H5Aopen(obj, name, H5P_DEFAULT), "H5Aopen", name));
  const auto where = attr_where(obj, name);
  if (points_of(a.id(), true, where) != 1) throw format_error(where + " should hold one string");
  return read_vl_strings(a.id(), true, where).at(0);
}

// A scalar number attribute; `fallback` when absent. Integers must be stored
// as integers and fit T (a format major of 2^32+1 is not 1).
template <class T>
T read_attr_num(hid_t obj, const char* name, T fallback = T{}) {
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

std::vector<std::string> read_attr_strs(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) return {};
  handle a(check(H5Aopen(obj, name, H5P_DEFAULT), "H5Aopen", name));
  return read_vl_strings(a.id(), true, attr_where(obj, name));
}

handle lcpl_intermediate() {
  handle l(check(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate", "lcpl"));
  check(H5Pset_create_intermediate_group(l.id(), 1), "H5Pset_create_intermediate_group", "lcpl");
  check(H5Pset_char_encoding(l.id(), H5T_CSET_UTF8), "H5Pset_char_encoding", "lcpl");
  return l;
}

// A 1-D dataset; chunked and extendible when `extendible` (series columns).
handle create_1d(hid_t loc, const std::string& name, hid_t type, hsize_t n, bool extendible) {
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

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& v, bool extendible) {
  auto t = vl_string_type();
  auto d = create_1d(loc, name, t.id(), v.size(), extendible);
  std::vector<const char*> ptrs;
  ptrs.reserve(v.size());
  for (const auto& s : v) ptrs.push_back(s.c_str());
  if (!v.empty()) check(H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "H5Dwrite", name);
}

template <class T>
void write_column(hid_t loc, const std::string& name, const std::vector<T>& v, bool extendible) {
  const hid_t file_t = std::is_floating_point_v<T> ? H5T_IEEE_F64LE : H5T_STD_I64LE;
  const hid_t mem_t = std::is_floating_point_v<T> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
  auto d = create_1d(loc, name, file_t, v.size(), extendible);
  if (!v.empty()) check(H5Dwrite(d.id(), mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dwrite", name);
}

handle scalar_dataset(hid_t loc, const std::string& name, hid_t type) {
  handle sp(check(H5Screate(H5S_SCALAR), "H5Screate", name));
  auto lcpl = lcpl_intermediate();
  return handle(
      check(H5Dcreate2(loc, name.c_str(), type, sp.id(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Dcreate2", name));
}

void field_attrs(hid_t obj, const field_record& f) {
  attr_str(obj, "rankflow_type", type_name(f.type));
  attr_num(obj, "rank", f.rank);
  attr_num(obj, "updated", f.updated);
}

// A series whose points are streamed from the journal into its columns.
struct streamed_series {
  handle step, value, timestamp;
  field_type type = field_type::none;
  hsize_t size = 0;
  hsize_t written = 0;
};
using streamed_map = std::map<std::string, streamed_series>;

void write_slab(hid_t d, hsize_t at, hsize_t n, hid_t mem_t, const void* data, const std::string& what) {
  handle fs(check(H5Dget_space(d), "H5Dget_space", what));
  check(H5Sselect_hyperslab(fs.id(), H5S_SELECT_SET, &at, nullptr, &n, nullptr), "H5Sselect_hyperslab", what);
  handle ms(check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple", what));
  check(H5Dwrite(d, mem_t, ms.id(), fs.id(), H5P_DEFAULT, data), "H5Dwrite", what);
}

void stream_points(const std::string& journal_path, streamed_map& streamed) {
  auto vt = vl_string_type();
  std::vector<const char*> ptrs;
  scan_journal(journal_path, [&](op& o) {
    if (o.kind != op_kind::append) return true;
    auto it = streamed.find(o.path);
    if (it == streamed.end()) return true;
    auto& st = it->second;
    const hsize_t n = o.points.size();
    if (n == 0) return true;
    if (st.written + n > st.size) throw format_error("journal of '" + o.path + "' holds more points than counted");
    write_slab(st.step.id(), st.written, n, H5T_NATIVE_DOUBLE, o.points.steps.data(), o.path);
    write_slab(st.timestamp.id(), st.written, n, H5T_NATIVE_DOUBLE, o.points.timestamps.data(), o.path);
    if (st.type == field_type::float_series) {
      write_slab(st.value.id(), st.written, n, H5T_NATIVE_DOUBLE, o.points.f.data(), o.path);
    } else if (st.type == field_type::int_series) {
      write_slab(st.value.id(), st.written, n, H5T_NATIVE_INT64, o.points.i.data(), o.path);
    } else {
      ptrs.clear();
      for (const auto& x : o.points.s) ptrs.push_back(x.c_str());
      write_slab(st.value.id(), st.written, n, vt.id(), ptrs.data(), o.path);
    }
    st.written += n;
    return true;
  });
  for (auto& [path, st] : streamed) {
    if (st.written != st.size) {
      throw format_error("journal of '" + path + "' ends before all of its points (" + std::to_string(st.written) +
                         " of " + std::to_string(st.size) + ")");
    }
  }
}

void write_field(hid_t run, const std::string& path, const field_record& f, const experiment_paths& p,
                 const std::string& id, const std::function<std::string(const file_info&)>& bytes_of,
                 streamed_map* streamed) {
  switch (f.type) {
    case field_type::int_:
    case field_type::float_:
    case field_type::datetime: {
      const bool is_int = f.type == field_type::int_;
      auto d = scalar_dataset(run, path, is_int ? H5T_STD_I64LE : H5T_IEEE_F64LE);
      if (is_int) {
        check(H5Dwrite(d.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &f.atom.i), "H5Dwrite", path);
      } else {
        check(H5Dwrite(d.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &f.atom.d), "H5Dwrite", path);
      }
      field_attrs(d.id(), f);
      if (f.type == field_type::datetime) attr_str(d.id(), "iso8601", format_time(f.atom.d));
      break;
    }
    case field_type::bool_: {
      auto t = bool_type();
      auto d = scalar_dataset(run, path, t.id());
      const std::int8_t v = f.atom.i ? 1 : 0;
      check(H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &v), "H5Dwrite", path);
      field_attrs(d.id(), f);
      break;
    }
    case field_type::string: {
      auto t = vl_string_type();
      auto d = scalar_dataset(run, path, t.id());
      const char* s = f.atom.s.c_str();
      check(H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &s), "H5Dwrite", path);
      field_attrs(d.id(), f);
      break;
    }
    case field_type::string_set:
    case field_type::string_list: {
      write_strings(run, path, f.atom.list, false);
      handle d(check(H5Dopen2(run, path.c_str(), H5P_DEFAULT), "H5Dopen2", path));
      field_attrs(d.id(), f);
      break;
    }
    case field_type::float_series:
    case field_type::int_series:
    case field_type::string_series: {
      auto lcpl = lcpl_intermediate();
      handle g(check(H5Gcreate2(run, path.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", path));
      const auto& s = f.series;
      if (f.points > s.size() && streamed) {
        // Points are in the journal: make the columns at their final size now
        // and fill them block by block in one pass over the journal.
        auto& st = (*streamed)[path];
        const auto n = static_cast<hsize_t>(f.points);
        auto vt = vl_string_type();
        const hid_t value_t = f.type == field_type::float_series ? H5T_IEEE_F64LE
                              : f.type == field_type::int_series ? H5T_STD_I64LE
                                                                 : vt.id();
        st.step = create_1d(g.id(), "step", H5T_IEEE_F64LE, n, true);
        st.value = create_1d(g.id(), "value", value_t, n, true);
        st.timestamp = create_1d(g.id(), "timestamp", H5T_IEEE_F64LE, n, true);
        st.type = f.type;
        st.size = n;
        field_attrs(g.id(), f);
        break;
      }
      write_column(g.id(), "step", s.steps, true);
      if (f.type == field_type::float_series) write_column(g.id(), "value", s.f, true);
      if (f.type == field_type::int_series) write_column(g.id(), "value", s.i, true);
      if (f.type == field_type::string_series) write_strings(g.id(), "value", s.s, true);
      write_column(g.id(), "timestamp", s.timestamps, true);
      field_attrs(g.id(), f);
      break;
    }
    case field_type::file: {
      const std::string data = f.file.data.empty() && f.file.size ? bytes_of(f.file) : f.file.data;
      auto d = create_1d(run, path, H5T_STD_U8LE, data.size(), false);
      if (!data.empty()) {
        check(H5Dwrite(d.id(), H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), "H5Dwrite", path);
      }
      field_attrs(d.id(), f);
      attr_str(d.id(), "filename", f.file.filename);
      attr_num(d.id(), "size", static_cast<std::int64_t>(data.size()));
      break;
    }
    case field_type::array: {
      // The data lives in its own file, written collectively by every rank;
      // an external link makes it appear here to h5py, h5dump and HDFView.
      auto lcpl = lcpl_intermediate();
      const auto target = f.array.file.empty() ? p.array_relative(id, path) : f.array.file;
      check(H5Lcreate_external(target.c_str(), "/data", run, path.c_str(), lcpl.id(), H5P_DEFAULT),
            "H5Lcreate_external", path);
      break;
    }
    default:
      break;
  }
}

// ------------------------------------------------ the partition ledger --
// /runs/<id>/_rankflow/calls/{call,step,items,chunk,partitions}: one row per call
// /runs/<id>/_rankflow/ledger/{call,partition,first,last,rank,start,end,
//   attempts,ok,error,result_offset,result_size}: one row per partition outcome
// /runs/<id>/_rankflow/ledger/results: the encoded results, end to end

void write_ledger(hid_t run, const run_record& rec, const std::string& journal_path) {
  if (rec.calls.empty() && rec.ledger_rows == 0) return;
  const std::string root = reserved_namespace;
  handle g(check(H5Gcreate2(run, root.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", root));
  {
    std::vector<std::int64_t> call, items, chunk, parts;
    std::vector<std::string> step, signature;
    for (const auto& [k, c] : rec.calls) {
      signature.push_back(c.signature);
      call.push_back(c.call);
      items.push_back(c.items);
      chunk.push_back(c.chunk);
      parts.push_back(c.partitions);
      step.push_back(c.step);
    }
    handle cg(check(H5Gcreate2(g.id(), "calls", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", "calls"));
    write_column(cg.id(), "call", call, false);
    write_strings(cg.id(), "step", step, false);
    write_column(cg.id(), "items", items, false);
    write_column(cg.id(), "chunk", chunk, false);
    write_column(cg.id(), "partitions", parts, false);
    write_strings(cg.id(), "signature", signature, false);  // format 1.2
  }
  handle lg(check(H5Gcreate2(g.id(), "ledger", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", "ledger"));
  auto results = create_1d(lg.id(), "results", H5T_STD_U8LE, rec.ledger_bytes, false);
  std::vector<std::int64_t> call, part, first, last, rank, attempts, offset, size;
  std::vector<double> start, end;
  std::vector<std::int8_t> ok;
  std::vector<std::string> error;
  std::string pending;  // results not yet written, written in large slabs
  hsize_t written = 0;
  auto write_pending = [&] {
    if (pending.empty()) return;
    if (written + pending.size() > rec.ledger_bytes)
      throw format_error("the ledger holds more result bytes than counted");
    write_slab(results.id(), written, pending.size(), H5T_NATIVE_UCHAR, pending.data(), "ledger results");
    written += pending.size();
    pending.clear();
  };
  std::uint64_t at = 0;
  auto add = [&](const ledger_entry& e) {
    call.push_back(e.call);
    part.push_back(e.partition);
    first.push_back(e.first);
    last.push_back(e.last);
    rank.push_back(e.rank);
    start.push_back(e.start);
    end.push_back(e.end);
    attempts.push_back(e.attempts);
    ok.push_back(e.ok ? 1 : 0);
    error.push_back(e.error);
    offset.push_back(static_cast<std::int64_t>(at));
    size.push_back(static_cast<std::int64_t>(e.result.size()));
    at += e.result.size();
    pending += e.result;
    if (pending.size() >= (std::size_t{4} << 20)) write_pending();
  };
  if (rec.ledger.size() == rec.ledger_rows) {
    for (const auto& e : rec.ledger) add(e);
  } else {
    // A live run's entries are in its journal only. A ledger_restart drops
    // the entries journaled before it for its calls, so a first pass finds,
    // for each record, the lowest call a later restart drops from.
    std::vector<std::pair<std::uint64_t, std::int64_t>> restarts;  // record number, call
    std::uint64_t record = 0;
    scan_journal(journal_path, [&](op& o) {
      if (o.kind == op_kind::ledger_restart) restarts.emplace_back(record, o.ledger.call.call);
      ++record;
      return true;
    });
    for (std::size_t k = restarts.size(); k-- > 1;)
      restarts[k - 1].second = std::min(restarts[k - 1].second, restarts[k].second);
    std::size_t next = 0;  // the first restart after the current record
    record = 0;
    scan_journal(journal_path, [&](op& o) {
      while (next < restarts.size() && restarts[next].first <= record) ++next;
      ++record;
      if (o.kind != op_kind::ledger) return true;
      if (next < restarts.size() && o.ledger.call.call >= restarts[next].second) return true;  // superseded
      for (const auto& e : o.ledger.entries) add(e);
      return true;
    });
  }
  write_pending();
  if (call.size() != rec.ledger_rows || written != rec.ledger_bytes) {
    throw format_error("the ledger's journal holds " + std::to_string(call.size()) + " entries, " +
                       std::to_string(rec.ledger_rows) + " were counted");
  }
  write_column(lg.id(), "call", call, false);
  write_column(lg.id(), "partition", part, false);
  write_column(lg.id(), "first", first, false);
  write_column(lg.id(), "last", last, false);
  write_column(lg.id(), "rank", rank, false);
  write_column(lg.id(), "start", start, false);
  write_column(lg.id(), "end", end, false);
  write_column(lg.id(), "attempts", attempts, false);
  {
    auto t = bool_type();
    auto d = create_1d(lg.id(), "ok", t.id(), ok.size(), false);
    if (!ok.empty()) check(H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ok.data()), "H5Dwrite", "ok");
  }
  write_strings(lg.id(), "error", error, false);
  write_column(lg.id(), "result_offset", offset, false);
  write_column(lg.id(), "result_size", size, false);
}

void write_run(hid_t file, const run_record& rec, const experiment_paths& p,
               const std::function<std::string(const file_info&)>& bytes_of, const std::string& journal_path) {
  const auto& i = rec.info;
  const std::string where = "/runs/" + i.id;
  if (H5Lexists(file, "runs", H5P_DEFAULT) <= 0) {
    handle g(check(H5Gcreate2(file, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", "/runs"));
  }
  if (H5Lexists(file, where.c_str(), H5P_DEFAULT) > 0) {
    check(H5Ldelete(file, where.c_str(), H5P_DEFAULT), "H5Ldelete", where);  // re-merge after a crash
  }
  handle g(check(H5Gcreate2(file, where.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", where));
  attr_str(g.id(), "id", i.id);
  attr_str(g.id(), "name", i.name);
  attr_str(g.id(), "status", i.status);
  attr_str(g.id(), "reason", i.reason);
  attr_str(g.id(), "start_time", format_time(i.start_time));
  attr_str(g.id(), "end_time", format_time(i.end_time));
  attr_num(g.id(), "start_unix", i.start_time);
  attr_num(g.id(), "end_unix", i.end_time);
  attr_num(g.id(), "ranks", i.ranks);
  attr_strs(g.id(), "hosts", i.hosts);
  attr_str(g.id(), "command_line", i.command_line);
  attr_str(g.id(), "rankflow_version", i.version);
  attr_str(g.id(), "mode", i.mode);
  for (const auto& [k, v] : i.context) attr_str(g.id(), k.c_str(), v);
  streamed_map streamed;
  for (const auto& [path, f] : rec.fields) write_field(g.id(), path, f, p, i.id, bytes_of, &streamed);
  if (!streamed.empty()) stream_points(journal_path, streamed);
  write_ledger(g.id(), rec, journal_path);
}

handle create_experiment_file(const std::string& path) {
  handle fcpl(check(H5Pcreate(H5P_FILE_CREATE), "H5Pcreate", path));
  // Track link creation order so tools can list runs in the order they ran.
  check(H5Pset_link_creation_order(fcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
        "H5Pset_link_creation_order", path);
  handle f(check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), H5P_DEFAULT), "H5Fcreate", path));
  attr_str(f.id(), "rankflow_format", "rankflow experiment file; see docs/format.md");
  attr_num(f.id(), "rankflow_format_major", format_major);
  attr_num(f.id(), "rankflow_format_minor", format_minor);
  handle g(check(H5Gcreate2(f.id(), "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", "/runs"));
  return f;
}

// See set_other_file_advice.
std::string other_file_advice = "pass another path with --experiment";

handle open_checked(const std::string& file, unsigned flags) {
  const htri_t is = H5Fis_hdf5(file.c_str());
  if (is <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw format_error("'" + file + "' is not an HDF5 file, so not a rankflow experiment file: " + other_file_advice +
                       ", or move this file away");
  }
  hid_t id = H5Fopen(file.c_str(), flags, H5P_DEFAULT);
  if (id < 0) {
    std::string detail;
    try {
      check(id, "H5Fopen", file);
    } catch (const storage_error& e) {
      detail = e.what();
    }
    throw format_error("'" + file + "' cannot be opened; it is probably truncated or damaged (" + detail +
                       "). Earlier copies: none are kept by rankflow; restore it from a backup or move it away");
  }
  handle f(id);
  if (!has_attr(f.id(), "rankflow_format_major")) {
    throw format_error("'" + file + "' is an HDF5 file but not a rankflow experiment file (no rankflow_format_major " +
                       "attribute at /): " + other_file_advice);
  }
  // Read as signed 64-bit integers and compared whole: a major of 2^32+1 or
  // -1 must not pass for 1 after a narrowing.
  std::int64_t major = 0, minor = 0;
  try {
    major = read_attr_num<std::int64_t>(f.id(), "rankflow_format_major");
    minor = read_attr_num<std::int64_t>(f.id(), "rankflow_format_minor");
  } catch (const format_error& e) {
    throw format_error("'" + file + "': " + e.what() + "; this rankflow reads format " + std::to_string(format_major) +
                       ".x");
  }
  const auto version = std::to_string(major) + "." + std::to_string(minor);
  if (major > format_major) {
    throw format_error("'" + file + "' was written by a newer rankflow (format " + version +
                       "); this rankflow reads format " + std::to_string(format_major) +
                       ".x: upgrade rankflow to read it");
  }
  if (major < format_major) {
    throw format_error("'" + file + "' says it has format " + version + ", which no rankflow writes (the first is " +
                       "1.0); this rankflow reads format " + std::to_string(format_major) + ".x: the file is damaged");
  }
  return f;
}

run_info read_info(hid_t g, const std::string& id) {
  run_info i;
  i.id = read_attr_str(g, "id");
  if (i.id.empty()) i.id = id;
  i.name = read_attr_str(g, "name");
  i.status = read_attr_str(g, "status");
  i.reason = read_attr_str(g, "reason");
  i.start_time = read_attr_num<double>(g, "start_unix");
  i.end_time = read_attr_num<double>(g, "end_unix");
  i.ranks = read_attr_num<int>(g, "ranks");
  i.hosts = read_attr_strs(g, "hosts");
  i.command_line = read_attr_str(g, "command_line");
  i.version = read_attr_str(g, "rankflow_version");
  i.mode = read_attr_str(g, "mode");
  for (const char* k : {"slurm_job_id", "slurm_array_job_id", "slurm_array_task_id", "slurm_nodelist",
                        "slurm_restart_count", "slurm_partition", "slurm_job_name", "resumes"}) {
    if (has_attr(g, k)) i.context[k] = read_attr_str(g, k);
  }
  return i;
}

template <class T>
std::vector<T> read_column(hid_t g, const char* name) {
  const std::string where = "'" + h5::name_of(g) + "/" + name + "'";
  if (H5Lexists(g, name, H5P_DEFAULT) <= 0) throw format_error(where + " is missing");
  handle d(check(H5Dopen2(g, name, H5P_DEFAULT), "H5Dopen2", where));
  const auto cls = class_of(d.id(), false, where);
  if (cls != H5T_INTEGER && !(std::is_floating_point_v<T> && cls == H5T_FLOAT)) {
    throw format_error(where + " should hold " + (std::is_floating_point_v<T> ? "numbers" : "integers"));
  }
  const auto n = points_of(d.id(), false, where);
  std::vector<T> v(static_cast<std::size_t>(n));
  const hid_t mem_t = std::is_floating_point_v<T> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
  if (n) check(H5Dread(d.id(), mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dread", where);
  return v;
}

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
};

void walk_group(hid_t group, const std::string& prefix, walk_state& ws);

std::string field_where(const walk_state& ws, const std::string& path) {
  return "field '" + path + "' of run " + ws.rec->info.id;
}

// A dataset holding one element of the classes given.
void expect_scalar(hid_t d, H5O_type_t t, std::initializer_list<H5T_class_t> classes, const std::string& where,
                   const char* what) {
  if (t != H5O_TYPE_DATASET) throw format_error(where + " should be a dataset holding " + what + ", not a group");
  const auto cls = class_of(d, false, where);
  if (std::find(classes.begin(), classes.end(), cls) == classes.end() || points_of(d, false, where) != 1) {
    throw format_error(where + " should hold " + what + " (wrong datatype or shape)");
  }
}

void read_array_link(hid_t loc, const std::string& name, const std::string& path, const H5L_info_t& info,
                     walk_state& ws) {
  field_record f;
  f.type = field_type::array;
  std::vector<char> buf(info.u.val_size);
  check(H5Lget_val(loc, name.c_str(), buf.data(), buf.size(), H5P_DEFAULT), "H5Lget_val", path);
  const char* file = nullptr;
  const char* obj = nullptr;
  unsigned flags = 0;
  check(H5Lunpack_elink_val(buf.data(), buf.size(), &flags, &file, &obj), "H5Lunpack_elink_val", path);
  f.array.file = file ? file : "";
  // Shape and type from the array file when it can be reached (a run whose
  // array files were moved away still lists its other fields).
  hid_t d = H5I_INVALID_HID;
  H5E_BEGIN_TRY { d = H5Dopen2(loc, name.c_str(), H5P_DEFAULT); }
  H5E_END_TRY;
  H5Eclear2(H5E_DEFAULT);
  if (d >= 0) {
    handle dh(d);
    handle sp(check(H5Dget_space(d), "H5Dget_space", path));
    const int nd = check(H5Sget_simple_extent_ndims(sp.id()), "H5Sget_simple_extent_ndims", path);
    std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(nd, 0)));
    check(H5Sget_simple_extent_dims(sp.id(), dims.data(), nullptr), "H5Sget_simple_extent_dims", path);
    f.array.shape.assign(dims.begin(), dims.end());
    f.array.dtype = read_attr_str(d, "dtype");
    f.rank = read_attr_num<int>(d, "rank");
    f.updated = read_attr_num<double>(d, "updated");
  }
  ws.rec->fields[path] = std::move(f);
}

void read_object(hid_t loc, const std::string& name, const H5L_info_t& info, const std::string& prefix,
                 walk_state& ws) {
  const std::string path = prefix.empty() ? name : prefix + "/" + name;
  const auto where = field_where(ws, path);
  if (path.size() > 1024) throw format_error(where + " is longer than any path rankflow writes (1024 characters)");
  if (info.type == H5L_TYPE_EXTERNAL) return read_array_link(loc, name, path, info, ws);
  if (info.type == H5L_TYPE_SOFT) {
    std::string target(info.u.val_size, '\0');
    if (H5Lget_val(loc, name.c_str(), target.data(), target.size(), H5P_DEFAULT) < 0) H5Eclear2(H5E_DEFAULT);
    target.erase(std::find(target.begin(), target.end(), '\0'), target.end());
    throw format_error(where + " is a soft link (to '" + target + "'); rankflow writes none, so another program " +
                       "changed this file: remove the link to read the run");
  }
  if (info.type != H5L_TYPE_HARD) {
    throw format_error(where + " is a user-defined link (type " + std::to_string(static_cast<int>(info.type)) +
                       "), which rankflow does not write");
  }
  H5O_type_t otype = H5O_TYPE_UNKNOWN;
  const auto key = h5::key_of(loc, name, &otype);
  if (auto g = ws.open_groups.find(key); g != ws.open_groups.end()) {
    throw format_error(where + " is a hard link back to '" + g->second + "', a group that holds it: a cycle, " +
                       "which rankflow never writes");
  }
  if (!ws.seen.insert(key).second) {
    throw format_error(where + " is an object reached twice (a second hard link to it), which rankflow never writes");
  }
  if (otype != H5O_TYPE_GROUP && otype != H5O_TYPE_DATASET) {
    throw format_error(where + " is neither a group nor a dataset");
  }
  handle obj(check(H5Oopen(loc, name.c_str(), H5P_DEFAULT), "H5Oopen", path));
  const bool typed = has_attr(obj.id(), "rankflow_type");
  const auto type_text = read_attr_str(obj.id(), "rankflow_type");
  const auto type = type_from_name(type_text);
  if (otype == H5O_TYPE_GROUP && !typed) {  // a namespace
    ws.open_groups.emplace(key, h5::name_of(obj.id()));
    walk_group(obj.id(), path, ws);
    ws.open_groups.erase(key);
    return;
  }
  if (!typed) throw format_error(where + " is a dataset without a rankflow_type attribute");
  if (type == field_type::none || type == field_type::array) {
    throw format_error(where + " has " +
                       (type == field_type::array
                            ? "rankflow_type 'Array' but is no external link"
                            : "an unknown rankflow_type '" + type_text + "' (written by a newer rankflow?)"));
  }
  field_record f;
  f.type = type;
  f.rank = read_attr_num<int>(obj.id(), "rank");
  f.updated = read_attr_num<double>(obj.id(), "updated");
  f.atom.type = type;
  const hid_t d = obj.id();
  switch (type) {
    case field_type::int_:
      expect_scalar(d, otype, {H5T_INTEGER}, where, "one integer");
      check(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &f.atom.i), "H5Dread", path);
      break;
    case field_type::float_:
    case field_type::datetime:
      expect_scalar(d, otype, {H5T_FLOAT, H5T_INTEGER}, where, "one number");
      check(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &f.atom.d), "H5Dread", path);
      break;
    case field_type::bool_: {
      expect_scalar(d, otype, {H5T_ENUM, H5T_INTEGER}, where, "one boolean");
      if (class_of(d, false, where) == H5T_ENUM) {
        std::int8_t v = 0;
        auto t = bool_type();
        check(H5Dread(d, t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &v), "H5Dread", path);
        f.atom.i = v != 0;
      } else {
        std::int64_t v = 0;
        check(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v), "H5Dread", path);
        f.atom.i = v != 0;
      }
      break;
    }
    case field_type::string:
      expect_scalar(d, otype, {H5T_STRING}, where, "one string");
      f.atom.s = read_vl_strings(d, false, where).at(0);
      break;
    case field_type::string_set:
    case field_type::string_list:
      if (otype != H5O_TYPE_DATASET) throw format_error(where + " should be a dataset of strings, not a group");
      f.atom.list = read_vl_strings(d, false, where);
      break;
    case field_type::float_series:
    case field_type::int_series:
    case field_type::string_series: {
      if (otype != H5O_TYPE_GROUP) {
        throw format_error(where + " should be a group of step, value and timestamp columns, not a dataset");
      }
      auto& s = f.series;
      s.type = type;
      s.steps = read_column<double>(d, "step");
      s.timestamps = read_column<double>(d, "timestamp");
      std::size_t values = 0;
      if (type == field_type::float_series) values = (s.f = read_column<double>(d, "value")).size();
      if (type == field_type::int_series) values = (s.i = read_column<std::int64_t>(d, "value")).size();
      if (type == field_type::string_series) {
        if (H5Lexists(d, "value", H5P_DEFAULT) <= 0) throw format_error(where + " has no value column");
        handle v(check(H5Dopen2(d, "value", H5P_DEFAULT), "H5Dopen2", path));
        values = (s.s = read_vl_strings(v.id(), false, where + ", column value")).size();
      }
      if (values != s.steps.size() || s.timestamps.size() != s.steps.size()) {
        throw format_error(where + " has columns of different lengths (step " + std::to_string(s.steps.size()) +
                           ", value " + std::to_string(values) + ", timestamp " + std::to_string(s.timestamps.size()) +
                           ")");
      }
      f.points = s.steps.size();
      f.last_step = s.steps.empty() ? -1.0 : s.steps.back();
      break;
    }
    case field_type::file: {
      if (otype != H5O_TYPE_DATASET || class_of(d, false, where) != H5T_INTEGER) {
        throw format_error(where + " should be a dataset of bytes");
      }
      f.file.filename = read_attr_str(d, "filename");
      const auto n = static_cast<std::uint64_t>(points_of(d, false, where));
      f.file.size = read_attr_num<std::uint64_t>(d, "size", n);
      if (f.file.size != n) {
        throw format_error(where + " says it holds " + std::to_string(f.file.size) + " bytes, its dataset holds " +
                           std::to_string(n));
      }
      if (ws.with_bytes && f.file.size) {
        f.file.data.resize(f.file.size);
        check(H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, f.file.data.data()), "H5Dread", path);
      }
      break;
    }
    default:  // none and array are refused above
      break;
  }
  ws.rec->fields[path] = std::move(f);
}

void walk_group(hid_t group, const std::string& prefix, walk_state& ws) {
  // for_each_link rethrows here what read_object throws inside HDF5's iteration.
  h5::for_each_link(group, prefix.empty() ? "run " + ws.rec->info.id : prefix,
                    [&](const char* name, const H5L_info_t& info) {
                      if (prefix.empty() && std::string_view(name) == reserved_namespace) return;  // see read_ledger
                      read_object(group, name, info, prefix, ws);
                    });
}

void read_ledger(hid_t run, run_record& rec, bool with_results) {
  const std::string root = reserved_namespace;
  if (H5Lexists(run, root.c_str(), H5P_DEFAULT) <= 0) return;
  handle g(check(H5Gopen2(run, root.c_str(), H5P_DEFAULT), "H5Gopen2", root));
  if (H5Lexists(g.id(), "calls", H5P_DEFAULT) > 0) {
    handle cg(check(H5Gopen2(g.id(), "calls", H5P_DEFAULT), "H5Gopen2", "calls"));
    const auto call = read_column<std::int64_t>(cg.id(), "call");
    const auto items = read_column<std::int64_t>(cg.id(), "items");
    const auto chunk = read_column<std::int64_t>(cg.id(), "chunk");
    const auto parts = read_column<std::int64_t>(cg.id(), "partitions");
    handle sd(check(H5Dopen2(cg.id(), "step", H5P_DEFAULT), "H5Dopen2", "calls/step"));
    const auto step = read_vl_strings(sd.id(), false, "calls/step");
    std::vector<std::string> signature;  // format 1.2; absent before
    if (H5Lexists(cg.id(), "signature", H5P_DEFAULT) > 0) {
      handle gd(check(H5Dopen2(cg.id(), "signature", H5P_DEFAULT), "H5Dopen2", "calls/signature"));
      signature = read_vl_strings(gd.id(), false, "calls/signature");
    }
    for (const auto* v : {&items, &chunk, &parts}) {
      if (v->size() != call.size())
        throw format_error("the ledger of run " + rec.info.id + " has call columns of different lengths");
    }
    for (std::size_t k = 0; k < call.size(); ++k) {
      rec.calls[call[k]] = call_info{call[k], k < step.size() ? step[k] : "", items.at(k), chunk.at(k), parts.at(k),
                                     k < signature.size() ? signature[k] : ""};
    }
  }
  if (H5Lexists(g.id(), "ledger", H5P_DEFAULT) <= 0) return;
  handle lg(check(H5Gopen2(g.id(), "ledger", H5P_DEFAULT), "H5Gopen2", "ledger"));
  const auto call = read_column<std::int64_t>(lg.id(), "call");
  const auto part = read_column<std::int64_t>(lg.id(), "partition");
  const auto first = read_column<std::int64_t>(lg.id(), "first");
  const auto last = read_column<std::int64_t>(lg.id(), "last");
  const auto rank = read_column<std::int64_t>(lg.id(), "rank");
  const auto start = read_column<double>(lg.id(), "start");
  const auto end = read_column<double>(lg.id(), "end");
  const auto attempts = read_column<std::int64_t>(lg.id(), "attempts");
  const auto offset = read_column<std::int64_t>(lg.id(), "result_offset");
  const auto size = read_column<std::int64_t>(lg.id(), "result_size");
  std::vector<std::int8_t> ok(call.size());
  {
    handle d(check(H5Dopen2(lg.id(), "ok", H5P_DEFAULT), "H5Dopen2", "ledger/ok"));
    // Checked before the read: HDF5 fills `ok` with as many values as the dataset holds.
    if (class_of(d.id(), false, "ledger/ok") != H5T_ENUM ||
        points_of(d.id(), false, "ledger/ok") != static_cast<hssize_t>(ok.size())) {
      throw format_error("the ledger of run " + rec.info.id + " has an 'ok' column of another type or length");
    }
    auto t = bool_type();
    if (!ok.empty()) check(H5Dread(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ok.data()), "H5Dread", "ledger/ok");
  }
  handle ed(check(H5Dopen2(lg.id(), "error", H5P_DEFAULT), "H5Dopen2", "ledger/error"));
  const auto error = read_vl_strings(ed.id(), false, "ledger/error");
  for (const auto* v : {&part, &first, &last, &rank, &attempts, &offset, &size}) {
    if (v->size() != call.size())
      throw format_error("the ledger of run " + rec.info.id + " has columns of different lengths");
  }
  if (start.size() != call.size() || end.size() != call.size() || error.size() != call.size())
    throw format_error("the ledger of run " + rec.info.id + " has columns of different lengths");
  std::string blob;
  if (with_results) {
    handle d(check(H5Dopen2(lg.id(), "results", H5P_DEFAULT), "H5Dopen2", "ledger/results"));
    handle sp(check(H5Dget_space(d.id()), "H5Dget_space", "ledger/results"));
    blob.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(sp.id())));
    if (!blob.empty()) {
      check(H5Dread(d.id(), H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()), "H5Dread", "ledger/results");
    }
  }
  rec.ledger.resize(call.size());
  for (std::size_t k = 0; k < call.size(); ++k) {
    auto& e = rec.ledger[k];
    e.call = call[k];
    e.partition = part[k];
    e.first = first[k];
    e.last = last[k];
    e.rank = static_cast<std::int32_t>(rank[k]);
    e.start = start.at(k);
    e.end = end.at(k);
    e.attempts = static_cast<std::int32_t>(attempts[k]);
    e.ok = ok[k] != 0;
    e.error = k < error.size() ? error[k] : "";
    if (offset[k] < 0 || size[k] < 0 || !std::in_range<std::int32_t>(rank[k]) ||
        !std::in_range<std::int32_t>(attempts[k])) {
      throw format_error("the ledger of run " + rec.info.id + " holds a negative or out-of-range value in row " +
                         std::to_string(k));
    }
    const auto o = static_cast<std::uint64_t>(offset[k]), n = static_cast<std::uint64_t>(size[k]);
    if (with_results) {
      // Compared without o + n, which could wrap.
      if (o > blob.size() || n > blob.size() - o)
        throw format_error("the ledger of run " + rec.info.id + " points past its results");
      e.result.assign(blob.data() + o, n);
    }
    rec.ledger_bytes += n;
    auto& count = rec.ledger_counts[e.call];
    ++count.rows;
    count.bytes += n;
  }
  rec.ledger_rows = rec.ledger.size();
}

std::vector<std::string> run_ids_in_file(hid_t f) {
  std::vector<std::string> ids;
  if (H5Lexists(f, "runs", H5P_DEFAULT) <= 0) return ids;
  handle g(check(H5Gopen2(f, "runs", H5P_DEFAULT), "H5Gopen2", "/runs"));
  h5::for_each_link(g.id(), "/runs", [&](const char* name, const H5L_info_t&) { ids.emplace_back(name); });
  std::sort(ids.begin(), ids.end(), [](const auto& a, const auto& b) {
    const int x = run_number(a), y = run_number(b);
    return x != y ? x < y : a < b;
  });
  return ids;
}

// The copy a merge writes before renaming it over the experiment file:
// `.<file>.tmp-<host>-<pid>` in the sidecar, so that recover can tell whose
// it is (files of older versions are `.<file>.tmp-<pid>`).
std::string temp_copy_prefix(const experiment_paths& p) { return "." + basename_of(p.file) + ".tmp-"; }

std::string safe_host() {
  auto h = this_host();
  for (auto& c : h) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_') c = '_';
  }
  return h;
}

/// Removes temp copies left by merges that were killed (kill -9 during the
/// end-of-run copy leaves a whole copy of the experiment behind). Called with
/// the sidecar's lock held: every merge writes its copy under that lock, so no
/// copy is being written now. A copy from a live process of this host is
/// still left alone, in case a writer lost its lock (a file system without
/// working flock); its name says which host and process wrote it.
std::vector<std::string> remove_stale_copies(const experiment_paths& p) {
  std::vector<std::string> removed;
  const auto prefix = temp_copy_prefix(p);
  const auto me = safe_host();
  for (const auto& name : list_dir(p.dir)) {
    if (!name.starts_with(prefix)) continue;
    const auto rest = name.substr(prefix.size());
    const auto dash = rest.rfind('-');
    const auto pid_text = dash == std::string::npos ? rest : rest.substr(dash + 1);
    const auto host = dash == std::string::npos ? std::string() : rest.substr(0, dash);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::atol(pid_text.c_str());
    if ((host.empty() || host == me) && pid > 0 && pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM)) {
      continue;  // its writer is alive
    }
    if (::unlink((p.dir + "/" + name).c_str()) == 0) removed.push_back(name);
  }
  return removed;
}

/// Closes a merge's copy after a failure. HDF5 1.10 frees a file's insides
/// when the flush in H5Fclose fails (a full disk) yet keeps its id, and closes
/// that id again at exit: a segfault in H5F__close_cb. So the copy (being
/// thrown away; its blocks are what filled the disk) is truncated first, then
/// flushed, and closed only when that flush worked, which leaves nothing for
/// the close to fail on. If even that flush fails, the id is left open: HDF5
/// closes it once at exit, which does not crash; closing it twice does.
void abandon_copy(handle& f) noexcept {
  if (!f) return;
  const hid_t id = f.release();
  const hid_t fapl = H5Fget_access_plist(id);
  void* vfd = nullptr;
  if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(id, fapl, &vfd) >= 0 && vfd != nullptr) {
    [[maybe_unused]] const int rc = ::ftruncate(*static_cast<int*>(vfd), 0);
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0) H5Fclose(id);
  H5Eclear2(H5E_DEFAULT);
}

void merge_locked(const experiment_paths& p, const run_record& rec, const std::string& journal_path) {
  const auto tmp = p.dir + "/" + temp_copy_prefix(p) + safe_host() + "-" + std::to_string(::getpid());
  // Whatever fails below, the copy goes; the experiment file is untouched.
  struct remove_tmp {
    const std::string& path;
    bool armed = true;
    ~remove_tmp() {
      if (armed) ::unlink(path.c_str());
    }
  } guard{tmp};
  {
    handle f;
    struct close_on_error {
      handle& f;
      ~close_on_error() { abandon_copy(f); }  // f is empty once closed below
    } closer{f};
    if (exists(p.file)) {
      copy_file(p.file, tmp);
      try {
        f = open_checked(tmp, H5F_ACC_RDWR);  // the copy is checked: one open, not two
      } catch (const format_error& e) {
        ::unlink(tmp.c_str());
        std::string msg = e.what();
        for (auto at = msg.find(tmp); at != std::string::npos; at = msg.find(tmp)) msg.replace(at, tmp.size(), p.file);
        throw format_error(msg);
      }
    } else {
      f = create_experiment_file(tmp);
    }
    write_run(
        f.id(), rec, p,
        [&](const file_info& fi) {
          return read_range(journal_path, static_cast<std::uint64_t>(fi.journal_offset), fi.size);
        },
        journal_path);
    check(H5Fflush(f.id(), H5F_SCOPE_GLOBAL), "H5Fflush", tmp);
    // Released before the check: a failed H5Fclose must not be retried by
    // the handle's destructor (see abandon_copy).
    const herr_t closed = H5Fclose(f.release());
    check(closed, "H5Fclose", tmp);
  }
  fsync_path(tmp, false);
  if (::rename(tmp.c_str(), p.file.c_str()) != 0) throw storage_error(sys_error("cannot replace", p.file));
  guard.armed = false;
  fsync_path(dirname_of(p.file), true);
}

}  // namespace

experiment_paths::experiment_paths(std::string f) : file(std::move(f)), dir(file + ".d") {}

std::string experiment_paths::journal(const std::string& id) const { return dir + "/" + id + ".journal"; }

namespace {
// FNV-1a, 64 bits: a stable name for a field path (the same on every rank and
// in every version, unlike std::hash).
std::string path_hash(const std::string& s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}
}  // namespace

// Array files are written through MPI-IO, and Open MPI's OMPIO backend
// aborts the whole job ("buffer overflow detected") when the path it is
// given is longer than about 244 characters (measured with Open MPI 4.1:
// 244 works, 245 aborts; ROMIO has no such limit). A name part may also be
// 255 characters, which no file system takes once ".h5" is appended. So a
// last part over array_name_kept characters becomes a prefix, '+' and a hash
// of the whole path ('+' is not allowed in field paths: a mapped name never
// equals a kept one), and a path that would still exceed array_path_budget
// becomes "+<hash>.h5" directly in the run's directory. The field keeps its
// path inside the run; only the file behind its external link is renamed.
std::string experiment_paths::array_relative(const std::string& id, const std::string& path) const {
  const std::string base = basename_of(file) + ".d/arrays/" + id + "/";
  const auto slash = path.rfind('/');
  const std::string dirs = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string last = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string name =
      last.size() <= array_name_kept ? last : last.substr(0, array_name_prefix) + "+" + path_hash(path);
  std::string rel = base + dirs + name + ".h5";
  if (dirname_of(file).size() + 1 + rel.size() > array_path_budget) rel = base + "+" + path_hash(path) + ".h5";
  return rel;
}

std::string experiment_paths::array_absolute(const std::string& id, const std::string& path) const {
  return dirname_of(file) + "/" + array_relative(id, path);
}

void set_other_file_advice(std::string advice) { other_file_advice = std::move(advice); }

bool check_file(const std::string& file) {
  if (!exists(file)) return false;
  open_checked(file, H5F_ACC_RDONLY);
  return true;
}

run_record replay(const std::string& journal_path, bool* torn, bool keep_points) {
  run_record rec;
  rec.keep_points = keep_points;
  std::vector<rejection> ignored;  // a journal holds accepted operations only
  const bool cut = scan_journal(journal_path, [&](op& o) {
    rec.apply(o, ignored);
    return true;
  });
  if (torn) *torn = cut;
  return rec;
}

std::vector<run_info> list_runs(const std::string& file) {
  std::vector<run_info> out;
  experiment_paths p(file);
  if (check_file(file)) {
    auto f = open_checked(file, H5F_ACC_RDONLY);
    for (const auto& id : run_ids_in_file(f.id())) {
      handle g(check(H5Gopen2(f.id(), ("runs/" + id).c_str(), H5P_DEFAULT), "H5Gopen2", id));
      out.push_back(read_info(g.id(), id));
    }
  }
  for (const auto& id : journal_ids(p)) {
    try {
      auto jc = read_journal(p.journal(id), true);
      if (jc.ops.empty() || jc.ops[0].kind != op_kind::begin) continue;
      auto info = jc.ops[0].info;
      if (!journal_is_live(p.journal(id))) {
        info.status = "killed";
        info.reason = "not recovered yet: run `rankflow recover " + file + "` or start a run to recover it";
      }
      std::erase_if(out, [&](const run_info& r) { return r.id == info.id; });
      out.push_back(info);
    } catch (const storage_error&) {  // not a journal, or gone (its run just finished)
    }
  }
  return out;
}

run_record load_run(const std::string& file, const std::string& id, bool with_bytes) {
  experiment_paths p(file);
  if (exists(p.journal(id))) {
    auto rec = replay(p.journal(id));
    if (rec.info.id == id) {
      if (rec.info.status == "running" && !journal_is_live(p.journal(id))) {
        rec.info.status = "killed";
        rec.info.reason = "not recovered yet";
      }
      if (with_bytes) {
        for (auto& [path, f] : rec.fields) {
          if (f.type == field_type::file && f.file.size) {
            f.file.data = read_range(p.journal(id), static_cast<std::uint64_t>(f.file.journal_offset), f.file.size);
          }
        }
      }
      return rec;
    }
  }
  std::vector<std::string> ids;
  if (check_file(file)) {
    auto f = open_checked(file, H5F_ACC_RDONLY);
    ids = run_ids_in_file(f.id());
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
      handle g(check(H5Gopen2(f.id(), ("runs/" + id).c_str(), H5P_DEFAULT), "H5Gopen2", id));
      run_record rec;
      try {
        rec.info = read_info(g.id(), id);
        walk_state ws{&rec, with_bytes, {}, {}};
        const auto key = h5::key_of(g.id(), ".");
        ws.seen.insert(key);
        ws.open_groups.emplace(key, "/runs/" + id);
        walk_group(g.id(), "", ws);
        read_ledger(g.id(), rec, with_bytes);
      } catch (const format_error& e) {
        throw format_error("'" + file + "': " + e.what());
      }
      return rec;
    }
  }
  for (const auto& j : journal_ids(p)) ids.push_back(j);
  std::string known;
  for (const auto& i : ids) known += (known.empty() ? "" : ", ") + i;
  throw usage_error("run '" + id + "' is not in '" + file + "' (runs there: " + (known.empty() ? "none" : known) + ")");
}

std::vector<double> read_array(const std::string& file, const array_info& a, std::vector<std::uint64_t>* shape) {
  const auto path = dirname_of(file) + "/" + a.file;
  auto f = h5::open_read(path);
  return h5::read_all(f.id(), "data", shape);
}

std::string create_run(const experiment_paths& p, journal_writer& out) {
  int top = 0;
  dir_lock lock(p);
  if (exists(p.file)) {
    auto f = open_checked(p.file, H5F_ACC_RDONLY);
    for (const auto& id : run_ids_in_file(f.id())) top = std::max(top, run_number(id));
  }
  for (const auto& id : journal_ids(p)) top = std::max(top, run_number(id));
  for (const auto& id : list_dir(p.dir + "/arrays")) top = std::max(top, run_number(id));
  const auto id = "RUN-" + std::to_string(top + 1);
  out = journal_writer::create(p.journal(id));
  fsync_path(p.dir, true);  // the journal's name survives a crash of the machine too
  return id;
}

namespace {
// Why a run cannot be resumed now: who holds it, and what to do.
std::string still_running(const std::string& file, const run_info& r) {
  const auto journal = experiment_paths(file).journal(r.id);
  std::string hosts;
  for (const auto& h : std::set<std::string>(r.hosts.begin(), r.hosts.end())) hosts += (hosts.empty() ? "" : ", ") + h;
  std::string who;
  if (const long pid = lock_holder(journal); pid > 0) {
    who = "process " + std::to_string(pid) + " on " + (this_host().empty() ? "this host" : this_host()) + " holds it";
  } else {
    who = "a process on another host holds it";
  }
  return "run " + r.id + " ('" + r.name + "') of '" + file + "' is still running: its journal " + journal +
         " is locked (" + who + (hosts.empty() ? "" : "; the run started on " + hosts) +
         "). Wait for that job to end, or kill its processes (after `kill -9` of mpirun its ranks can live on), " +
         "then resume again";
}
}  // namespace

std::string find_resumable(const std::string& file, const std::string& name, const std::string& requested) {
  const auto runs = list_runs(file);
  if (requested.starts_with("slurm-job:")) {
    // A requeued job continues its own run, never another job's.
    const auto job = requested.substr(10);
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      const auto j = it->context.find("slurm_job_id");
      if (it->name == name && j != it->context.end() && j->second == job &&
          (it->status == "killed" || it->status == "failed")) {
        return it->id;
      }
    }
    return {};
  }
  if (requested.empty() || requested == "last") {
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      if (it->name != name) continue;
      // A later run still held by a live process (after kill -9 of mpirun its
      // ranks can live on, holding the journal's lock) is what the user means
      // to resume: starting a new run would abandon its finished partitions.
      if (it->status == "running") throw usage_error("--resume: " + still_running(file, *it));
      if (it->status == "killed" || it->status == "failed") return it->id;
    }
    return {};
  }
  for (const auto& r : runs) {
    if (r.id != requested) continue;
    if (r.name != name) {
      throw usage_error("--resume " + requested + ": that run is named '" + r.name + "', this program starts '" + name +
                        "'; resume it with the program that started it");
    }
    if (r.status == "succeeded") {
      throw usage_error("--resume " + requested + ": the run succeeded, there is nothing to resume; run without " +
                        "--resume to start a new run");
    }
    if (r.status == "running") throw usage_error("--resume " + requested + ": " + still_running(file, r));
    return r.id;
  }
  std::string known;
  for (const auto& r : runs) known += (known.empty() ? "" : ", ") + r.id + " (" + r.name + ", " + r.status + ")";
  throw usage_error("--resume " + requested + ": no such run in '" + file +
                    "' (runs there: " + (known.empty() ? "none" : known) + ")");
}

void reopen_run(const experiment_paths& p, const std::string& id, journal_writer& out) {
  dir_lock lock(p);
  if (exists(p.journal(id))) {
    throw usage_error("cannot resume run " + id + ": " +
                      (journal_is_live(p.journal(id)) ? "another job is running it" : "its journal was not recovered") +
                      " (" + p.journal(id) + ")");
  }
  const auto tmp = p.journal(id) + ".resuming";
  if (exists(tmp)) {
    if (journal_is_live(tmp))
      throw usage_error("cannot resume run " + id + ": another job is resuming it (" + tmp + ")");
    ::unlink(tmp.c_str());  // left by a resume that was killed before it began
  }
  out = journal_writer::create(tmp);
}

void commit_reopened(const experiment_paths& p, const std::string& id, journal_writer& j) {
  j.sync();
  dir_lock lock(p);
  if (exists(p.journal(id))) throw usage_error("cannot resume run " + id + ": another job resumed it meanwhile");
  j.rename_to(p.journal(id));
  fsync_path(p.dir, true);
}

void merge_run(const experiment_paths& p, const run_record& rec, const std::string& journal_path) {
  dir_lock lock(p);
  merge_locked(p, rec, journal_path);
}

std::vector<std::string> recover(const std::string& file) {
  experiment_paths p(file);
  std::vector<std::string> done;
  if (!exists(p.dir)) return done;
  dir_lock lock(p);
  remove_stale_copies(p);
  for (const auto& id : journal_ids(p)) {
    const auto j = p.journal(id);
    if (journal_is_live(j)) continue;
    bool torn = false;
    run_record rec;
    try {
      rec = replay(j, &torn, false);
    } catch (const format_error&) {
      struct stat st {};
      // Shorter than the journal magic: killed while creating it; else not ours.
      if (::stat(j.c_str(), &st) == 0 && st.st_size < 8) ::unlink(j.c_str());
      continue;
    }
    if (rec.info.id.empty()) {  // killed before its first record: nothing to keep
      ::unlink(j.c_str());
      continue;
    }
    if (rec.info.status == "running" || rec.info.status.empty()) {
      rec.info.status = "killed";
      rec.info.reason = "the job ended without stopping the run (killed, crashed or out of time); recovered what it " +
                        std::string("had made durable") + (torn ? " (a record cut short by the kill was dropped)" : "");
      double last = rec.info.start_time;
      for (const auto& [path, f] : rec.fields) last = std::max(last, f.updated);
      rec.info.end_time = last;
    }
    merge_locked(p, rec, j);
    ::unlink(j.c_str());
    done.push_back(id);
  }
  return done;
}

}  // namespace rankflow::tracking
