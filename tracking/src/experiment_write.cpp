// Writing a run into an experiment file: fields, streamed series, the ledger.
#include "experiment_io.hpp"

namespace rankflow::tracking {


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

// A run file (format 2) lives in `<experiment>.d/runs/`: its array links are
// relative to it, `../arrays/...`, so that HDF5 (h5py, h5dump) finds the
// arrays from the run file wherever the experiment is opened from. Records
// keep them relative to the experiment file (`<experiment>.d/arrays/...`).
std::string link_from_run_file(const std::string& experiment_relative) {
  const auto slash = experiment_relative.find('/');
  if (slash == std::string::npos || slash < 2 || experiment_relative.compare(slash - 2, 2, ".d") != 0) {
    return experiment_relative;  // not in a sidecar: kept as it is
  }
  return "../" + experiment_relative.substr(slash + 1);
}

namespace {

// A series group: its columns from memory, or (a live run's points are in
// the journal) created at their final size for stream_points to fill.
void write_series(hid_t run, const std::string& path, const field_record& f, streamed_map* streamed) {
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
    return;
  }
  write_column(g.id(), "step", s.steps, true);
  if (f.type == field_type::float_series) write_column(g.id(), "value", s.f, true);
  if (f.type == field_type::int_series) write_column(g.id(), "value", s.i, true);
  if (f.type == field_type::string_series) write_strings(g.id(), "value", s.s, true);
  write_column(g.id(), "timestamp", s.timestamps, true);
  field_attrs(g.id(), f);
}

}  // namespace

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
    case field_type::string_series:
      write_series(run, path, f, streamed);
      break;
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
      const auto target = link_from_run_file(f.array.file.empty() ? p.array_relative(id, path) : f.array.file);
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

namespace {

// /_rankflow/calls: one row per call.
void write_calls(hid_t g, const run_record& rec) {
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
  handle cg(check(H5Gcreate2(g, "calls", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", "calls"));
  write_column(cg.id(), "call", call, false);
  write_strings(cg.id(), "step", step, false);
  write_column(cg.id(), "items", items, false);
  write_column(cg.id(), "chunk", chunk, false);
  write_column(cg.id(), "partitions", parts, false);
  write_strings(cg.id(), "signature", signature, false);  // format 1.2
}

// /_rankflow/ledger, built row by row: the columns in memory, the results
// (which may be large) written to their dataset in slabs of 4 MiB.
class ledger_columns {
 public:
  ledger_columns(hid_t lg, const run_record& rec)
      : lg_(lg), total_(rec.ledger_bytes), results_(create_1d(lg, "results", H5T_STD_U8LE, rec.ledger_bytes, false)) {}

  void add(const ledger_entry& e) {
    call_.push_back(e.call);
    part_.push_back(e.partition);
    first_.push_back(e.first);
    last_.push_back(e.last);
    rank_.push_back(e.rank);
    start_.push_back(e.start);
    end_.push_back(e.end);
    attempts_.push_back(e.attempts);
    ok_.push_back(e.ok ? 1 : 0);
    error_.push_back(e.error);
    offset_.push_back(static_cast<std::int64_t>(at_));
    size_.push_back(static_cast<std::int64_t>(e.result.size()));
    at_ += e.result.size();
    pending_ += e.result;
    if (pending_.size() >= (std::size_t{4} << 20)) write_pending();
  }

  // The columns, once every row is in; refuses a count that differs from the record's.
  void finish(std::uint64_t rows) {
    write_pending();
    if (call_.size() != rows || written_ != total_) {
      throw format_error("the ledger's journal holds " + std::to_string(call_.size()) + " entries, " +
                         std::to_string(rows) + " were counted");
    }
    write_column(lg_, "call", call_, false);
    write_column(lg_, "partition", part_, false);
    write_column(lg_, "first", first_, false);
    write_column(lg_, "last", last_, false);
    write_column(lg_, "rank", rank_, false);
    write_column(lg_, "start", start_, false);
    write_column(lg_, "end", end_, false);
    write_column(lg_, "attempts", attempts_, false);
    auto t = bool_type();
    auto d = create_1d(lg_, "ok", t.id(), ok_.size(), false);
    if (!ok_.empty()) check(H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ok_.data()), "H5Dwrite", "ok");
    write_strings(lg_, "error", error_, false);
    write_column(lg_, "result_offset", offset_, false);
    write_column(lg_, "result_size", size_, false);
  }

 private:
  void write_pending() {
    if (pending_.empty()) return;
    if (written_ + pending_.size() > total_) throw format_error("the ledger holds more result bytes than counted");
    write_slab(results_.id(), written_, pending_.size(), H5T_NATIVE_UCHAR, pending_.data(), "ledger results");
    written_ += pending_.size();
    pending_.clear();
  }

  hid_t lg_;
  std::uint64_t total_;
  handle results_;
  std::vector<std::int64_t> call_, part_, first_, last_, rank_, attempts_, offset_, size_;
  std::vector<double> start_, end_;
  std::vector<std::int8_t> ok_;
  std::vector<std::string> error_;
  std::string pending_;  // results not yet written
  hsize_t written_ = 0;
  std::uint64_t at_ = 0;
};

// A live run's ledger entries are in its journal only. A ledger_restart drops
// the entries journaled before it for its calls, so a first pass finds, for
// each record, the lowest call a later restart drops from; the second pass
// hands on the entries no restart superseded.
template <class Fn>
void for_each_live_entry(const std::string& journal_path, Fn&& fn) {
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
    for (const auto& e : o.ledger.entries) fn(e);
    return true;
  });
}

}  // namespace

void write_ledger(hid_t run, const run_record& rec, const std::string& journal_path) {
  if (rec.calls.empty() && rec.ledger_rows == 0) return;
  const std::string root = reserved_namespace;
  handle g(check(H5Gcreate2(run, root.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", root));
  write_calls(g.id(), rec);
  handle lg(check(H5Gcreate2(g.id(), "ledger", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", "ledger"));
  ledger_columns cols(lg.id(), rec);
  if (rec.ledger.size() == rec.ledger_rows) {
    for (const auto& e : rec.ledger) cols.add(e);
  } else {
    for_each_live_entry(journal_path, [&](const ledger_entry& e) { cols.add(e); });
  }
  cols.finish(rec.ledger_rows);
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

namespace {
handle create_versioned(const std::string& path, bool track_order) {
  handle fcpl(check(H5Pcreate(H5P_FILE_CREATE), "H5Pcreate", path));
  if (track_order) {
    // Track link creation order so tools can list runs in the order they ran.
    check(H5Pset_link_creation_order(fcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
          "H5Pset_link_creation_order", path);
  }
  handle f(check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), H5P_DEFAULT), "H5Fcreate", path));
  attr_str(f.id(), "rankflow_format", "rankflow experiment file; see docs/format.md");
  attr_num(f.id(), "rankflow_format_major", format_major);
  attr_num(f.id(), "rankflow_format_minor", format_minor);
  return f;
}
}  // namespace

handle create_experiment_file(const std::string& path) {
  auto f = create_versioned(path, true);
  attr_num(f.id(), "index_bytes", std::int64_t{0});
  handle g(check(H5Gcreate2(f.id(), "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2", "/runs"));
  return f;
}

handle create_run_file(const std::string& path, const std::string& id) {
  auto f = create_versioned(path, false);
  attr_str(f.id(), "rankflow_run", id);
  return f;
}

}  // namespace rankflow::tracking
