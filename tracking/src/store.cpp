#include <rankflow/tracking/detail/store.hpp>

#include <rankflow/core/clock.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <ctime>
#include <set>

namespace rankflow {

namespace {
constexpr const char* type_names[] = {"None",         "Int",       "Float",      "Bool",        "String",
                                      "Datetime",     "StringSet", "StringList", "FloatSeries", "IntSeries",
                                      "StringSeries", "File",      "Array"};
}  // namespace

const char* type_name(field_type t) noexcept {
  const auto i = static_cast<std::size_t>(t);
  return i < std::size(type_names) ? type_names[i] : "Unknown";
}

field_type type_from_name(std::string_view name) noexcept {
  for (std::size_t i = 1; i < std::size(type_names); ++i) {
    if (name == type_names[i]) return static_cast<field_type>(i);
  }
  return field_type::none;
}

const char* to_string(tracking_mode m) noexcept {
  switch (m) {
    case tracking_mode::async:
      return "async";
    case tracking_mode::sync:
      return "sync";
    case tracking_mode::read_only:
      return "read-only";
    case tracking_mode::debug:
      return "debug";
  }
  return "?";
}

tracking_mode parse_tracking_mode(std::string_view s) {
  if (s == "async") return tracking_mode::async;
  if (s == "sync") return tracking_mode::sync;
  if (s == "read-only" || s == "read_only") return tracking_mode::read_only;
  if (s == "debug") return tracking_mode::debug;
  throw usage_error("--tracking-mode: '" + std::string(s) + "' is not one of async, sync, read-only, debug");
}

const char* to_string(change_policy p) noexcept { return p == change_policy::restart ? "restart" : "refuse"; }

change_policy parse_change_policy(std::string_view s) {
  if (s == "refuse") return change_policy::refuse;
  if (s == "restart") return change_policy::restart;
  throw usage_error("--on-change: '" + std::string(s) + "' is not one of refuse, restart");
}

void validate_path(std::string_view path) {
  auto bad = [&](const std::string& why) {
    throw usage_error("invalid field path '" + std::string(path) + "': " + why +
                      ". Paths are parts of letters, digits, '_', '-' and '.', joined by '/', like \"train/loss\"");
  };
  if (path.empty()) bad("it is empty");
  if (path.size() > 1024) bad("it is longer than 1024 characters");
  if (path == reserved_namespace || path.starts_with(std::string(reserved_namespace) + "/")) {
    bad(std::string("'") + reserved_namespace + "' is reserved for rankflow's own records (the partition ledger)");
  }
  std::size_t start = 0;
  while (true) {
    const auto end = std::min(path.find('/', start), path.size());
    const auto part = path.substr(start, end - start);
    if (part.empty()) bad("it has an empty part (leading, trailing or doubled '/')");
    if (part == "." || part == "..") bad("'.' and '..' are not allowed as parts");
    if (part.size() > 255) bad("a part is longer than 255 characters");
    for (char c : part) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.';
      if (!ok) bad(std::string("character '") + c + "' is not allowed");
    }
    if (end == path.size()) break;
    start = end + 1;
  }
}

std::string format_time(double s) {
  if (!(s > 0)) return "";
  const auto whole = static_cast<std::time_t>(std::floor(s));
  auto micros = static_cast<long>(std::llround((s - static_cast<double>(whole)) * 1e6));
  std::time_t t = whole;
  if (micros >= 1000000) {
    ++t;
    micros -= 1000000;
  }
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  return buf;
}

// Through whole microseconds, so that a time given in seconds with up to six
// decimals comes back as the same double.
double to_unix_seconds(timestamp t) noexcept {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return static_cast<double>(us) / 1e6;
}

timestamp from_unix_seconds(double s) noexcept {
  return timestamp(std::chrono::duration_cast<timestamp::duration>(std::chrono::microseconds(std::llround(s * 1e6))));
}

double now_unix_seconds() noexcept { return detail::unix_now(); }  // core's clock

}  // namespace rankflow

