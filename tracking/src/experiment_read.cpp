// Reading experiment files, checked: a file that lies is a format_error.
#include <algorithm>
#include <cstdint>

#include "experiment_io.hpp"

namespace rankflow::tracking {

// See set_other_file_advice.
std::string other_file_advice = "pass another path with --experiment";

handle open_checked(const std::string& file, unsigned flags, int* major_out) {
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
    throw format_error("'" + file + "': " + e.what() + "; this rankflow reads formats 1.x and " +
                       std::to_string(format_major) + ".x");
  }
  const auto version = std::to_string(major) + "." + std::to_string(minor);
  if (major > format_major) {
    throw format_error("'" + file + "' was written by a newer rankflow (format " + version +
                       "); this rankflow reads formats 1.x and " + std::to_string(format_major) +
                       ".x: upgrade rankflow to read it");
  }
  if (major < format_major_oldest) {
    throw format_error("'" + file + "' says it has format " + version + ", which no rankflow writes (the first is " +
                       "1.0); this rankflow reads formats 1.x and " + std::to_string(format_major) + ".x: the file is damaged");
  }
  if (major_out) *major_out = static_cast<int>(major);
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
                        "slurm_restart_count", "slurm_partition", "slurm_job_name", "resumes", "sweep"}) {
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
  // A run file (format 2) links its arrays relative to itself
  // (`../arrays/...`); the record keeps them relative to the experiment file.
  if (!ws.array_prefix.empty() && f.array.file.starts_with("../")) {
    f.array.file = ws.array_prefix + f.array.file.substr(3);
  }
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

// A series group's length and last step, without its points: the lengths
// of its three columns (which must agree) and one element.
void read_series_outline(hid_t d, field_type type, const std::string& where, field_record& f) {
  hssize_t n[3] = {0, 0, 0};
  const char* names[3] = {"step", "value", "timestamp"};
  handle step;
  for (int c = 0; c < 3; ++c) {
    if (H5Lexists(d, names[c], H5P_DEFAULT) <= 0) throw format_error(where + " has no " + names[c] + " column");
    handle col(check(H5Dopen2(d, names[c], H5P_DEFAULT), "H5Dopen2", where));
    n[c] = points_of(col.id(), false, where + ", column " + names[c]);
    if (c == 0) step = std::move(col);
  }
  if (n[1] != n[0] || n[2] != n[0]) {
    throw format_error(where + " has columns of different lengths (step " + std::to_string(n[0]) + ", value " +
                       std::to_string(n[1]) + ", timestamp " + std::to_string(n[2]) + ")");
  }
  if (class_of(step.id(), false, where + ", column step") != H5T_FLOAT &&
      class_of(step.id(), false, where + ", column step") != H5T_INTEGER) {
    throw format_error("'" + where + "/step' should hold numbers");
  }
  f.series.type = type;
  f.points = static_cast<std::uint64_t>(n[0]);
  f.last_step = -1.0;
  if (n[0] > 0) {
    handle space(check(H5Dget_space(step.id()), "H5Dget_space", where));
    const hsize_t at[1] = {static_cast<hsize_t>(n[0] - 1)}, one[1] = {1};
    check(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, at, nullptr, one, nullptr), "H5Sselect_hyperslab", where);
    handle mem(check(H5Screate_simple(1, one, nullptr), "H5Screate_simple", where));
    check(H5Dread(step.id(), H5T_NATIVE_DOUBLE, mem.id(), space.id(), H5P_DEFAULT, &f.last_step), "H5Dread", where);
  }
}

// A numeric series group streamed to series_points::chunk: its columns are
// checked as read_series checks them, then read a slab at a time into the
// same buffers (no allocation per point, no page faults for 10M of them).
void stream_series(hid_t d, field_type type, const std::string& where, field_record& f, const series_points& sp) {
  read_series_outline(d, type, where, f);  // lengths agree, last step
  const std::uint64_t n = f.points;
  const char* names[3] = {"step", "timestamp", "value"};
  handle cols[3];
  for (int c = 0; c < 3; ++c) {
    cols[c] = handle(check(H5Dopen2(d, names[c], H5P_DEFAULT), "H5Dopen2", where));
    const auto cls = class_of(cols[c].id(), false, where + ", column " + names[c]);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) throw format_error("'" + where + "/" + names[c] + "' should hold numbers");
  }
  if (sp.total) sp.total(n);
  constexpr std::uint64_t slab = 1 << 18;
  std::vector<double> buf[3];
  for (auto& b : buf) b.resize(static_cast<std::size_t>(std::min(n, slab)));
  for (std::uint64_t at = 0; at < n; at += slab) {
    const hsize_t start[1] = {at}, count[1] = {std::min(slab, n - at)};
    handle mem(check(H5Screate_simple(1, count, nullptr), "H5Screate_simple", where));
    for (int c = 0; c < 3; ++c) {
      if (c == 1 && !sp.timestamps) continue;
      handle space(check(H5Dget_space(cols[c].id()), "H5Dget_space", where));
      check(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start, nullptr, count, nullptr), "H5Sselect_hyperslab",
            where);
      check(H5Dread(cols[c].id(), H5T_NATIVE_DOUBLE, mem.id(), space.id(), H5P_DEFAULT, buf[c].data()), "H5Dread",
            where);
    }
    sp.chunk(at, buf[0].data(), sp.timestamps ? buf[1].data() : nullptr, buf[2].data(), static_cast<std::size_t>(count[0]));
  }
}

