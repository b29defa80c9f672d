// rankflow::field_ref: assigning, appending, uploading and fetching one field.
#include <rankflow/tracking/run.hpp>

#include "run_impl.hpp"

namespace rankflow {

using tracking::field_record;
using tracking::op;
using tracking::op_kind;

// -------------------------------------------------------------- field_ref --

field_ref::field_ref(tracking::run_impl* r, std::string p) : r_(r), path_(std::move(p)) {}

field_ref field_ref::operator[](std::string_view sub) const {
  std::string full = path_ + "/" + std::string(sub);
  validate_path(full);
  return field_ref(r_, std::move(full));
}

namespace {
// Rank 0 refuses such strings too (at wait(), for every rank's writes); the
// writing rank checks first so that the error points at the line that wrote.
void check_text(const std::string& path, const char* type, std::string_view v) {
  if (auto why = tracking::string_problem(v); !why.empty()) {
    throw type_error(std::string(type) + " value for '" + path + "' refused: " + why);
  }
}
void check_texts(const std::string& path, const char* type, const std::vector<std::string>& v) {
  for (std::size_t k = 0; k < v.size(); ++k) {
    if (auto why = tracking::string_problem(v[k]); !why.empty()) {
      throw type_error(std::string(type) + " value for '" + path + "' refused: item " + std::to_string(k) + ": " + why);
    }
  }
}
}  // namespace

void field_ref::assign(tracking::atom_value a) {
  r_->require_writable(path_);
  if (r_->resumed && r_->is_input(path_)) {
    // The run's recorded partitions were computed with the value it holds;
    // another one now would mix results of two inputs. The run keeps its
    // value, and the next collective call refuses to reuse anything, or
    // (--on-change restart, before the first call, same type) restarts
    // every call and records the new value with the restart.
    const auto was = r_->resumed_inputs.find(path_);
    const std::string now = tracking::input_key(a);
    if (was != r_->resumed_inputs.end() && was->second != now) {
      tracking::input_change c{path_, was->second, now, r_->rank, {}};
      const bool same_type = was->second.substr(0, was->second.find(' ')) == now.substr(0, now.find(' '));
      if (r_->on_change == change_policy::restart && same_type && r_->ledger && r_->ledger->calls_made() == 0) {
        op o;
        o.kind = op_kind::assign;
        o.rank = r_->rank;
        o.time = now_unix_seconds();
        o.path = path_;
        o.atom = std::move(a);
        encode(o, c.held);
      }
      r_->changed_inputs.push_back(std::move(c));
      return;
    }
  }
  op o;
  o.kind = op_kind::assign;
  o.rank = r_->rank;
  o.time = now_unix_seconds();
  o.path = path_;
  o.atom = std::move(a);
  r_->enqueue(o);
}

namespace {
tracking::atom_value atom(field_type t) {
  tracking::atom_value a;
  a.type = t;
  return a;
}
}  // namespace

field_ref& field_ref::operator=(double v) {
  auto a = atom(field_type::float_);
  a.d = v;
  assign(std::move(a));
  return *this;
}
void field_ref::assign_int(std::int64_t v) {
  auto a = atom(field_type::int_);
  a.i = v;
  assign(std::move(a));
}
field_ref& field_ref::operator=(bool v) {
  auto a = atom(field_type::bool_);
  a.i = v ? 1 : 0;
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(const std::string& v) {
  check_text(path_, "String", v);
  auto a = atom(field_type::string);
  a.s = v;
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(timestamp v) {
  auto a = atom(field_type::datetime);
  a.d = to_unix_seconds(v);
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(const std::vector<std::string>& v) {
  check_texts(path_, "StringList", v);
  auto a = atom(field_type::string_list);
  a.list = v;
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(const std::set<std::string>& v) {
  for (const auto& x : v) check_text(path_, "StringSet", x);
  auto a = atom(field_type::string_set);
  a.list.assign(v.begin(), v.end());
  assign(std::move(a));
  return *this;
}
void field_ref::add(const std::vector<std::string>& v) {
  check_texts(path_, "StringSet", v);
  r_->require_writable(path_);
  op o;
  o.kind = op_kind::add;
  o.rank = r_->rank;
  o.time = now_unix_seconds();
  o.path = path_;
  o.items = v;
  r_->enqueue(o);
}

void field_ref::append(double v, point_options o) {
  if (r_->stopped || !r_->writable()) r_->require_writable(path_);
  auto& b = r_->buffer_for(path_, field_type::float_series);
  r_->point(b, o);
  b.f.push_back(v);
  r_->after_op();
}
void field_ref::append_int(std::int64_t v, point_options o) {
  if (r_->stopped || !r_->writable()) r_->require_writable(path_);
  auto& b = r_->buffer_for(path_, field_type::int_series);
  r_->point(b, o);
  b.i.push_back(v);
  r_->after_op();
}
void field_ref::append(const std::string& v, point_options o) {
  check_text(path_, "StringSeries", v);
  if (r_->stopped || !r_->writable()) r_->require_writable(path_);
  auto& b = r_->buffer_for(path_, field_type::string_series);
  r_->point(b, o);
  b.s.push_back(v);
  r_->after_op();
}

void field_ref::upload(const std::string& file_path) {
  r_->require_writable(path_);
  std::ifstream in(file_path, std::ios::binary);
  if (!in) {
    throw usage_error(detail::sys_error("upload('" + path_ + "'): cannot read", file_path));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  const auto slash = file_path.rfind('/');
  upload_bytes(ss.str(), slash == std::string::npos ? file_path : file_path.substr(slash + 1));
}

void field_ref::upload_bytes(std::string_view data, const std::string& filename) {
  r_->require_writable(path_);
  if (data.size() > (std::uint64_t{4} << 30) - (1u << 20)) {
    throw usage_error("upload('" + path_ + "'): " + std::to_string(data.size()) + " bytes is more than a File " +
                      "artifact holds (4 GiB); store large data with Run::write_array");
  }
  op o;
  o.kind = op_kind::file;
  o.rank = r_->rank;
  o.time = now_unix_seconds();
  o.path = path_;
  o.file.filename = filename;
  o.file.data.assign(data);
  o.file.size = data.size();
  r_->enqueue(o);
}

tracking::field_record field_ref::get() const {
  if (r_->stopped) throw usage_error("run " + r_->id + " has stopped: cannot fetch '" + path_ + "'");
  auto f = r_->fetch(path_);
  if (f.type == field_type::none) {
    throw usage_error("field '" + path_ + "' does not exist in run " + r_->id +
                      " (nothing written there yet, or its write was refused: see wait())");
  }
  return f;
}

field_type field_ref::type() const {
  if (r_->stopped) throw usage_error("run " + r_->id + " has stopped: cannot fetch '" + path_ + "'");
  return r_->fetch(path_).type;
}

namespace {
[[noreturn]] void wrong_fetch(const field_record& f, const std::string& path, const char* wanted) {
  throw type_error(std::string(type_name(f.type)) + " field '" + path + "' cannot be fetched as " + wanted);
}
}  // namespace

template <>
double field_ref::fetch<double>() const {
  auto f = get();
  if (f.type == field_type::float_) return f.atom.d;
  if (f.type == field_type::int_) return static_cast<double>(f.atom.i);
  wrong_fetch(f, path_, "a double (Float)");
}
template <>
std::int64_t field_ref::fetch<std::int64_t>() const {
  auto f = get();
  if (f.type == field_type::int_) return f.atom.i;
  wrong_fetch(f, path_, "an integer (Int)");
}
template <>
int field_ref::fetch<int>() const {
  return static_cast<int>(fetch<std::int64_t>());
}
template <>
bool field_ref::fetch<bool>() const {
  auto f = get();
  if (f.type == field_type::bool_) return f.atom.i != 0;
  wrong_fetch(f, path_, "a bool (Bool)");
}
template <>
std::string field_ref::fetch<std::string>() const {
  auto f = get();
  if (f.type == field_type::string) return f.atom.s;
  wrong_fetch(f, path_, "a string (String)");
}
template <>
timestamp field_ref::fetch<timestamp>() const {
  auto f = get();
  if (f.type == field_type::datetime) return from_unix_seconds(f.atom.d);
  wrong_fetch(f, path_, "a timestamp (Datetime)");
}
template <>
std::vector<std::string> field_ref::fetch<std::vector<std::string>>() const {
  auto f = get();
  if (f.type == field_type::string_list || f.type == field_type::string_set) return f.atom.list;
  wrong_fetch(f, path_, "a list of strings (StringList or StringSet)");
}
template <>
std::set<std::string> field_ref::fetch<std::set<std::string>>() const {
  auto f = get();
  if (f.type == field_type::string_set) return {f.atom.list.begin(), f.atom.list.end()};
  wrong_fetch(f, path_, "a set of strings (StringSet)");
}

template <>
series_values<double> field_ref::fetch_values<double>() const {
  auto f = get();
  series_values<double> out;
  if (f.type == field_type::float_series) {
    out.values = std::move(f.series.f);
  } else if (f.type == field_type::int_series) {
    out.values.assign(f.series.i.begin(), f.series.i.end());
  } else {
    wrong_fetch(f, path_, "series values of double (FloatSeries or IntSeries)");
  }
  out.steps = std::move(f.series.steps);
  out.timestamps = std::move(f.series.timestamps);
  return out;
}
template <>
series_values<std::int64_t> field_ref::fetch_values<std::int64_t>() const {
  auto f = get();
  if (f.type != field_type::int_series) wrong_fetch(f, path_, "series values of int64 (IntSeries)");
  return {std::move(f.series.steps), std::move(f.series.i), std::move(f.series.timestamps)};
}
template <>
series_values<std::string> field_ref::fetch_values<std::string>() const {
  auto f = get();
  if (f.type != field_type::string_series) wrong_fetch(f, path_, "series values of string (StringSeries)");
  return {std::move(f.series.steps), std::move(f.series.s), std::move(f.series.timestamps)};
}

std::string field_ref::fetch_bytes() const {
  auto f = get();
  if (f.type != field_type::file) wrong_fetch(f, path_, "bytes (File)");
  return std::move(f.file.data);
}

void field_ref::download(const std::string& dest) const {
  const auto data = fetch_bytes();
  std::ofstream out(dest, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw storage_error("download('" + path_ + "'): cannot write '" + dest + "'");
}

std::vector<double> field_ref::fetch_array(std::vector<std::uint64_t>* shape) const {
  auto f = get();
  if (f.type != field_type::array) wrong_fetch(f, path_, "an array (Array)");
  return tracking::read_array(r_->paths.file, f.array, shape);
}

}  // namespace rankflow