namespace rankflow::tracking {

// ------------------------------------------------------------------- rules --

std::size_t invalid_utf8_at(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Length and the range of the second byte (which excludes overlong
    // forms, UTF-16 surrogates and code points past U+10FFFF).
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::string string_problem(std::string_view s) {
  if (const auto nul = s.find('\0'); nul != std::string_view::npos) {
    return "it holds a NUL character at byte " + std::to_string(nul) +
           " (strings are text, and a NUL would end it in the file; store binary data with upload_bytes)";
  }
  if (const auto bad = invalid_utf8_at(s); bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(s[bad]));
    return "byte " + std::to_string(bad) + " (" + hex + ") is not valid UTF-8 (strings are stored as UTF-8 text; " +
           "convert it, or store binary data with upload_bytes)";
  }
  return {};
}

namespace {

std::string from_rank(int created, int writer) {
  return " (field created by rank " + std::to_string(created) + ", write from rank " + std::to_string(writer) + ")";
}

const char* value_type_of_series(field_type t) {
  switch (t) {
    case field_type::float_series:
      return "Float";
    case field_type::int_series:
      return "Int";
    case field_type::string_series:
      return "String";
    default:
      return "?";
  }
}

// The first problem among `v`'s strings, saying which item has it.
std::string first_string_problem(const std::vector<std::string>& v) {
  for (std::size_t k = 0; k < v.size(); ++k) {
    if (auto why = string_problem(v[k]); !why.empty()) return "item " + std::to_string(k) + ": " + why;
  }
  return {};
}

std::string step_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", s);
  return b;
}

}  // namespace

const field_record* run_record::find(const std::string& path) const {
  auto it = fields.find(path);
  return it == fields.end() ? nullptr : &it->second;
}

std::string run_record::namespace_conflict(const std::string& path) const {
  if (namespaces_.count(path)) {
    return "'" + path + "' is a namespace holding other fields (e.g. '" + path + "/...'); it cannot also be a field";
  }
  for (auto slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    const auto prefix = path.substr(0, slash);
    if (auto it = fields.find(prefix); it != fields.end()) {
      return std::string("'") + prefix + "' is a " + type_name(it->second.type) + " field; it cannot also hold '" +
             path + "'";
    }
  }
  return {};
}

void run_record::add_namespaces(const std::string& path) {
  for (auto slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    ++namespaces_[path.substr(0, slash)];
  }
}

std::string run_record::check_new(const std::string& path, field_type t, int rank) const {
  if (auto* f = find(path)) {
    if (f->type == t) return {};
    return std::string(type_name(f->type)) + " field '" + path + "' cannot become a " + type_name(t) +
           from_rank(f->rank, rank);
  }
  return namespace_conflict(path);
}

// apply() is where every write and every replay passes: run-level records
// (begin, end, the ledger) change the run; the others write one field, each
// kind in its own step below with Neptune's rules for it.
bool run_record::apply(op& o, std::vector<rejection>& out) {
  switch (o.kind) {
    case op_kind::begin:
      info = o.info;
      return true;
    case op_kind::end:
      info.status = o.info.status;
      info.reason = o.info.reason;
      info.end_time = o.info.end_time;
      return true;
    case op_kind::ledger:
      return apply_ledger(o, out);
    case op_kind::ledger_restart:
      return apply_ledger_restart(o, out);
    default:
      break;
  }
  field_record* f = nullptr;
  if (auto it = fields.find(o.path); it != fields.end()) {
    f = &it->second;
  } else if (auto why = namespace_conflict(o.path); !why.empty()) {
    out.push_back({false, why});
    return false;
  }
  switch (o.kind) {
    case op_kind::assign:
      return apply_assign(o, f, out);
    case op_kind::append:
      return apply_append(o, f, out);
    case op_kind::add:
      return apply_add(o, f, out);
    case op_kind::file:
    case op_kind::array:
      return apply_artifact(o, f, out);
    default:
      return false;
  }
}

namespace {
// A refusal for a value of the wrong type (type_error at wait()).
bool refuse_type(std::vector<rejection>& out, std::string msg) {
  out.push_back({true, std::move(msg)});
  return false;
}
}  // namespace

field_record& run_record::create(const op& o, field_type t) {
  auto& f = fields[o.path];
  f.type = t;
  f.rank = o.rank;
  add_namespaces(o.path);
  return f;
}

bool run_record::apply_ledger(const op& o, std::vector<rejection>& out) {
  const auto& c = o.ledger.call;
  if (auto it = calls.find(c.call); it != calls.end() && !it->second.same_work(c)) {
    out.push_back({false, "ledger: call #" + std::to_string(c.call) + " was recorded as '" + it->second.step +
                              "' over " + std::to_string(it->second.partitions) + " partitions, not '" + c.step +
                              "' over " + std::to_string(c.partitions)});
    return false;
  }
  calls[c.call] = c;
  auto& n = ledger_counts[c.call];
  ledger_rows += o.ledger.entries.size();
  n.rows += o.ledger.entries.size();
  for (const auto& e : o.ledger.entries) {
    ledger_bytes += e.result.size();
    n.bytes += e.result.size();
  }
  if (keep_points) ledger.insert(ledger.end(), o.ledger.entries.begin(), o.ledger.entries.end());
  return true;
}

bool run_record::apply_ledger_restart(const op& o, std::vector<rejection>& out) {
  // Calls from `from` on run afresh: what the ledger held for them was
  // computed for other work and must never be handed back by a resume.
  const std::int64_t from = o.ledger.call.call;
  // The new inputs first: one refused leaves the restart whole (its
  // calls still run afresh) and is reported like any refused write.
  for (const auto& enc : o.items) {
    std::size_t pos = 0;
    op a;
    decode_into(enc, pos, a);
    if (a.kind != op_kind::assign || pos != enc.size()) throw format_error("a ledger restart holds a damaged input");
    apply(a, out);
  }
  calls.erase(calls.lower_bound(from), calls.end());
  for (auto it = ledger_counts.lower_bound(from); it != ledger_counts.end(); it = ledger_counts.erase(it)) {
    ledger_rows -= it->second.rows;
    ledger_bytes -= it->second.bytes;
  }
  std::erase_if(ledger, [from](const ledger_entry& e) { return e.call >= from; });
  return true;
}

bool run_record::apply_assign(op& o, field_record* f, std::vector<rejection>& out) {
  auto& a = o.atom;
  // Checked here, where every write and every replay passes, so a value
  // the file could not hold as written is refused whole, never cut.
  std::string why;
  if (a.type == field_type::string) why = string_problem(a.s);
  if (a.type == field_type::string_set || a.type == field_type::string_list) why = first_string_problem(a.list);
  if (!why.empty()) {
    return refuse_type(out, std::string(type_name(a.type)) + " value for '" + o.path + "' refused: " + why +
                                " (from rank " + std::to_string(o.rank) + ")");
  }
  if (!f) {
    f = &create(o, a.type);
  } else {
    if (is_series(f->type)) {
      return refuse_type(out, std::string(type_name(f->type)) + " '" + o.path + "' cannot be assigned with '=': use " +
                                  "append() to add a point" + from_rank(f->rank, o.rank));
    }
    if (f->type == field_type::float_ && a.type == field_type::int_) {  // Int widens to Float, as in Neptune
      a.type = field_type::float_;
      a.d = static_cast<double>(a.i);
    }
    if (f->type != a.type) {
      return refuse_type(out, std::string(type_name(f->type)) + " field '" + o.path + "' cannot be assigned a " +
                                  type_name(a.type) + from_rank(f->rank, o.rank));
    }
  }
  f->atom = a;
  f->updated = o.time;
  return true;
}

bool run_record::apply_append(op& o, field_record* f, std::vector<rejection>& out) {
  auto& p = o.points;
  if (f && !is_series(f->type)) {
    return refuse_type(out, std::string(type_name(f->type)) + " field '" + o.path + "' is not a series: append() " +
                                "needs a series, assign with '=' instead" + from_rank(f->rank, o.rank));
  }
  if (f && f->type != p.type) {
    if (f->type == field_type::float_series && p.type == field_type::int_series) {
      p.type = field_type::float_series;
      p.f.assign(p.i.begin(), p.i.end());
      p.i.clear();
    } else {
      return refuse_type(out, std::string(type_name(f->type)) + " '" + o.path + "' cannot be appended a " +
                                  value_type_of_series(p.type) + from_rank(f->rank, o.rank));
    }
  }
  double last = f ? f->last_step : -1.0;
  const std::size_t keep = resolve_steps(o, f, last, out);
  if (keep == 0) return false;  // also when every point was a replay
  if (!f) {
    f = &create(o, p.type);
    f->series.type = p.type;
  }
  f->last_step = last;
  f->points += keep;
  for (double v : p.f) f->summary.add(v);
  for (std::int64_t v : p.i) f->summary.add(static_cast<double>(v));
  if (!p.s.empty()) f->summary.last_text = p.s.back();
  if (keep_points) {
    auto& s = f->series;
    s.steps.insert(s.steps.end(), p.steps.begin(), p.steps.end());
    s.timestamps.insert(s.timestamps.end(), p.timestamps.begin(), p.timestamps.end());
    s.f.insert(s.f.end(), p.f.begin(), p.f.end());
    s.i.insert(s.i.end(), p.i.begin(), p.i.end());
    s.s.insert(s.s.end(), p.s.begin(), p.s.end());
  }
  f->updated = o.time;
  return true;
}

// Gives each point of an append its step (the next whole number when it
// has none), and drops in place the points recorded before a resume (the
// program replays them), invalid strings and steps that do not advance.
// `last` becomes the last kept step; returns how many points are kept.
std::size_t run_record::resolve_steps(op& o, const field_record* f, double& last, std::vector<rejection>& out) {
  auto& p = o.points;
  std::size_t keep = 0, dropped = 0, bad_strings = 0;
  std::string first_drop, first_bad;
  const auto n = p.size();
  const double floor_step = [&] {
    if (resume_floor.empty()) return -1.0;
    auto fl = resume_floor.find(o.path);
    return fl == resume_floor.end() ? -1.0 : fl->second;
  }();
  for (std::size_t k = 0; k < n; ++k) {
    double s = p.steps[k];
    if (s >= 0 && s <= floor_step) {  // recorded before the resume: the program replays it
      ++replayed_points;
      continue;
    }
    if (p.type == field_type::string_series) {
      if (auto why = string_problem(p.s[k]); !why.empty()) {
        if (bad_strings++ == 0) {
          first_bad = "StringSeries '" + o.path + "': a point refused (from rank " + std::to_string(o.rank) + "): " + why;
        }
        continue;
      }
    }
    if (s < 0) s = std::floor(last) + 1.0;
    if (!(s > last)) {
      if (dropped++ == 0) {
        first_drop = "step " + step_text(s) + " of " + type_name(f ? f->type : p.type) + " '" + o.path +
                     "' does not come after its last step " + step_text(last) + " (from rank " +
                     std::to_string(o.rank) + "): explicit steps must increase";
      }
      continue;
    }
    last = s;
    p.steps[keep] = s;
    p.timestamps[keep] = p.timestamps[k];
    if (p.type == field_type::float_series) p.f[keep] = p.f[k];
    if (p.type == field_type::int_series) p.i[keep] = p.i[k];
    if (p.type == field_type::string_series && keep != k) p.s[keep] = std::move(p.s[k]);
    ++keep;
  }
  if (dropped) {
    if (dropped > 1) first_drop += "; " + std::to_string(dropped - 1) + " more points of the same append refused";
    out.push_back({false, first_drop});
  }
  if (bad_strings) {
    if (bad_strings > 1) first_bad += "; " + std::to_string(bad_strings - 1) + " more such points refused";
    out.push_back({true, first_bad});
  }
  p.steps.resize(keep);
  p.timestamps.resize(keep);
  if (p.type == field_type::float_series) p.f.resize(keep);
  if (p.type == field_type::int_series) p.i.resize(keep);
  if (p.type == field_type::string_series) p.s.resize(keep);
  return keep;
}

bool run_record::apply_add(const op& o, field_record* f, std::vector<rejection>& out) {
  if (auto why = first_string_problem(o.items); !why.empty()) {
    return refuse_type(out, "StringSet value for '" + o.path + "' refused: " + why + " (from rank " +
                                std::to_string(o.rank) + ")");
  }
  if (f && f->type != field_type::string_set) {
    return refuse_type(out, std::string(type_name(f->type)) + " field '" + o.path +
                                "' cannot be added strings: add() works on StringSet fields" +
                                from_rank(f->rank, o.rank));
  }
  if (!f) f = &create(o, field_type::string_set);
  f->atom.type = field_type::string_set;
  std::set<std::string> all(f->atom.list.begin(), f->atom.list.end());
  all.insert(o.items.begin(), o.items.end());
  f->atom.list.assign(all.begin(), all.end());
  f->updated = o.time;
  return true;
}

bool run_record::apply_artifact(op& o, field_record* f, std::vector<rejection>& out) {
  const auto t = o.kind == op_kind::file ? field_type::file : field_type::array;
  if (auto why = o.kind == op_kind::file ? string_problem(o.file.filename) : ""; !why.empty()) {
    out.push_back({false, "File '" + o.path + "' refused: its file name: " + why});
    return false;
  }
  if (f && f->type != t) {
    return refuse_type(out, std::string(type_name(f->type)) + " field '" + o.path + "' cannot be replaced by a " +
                                type_name(t) + from_rank(f->rank, o.rank));
  }
  if (!f) f = &create(o, t);
  if (t == field_type::file) {
    f->file.filename = o.file.filename;
    f->file.size = o.file.size ? o.file.size : o.file.data.size();
    f->file.journal_offset = o.file.journal_offset;
    f->file.data.clear();  // bytes stay in the journal; see file_info
  } else {
    f->array = o.array;
  }
  f->updated = o.time;
  return true;
}

}  // namespace rankflow::tracking