// A series group: its step, value and timestamp columns, of one length.
void read_series(hid_t d, field_type type, const std::string& where, const std::string& path, field_record& f,
                 bool timestamps = true) {
  auto& s = f.series;
  s.type = type;
  s.steps = read_column<double>(d, "step");
  if (timestamps) {
    s.timestamps = read_column<double>(d, "timestamp");
  } else {
    // Not read, but checked: the column is there and as long as the others.
    if (H5Lexists(d, "timestamp", H5P_DEFAULT) <= 0) throw format_error(where + " has no timestamp column");
    handle t(check(H5Dopen2(d, "timestamp", H5P_DEFAULT), "H5Dopen2", where));
    if (points_of(t.id(), false, where + ", column timestamp") != static_cast<hssize_t>(s.steps.size())) {
      throw format_error(where + " has columns of different lengths (step " + std::to_string(s.steps.size()) +
                         ", timestamp " + std::to_string(points_of(t.id(), false, where)) + ")");
    }
  }
  std::size_t values = 0;
  if (type == field_type::float_series) values = (s.f = read_column<double>(d, "value")).size();
  if (type == field_type::int_series) values = (s.i = read_column<std::int64_t>(d, "value")).size();
  if (type == field_type::string_series) {
    if (H5Lexists(d, "value", H5P_DEFAULT) <= 0) throw format_error(where + " has no value column");
    handle v(check(H5Dopen2(d, "value", H5P_DEFAULT), "H5Dopen2", path));
    values = (s.s = read_vl_strings(v.id(), false, where + ", column value")).size();
  }
  if (values != s.steps.size() || (timestamps && s.timestamps.size() != s.steps.size())) {
    throw format_error(where + " has columns of different lengths (step " + std::to_string(s.steps.size()) +
                       ", value " + std::to_string(values) + ", timestamp " + std::to_string(s.timestamps.size()) +
                       ")");
  }
  f.points = s.steps.size();
  f.last_step = s.steps.empty() ? -1.0 : s.steps.back();
  for (double v : s.f) f.summary.add(v);
  for (std::int64_t v : s.i) f.summary.add(static_cast<double>(v));
  if (!s.s.empty()) f.summary.last_text = s.s.back();
}

// A file field: its bytes (only when asked for: listing runs reads none).
void read_file_field(hid_t d, const std::string& where, const std::string& path, const walk_state& ws,
                     field_record& f) {
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
}

// A typed object's value, checked against the shape its type is written in.
void read_value(hid_t d, H5O_type_t otype, field_type type, const std::string& where, const std::string& path,
                const walk_state& ws, field_record& f) {
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
      if (!ws.points || ws.points->w == series_points::which::all ||
          (ws.points->w == series_points::which::one && ws.points->path == path)) {
        if (ws.points && ws.points->chunk && type != field_type::string_series) {
          stream_series(d, type, where, f, *ws.points);
        } else {
          read_series(d, type, where, path, f, !ws.points || ws.points->timestamps);
        }
      } else {
        read_series_outline(d, type, where, f);
      }
      break;
    }
    case field_type::file: {
      if (otype != H5O_TYPE_DATASET || class_of(d, false, where) != H5T_INTEGER) {
        throw format_error(where + " should be a dataset of bytes");
      }
      read_file_field(d, where, path, ws, f);
      break;
    }
    default:  // none and array are refused above
      break;
  }
}

// rankflow writes hard links (and external links for arrays, handled by the
// caller) only: anything else means another program changed the file.
void refuse_foreign_link(hid_t loc, const std::string& name, const H5L_info_t& info, const std::string& where) {
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
}

void read_object(hid_t loc, const std::string& name, const H5L_info_t& info, const std::string& prefix,
                 walk_state& ws) {
  const std::string path = prefix.empty() ? name : prefix + "/" + name;
  const auto where = field_where(ws, path);
  if (path.size() > 1024) throw format_error(where + " is longer than any path rankflow writes (1024 characters)");
  if (info.type == H5L_TYPE_EXTERNAL) return read_array_link(loc, name, path, info, ws);
  refuse_foreign_link(loc, name, info, where);
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
  read_value(obj.id(), otype, type, where, path, ws, f);
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

// /_rankflow/calls: what each call of the run was.
void read_calls(hid_t g, run_record& rec) {
  if (H5Lexists(g, "calls", H5P_DEFAULT) <= 0) return;
  handle cg(check(H5Gopen2(g, "calls", H5P_DEFAULT), "H5Gopen2", "calls"));
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

void read_ledger(hid_t run, run_record& rec, bool with_results) {
  const std::string root = reserved_namespace;
  if (H5Lexists(run, root.c_str(), H5P_DEFAULT) <= 0) return;
  handle g(check(H5Gopen2(run, root.c_str(), H5P_DEFAULT), "H5Gopen2", root));
  read_calls(g.id(), rec);
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
  // The results: all of them for resume; otherwise only the names of the
  // tasks (negative calls, docs/format.md "Tasks"), one range read: a
  // drive()'s rows are recorded together.
  std::string blob;
  std::uint64_t blob_at = 0;
  std::uint64_t lo = UINT64_MAX, hi = 0;
  for (std::size_t k = 0; k < call.size() && !with_results; ++k) {
    if (call[k] >= 0 || offset[k] < 0 || size[k] < 0) continue;
    lo = std::min(lo, static_cast<std::uint64_t>(offset[k]));
    hi = std::max(hi, static_cast<std::uint64_t>(offset[k]) + static_cast<std::uint64_t>(size[k]));
  }
  if (with_results || hi > lo) {
    handle d(check(H5Dopen2(lg.id(), "results", H5P_DEFAULT), "H5Dopen2", "ledger/results"));
    handle sp(check(H5Dget_space(d.id()), "H5Dget_space", "ledger/results"));
    const auto total = static_cast<std::uint64_t>(H5Sget_simple_extent_npoints(sp.id()));
    if (!with_results && hi > total) throw format_error("the ledger of run " + rec.info.id + " points past its results");
    blob_at = with_results ? 0 : lo;
    blob.resize(static_cast<std::size_t>(with_results ? total : hi - lo));
    if (!blob.empty()) {
      const hsize_t at[1] = {blob_at}, count[1] = {blob.size()};
      check(H5Sselect_hyperslab(sp.id(), H5S_SELECT_SET, at, nullptr, count, nullptr), "H5Sselect_hyperslab",
            "ledger/results");
      handle mem(check(H5Screate_simple(1, count, nullptr), "H5Screate_simple", "ledger/results"));
      check(H5Dread(d.id(), H5T_NATIVE_UCHAR, mem.id(), sp.id(), H5P_DEFAULT, blob.data()), "H5Dread",
            "ledger/results");
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
    if (with_results || (e.call < 0 && n > 0)) {
      // Compared without o + n, which could wrap.
      if (o < blob_at || o - blob_at > blob.size() || n > blob.size() - (o - blob_at))
        throw format_error("the ledger of run " + rec.info.id + " points past its results");
      e.result.assign(blob.data() + (o - blob_at), n);
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
  std::sort(ids.begin(), ids.end(), run_order);
  return ids;
}

/// Reads run `id` of an open experiment file: format 1 holds its group, format
/// 2 links to the run's own file (opened and checked here; its array links
/// are relative to it). Format errors name the file they are about.
run_record read_run_from(hid_t experiment, const experiment_paths& p, const std::string& id, bool with_bytes,
                         const series_points* points) {
  const std::string link = "runs/" + id;
  H5L_info_t li{};
  check(H5Lget_info(experiment, link.c_str(), &li, H5P_DEFAULT), "H5Lget_info", link);
  std::string file = p.file;
  std::string where = "/runs/" + id;
  std::string array_prefix;
  handle run_file;
  hid_t loc = experiment;
  if (li.type == H5L_TYPE_EXTERNAL) {
    // The run's file is found by the experiment file's own name, not by the
    // link's text (which names the sidecar as it was called when the run
    // stopped): an experiment renamed or copied with its .d directory reads
    // its own runs. The link is there for h5py, h5dump and HDFView.
    file = p.run_file(id);
    if (!exists(file)) {
      throw format_error("run " + id + " of '" + p.file + "' is missing its file '" + file +
                         "' (moved or deleted): restore it, or copy the experiment with its .d directory");
    }
    run_file = open_checked(file, H5F_ACC_RDONLY);
    loc = run_file.id();
    array_prefix = basename_of(p.file) + ".d/";
  } else if (li.type != H5L_TYPE_HARD) {
    throw format_error("'" + p.file + "': /runs/" + id + " is neither a run group nor a link to a run file");
  }
  handle g(check(H5Gopen2(loc, where.c_str(), H5P_DEFAULT), "H5Gopen2", where));
  run_record rec;
  try {
    rec.info = read_info(g.id(), id);
    walk_state ws{&rec, with_bytes, {}, {}, array_prefix, points};
    const auto key = h5::key_of(g.id(), ".");
    ws.seen.insert(key);
    ws.open_groups.emplace(key, where);
    walk_group(g.id(), "", ws);
    read_ledger(g.id(), rec, with_bytes);
  } catch (const format_error& e) {
    throw format_error("'" + file + "': " + e.what());
  }
  return rec;
}

}  // namespace rankflow::tracking
