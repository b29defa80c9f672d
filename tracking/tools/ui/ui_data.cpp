#include "ui_data.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include <rankflow/core/error.hpp>
#include <rankflow/tracking/types.hpp>

#include "query.hpp"

namespace rankflow::ui {

namespace tr = rankflow::tracking;

namespace {

// What a file looked like: reads are used again while it is unchanged.
std::string stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "-";
  return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ino);
}

// The experiment file, its index and every journal (live runs grow theirs).
std::string experiment_stamp(const tr::experiment_paths& p) {
  std::string s = stamp(p.file) + "|" + stamp(p.index());
  if (DIR* d = ::opendir(p.dir.c_str())) {
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 8 && n.ends_with(".journal")) names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) s += "|" + n + "=" + stamp(p.dir + "/" + n);
  }
  return s;
}

const std::string& need(const params& p, const char* name) {
  const auto it = p.find(name);
  if (it == p.end() || it->second.empty()) throw http_error(400, std::string("missing parameter '") + name + "'");
  return it->second;
}

std::string optional(const params& p, const char* name, const std::string& fallback = "") {
  const auto it = p.find(name);
  return it == p.end() ? fallback : it->second;
}

std::int64_t integer(const params& p, const char* name, std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  const auto it = p.find(name);
  if (it == p.end() || it->second.empty()) return fallback;
  std::int64_t v = 0;
  const auto& s = it->second;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
    throw http_error(400, std::string("parameter '") + name + "' must be an integer from " + std::to_string(lo) +
                              " to " + std::to_string(hi) + ", got '" + s + "'");
  }
  return v;
}

// The `path` parameter, checked as a program's field names are (no "..",
// no empty parts): it is looked up among the run's fields, never opened.
const std::string& field_path(const params& p) {
  const std::string& path = need(p, "path");
  try {
    validate_path(path);
  } catch (const std::exception& e) {
    throw http_error(400, e.what());
  }
  return path;
}

std::optional<double> number(const params& p, const char* name) {
  const auto it = p.find(name);
  if (it == p.end() || it->second.empty()) return std::nullopt;
  double v = 0;
  const auto& s = it->second;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
    throw http_error(400, std::string("parameter '") + name + "' must be a number, got '" + s + "'");
  }
  return v;
}

// A number as JSON: integers as integers (2, not 2.0).
json number_json(double v) {
  if (!std::isfinite(v)) return nullptr;
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) return static_cast<std::int64_t>(v);
  return v;
}

// A cell as JSON: numbers as numbers (a duration shown rounded too), text
// and numbers shown as text (a Datetime as ISO 8601) as text.
json cell_json(const query::cell& c) {
  if (c.k == query::cell::kind::missing) return nullptr;
  if (c.k == query::cell::kind::number) {
    double shown = 0;
    const auto [end, ec] = std::from_chars(c.text.data(), c.text.data() + c.text.size(), shown);
    if (ec == std::errc() && end == c.text.data() + c.text.size()) return number_json(c.num);
  }
  return c.text;
}

json atom_json(const tr::atom_value& a) {
  switch (a.type) {
    case field_type::int_: return a.i;
    case field_type::bool_: return a.i != 0;
    case field_type::float_: return std::isfinite(a.d) ? json(a.d) : json(query::atom_cell(a).text);
    case field_type::string_set:
    case field_type::string_list: return a.list;
    default: return query::atom_cell(a).text;
  }
}

json info_json(const tr::run_info& i) {
  json j = {{"id", i.id},
            {"name", i.name},
            {"status", i.status},
            {"reason", i.reason},
            {"start", i.start_time},
            {"end", i.end_time},
            {"start_text", i.start_time > 0 ? format_time(i.start_time) : ""},
            {"end_text", i.end_time > 0 ? format_time(i.end_time) : ""},
            {"ranks", i.ranks},
            {"hosts", i.hosts},
            {"command_line", i.command_line},
            {"version", i.version},
            {"mode", i.mode},
            {"context", i.context}};
  return j;
}

// Times to the microsecond: what a clock of the ranks can tell apart, and
// half the bytes of a full double in JSON (a report holds thousands).
double micro(double seconds) { return std::round(seconds * 1e6) / 1e6; }

}  // namespace

struct experiments::index_cache {
  std::string stamp;
  std::shared_ptr<const std::vector<tr::index_entry>> all;
  std::map<std::string, std::size_t> by_id;
};

struct experiments::run_cache {
  struct item {
    std::string stamp;
    bool with_bytes = false;
    std::shared_ptr<const tr::run_record> rec;
  };
  std::map<std::string, item> runs;
};

experiments::experiments(std::vector<std::string> files) : files_(std::move(files)) {
  for (std::size_t k = 0; k < files_.size(); ++k) {
    indexes_.push_back(std::make_unique<index_cache>());
    records_.push_back(std::make_unique<run_cache>());
  }
}

experiments::~experiments() = default;

std::size_t experiments::exp_of(const params& p) const {
  const auto e = integer(p, "exp", 0, 0, INT64_MAX);
  if (static_cast<std::uint64_t>(e) >= files_.size()) {
    throw http_error(404, "no experiment " + std::to_string(e) + ": this server reads " + std::to_string(files_.size()) +
                              " (0 to " + std::to_string(files_.size() - 1) + ", see /api/experiments)");
  }
  return static_cast<std::size_t>(e);
}

std::shared_ptr<const std::vector<tr::index_entry>> experiments::index(std::size_t exp) {
  // Called with mutex_ held.
  auto& c = *indexes_[exp];
  const tr::experiment_paths p(files_[exp]);
  std::string now = experiment_stamp(p);
  if (!c.all || now != c.stamp) {
    // A file being replaced (a stop's rename) or recovered while we read:
    // the reader sees the old or the new file, each whole. Read again when
    // a read fails because the files changed under it.
    for (int attempt = 0;; ++attempt) {
      try {
        auto all = std::make_shared<std::vector<tr::index_entry>>(tr::experiment_index(files_[exp]));
        c.by_id.clear();
        for (std::size_t k = 0; k < all->size(); ++k) c.by_id[(*all)[k].info.id] = k;
        c.all = std::move(all);
        c.stamp = std::move(now);
        break;
      } catch (const std::exception&) {
        std::string again = experiment_stamp(p);
        if (attempt >= 2 || again == now) throw;
        now = std::move(again);
      }
    }
  }
  return c.all;
}

const tr::index_entry& experiments::entry(std::size_t exp, const std::string& id,
                                          const std::vector<tr::index_entry>& all) const {
  const auto& c = *indexes_[exp];
  const auto it = c.by_id.find(id);
  if (it == c.by_id.end() || it->second >= all.size()) {
    throw http_error(404, "no run '" + id + "' in " + files_[exp] + " (" + std::to_string(all.size()) + " runs)");
  }
  return all[it->second];
}

std::shared_ptr<const tr::run_record> experiments::record(std::size_t exp, const std::string& id, bool with_bytes,
                                                          const tr::series_points& points) {
  // Called with mutex_ held; `id` is a run of the index (entry() checked it),
  // so the paths below are the run's own.
  const tr::experiment_paths p(files_[exp]);
  auto stamp_of = [&] { return stamp(p.file) + "|" + stamp(p.run_file(id)) + "|" + stamp(p.journal(id)); };
  std::string now = stamp_of();
  auto& runs = records_[exp]->runs;
  const std::string key =
      id + "\n" + std::to_string(static_cast<int>(points.w)) + (points.timestamps ? "t" : "-") + points.path;
  if (auto it = runs.find(key); it != runs.end() && it->second.stamp == now && (it->second.with_bytes || !with_bytes)) {
    return it->second.rec;
  }
  if (runs.size() >= 16) runs.clear();  // a few runs (and series) at a time
  // As in index(): a run merged or recovered while we read it (its journal
  // gone, its run file renamed into place) is read again.
  for (int attempt = 0;; ++attempt) {
    try {
      auto rec = std::make_shared<const tr::run_record>(tr::load_run(files_[exp], id, with_bytes, points));
      runs[key] = {now, with_bytes, rec};
      return rec;
    } catch (const std::exception&) {
      std::string again = stamp_of();
      if (attempt >= 2 || again == now) throw;
      now = std::move(again);
    }
  }
}

json experiments::list() {
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (std::size_t k = 0; k < files_.size(); ++k) {
    json e = {{"index", k}, {"file", files_[k]}};
    try {
      e["runs"] = index(k)->size();
    } catch (const std::exception& x) {
      e["runs"] = 0;
      e["error"] = x.what();
    }
    out.push_back(std::move(e));
  }
  return {{"experiments", out}};
}

std::vector<std::string> experiments::run_ids(std::size_t exp) {
  std::lock_guard lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& e : *index(exp)) ids.push_back(e.info.id);
  return ids;
}

json experiments::runs(const params& p) {
  const std::size_t exp = exp_of(p);
  const std::string where_text = optional(p, "where");
  const std::string sort_text = optional(p, "sort");
  const std::string cols_text = optional(p, "cols");
  const std::string sweep = optional(p, "sweep");
  const auto offset = integer(p, "offset", 0, 0, INT64_MAX / 2);
  const auto limit = integer(p, "limit", 100, 1, max_page);
  std::optional<query::expression> where;
  std::vector<query::sort_key> keys;
  std::vector<std::string> cols;
  try {
    if (!where_text.empty()) where.emplace(where_text);
    if (!sort_text.empty()) keys = query::parse_sort(sort_text);
    if (!cols_text.empty()) cols = query::parse_columns(cols_text);
  } catch (const std::exception& e) {
    throw http_error(400, e.what());
  }
  std::lock_guard lock(mutex_);
  const auto all = index(exp);
  std::vector<const tr::index_entry*> rows;
  for (const auto& e : *all) {
    if (!sweep.empty() && e.sweep() != sweep) continue;
    if (where && !where->matches(e)) continue;
    rows.push_back(&e);
  }
  if (!keys.empty()) query::sort_runs(rows, keys);
  if (cols.empty()) {
    // The defaults: who and how, then every parameter and the last value of
    // every series of the runs on this page (a page is at most max_page runs).
    cols = {"id", "name", "status", "start", "duration", "ranks"};
    std::set<std::string> params_seen, series_seen;
    const std::size_t from = std::min<std::size_t>(static_cast<std::size_t>(offset), rows.size());
    const std::size_t to = std::min<std::size_t>(from + static_cast<std::size_t>(limit), rows.size());
    for (std::size_t k = from; k < to; ++k) {
      for (const auto& [path, a] : rows[k]->scalars) {
        if (path.starts_with("params/")) params_seen.insert(path);
      }
      for (const auto& s : rows[k]->series) {
        if (s.type != field_type::string_series && series_seen.size() < 8) series_seen.insert(s.path);
      }
    }
    cols.insert(cols.end(), params_seen.begin(), params_seen.end());
    cols.insert(cols.end(), series_seen.begin(), series_seen.end());
  }
  json out_rows = json::array();
  for (std::size_t k = static_cast<std::size_t>(std::min<std::int64_t>(offset, static_cast<std::int64_t>(rows.size())));
       k < rows.size() && out_rows.size() < static_cast<std::size_t>(limit); ++k) {
    const auto& e = *rows[k];
    json cells = json::object();
    for (const auto& c : cols) cells[c] = cell_json(query::value_of(e, c));
    out_rows.push_back({{"id", e.info.id},
                        {"name", e.info.name},
                        {"status", e.info.status},
                        {"reason", e.info.reason},
                        {"sweep", e.sweep()},
                        {"live", e.info.status == "running"},
                        {"cells", std::move(cells)}});
  }
  return {{"total", all->size()}, {"matched", rows.size()}, {"offset", offset},
          {"columns", cols},      {"rows", std::move(out_rows)}};
}

json experiments::sweeps(const params& p) {
  const std::size_t exp = exp_of(p);
  std::lock_guard lock(mutex_);
  struct counts {
    std::int64_t runs = 0;
    std::map<std::string, std::int64_t> by_status;
    double first = 0;
  };
  std::map<std::string, counts> s;
  for (const auto& e : *index(exp)) {
    const auto name = e.sweep();
    if (name.empty()) continue;
    auto& c = s[name];
    ++c.runs;
    ++c.by_status[e.info.status];
    if (c.first == 0 || e.info.start_time < c.first) c.first = e.info.start_time;
  }
  json out = json::array();
  for (const auto& [name, c] : s) out.push_back({{"sweep", name}, {"runs", c.runs}, {"status", c.by_status}, {"first", c.first}});
  return {{"sweeps", out}};
}

json experiments::run(const params& p) {
  const std::size_t exp = exp_of(p);
  const std::string& id = need(p, "id");
  std::lock_guard lock(mutex_);
  const auto all = index(exp);
  const auto& summary = entry(exp, id, *all);
  const auto rec = record(exp, id, false, tr::series_points{tr::series_points::which::none, {}});
  json fields = json::array(), series = json::array(), files = json::array(), arrays = json::array();
  for (const auto& [path, f] : rec->fields) {
    if (is_series(f.type)) {
      const auto count = std::max<std::uint64_t>(f.points, f.series.size());
      json s = {{"path", path}, {"type", type_name(f.type)}, {"count", count}};
      // Last, min and max: a live run's record keeps them as points arrive;
      // a stopped run's are in its index entry (its points were not read).
      const tr::series_summary* sum = f.summary.has_number || !f.summary.last_text.empty() ? &f.summary : nullptr;
      for (const auto& is : summary.series) {
        if (!sum && is.path == path) sum = &is.summary;
      }
      if (sum && f.type != field_type::string_series && sum->has_number) {
        s["last"] = number_json(sum->last);
        s["min"] = number_json(sum->min);
        s["max"] = number_json(sum->max);
      } else if (sum && f.type == field_type::string_series && count) {
        s["last"] = sum->last_text;
      }
      series.push_back(std::move(s));
    } else if (f.type == field_type::file) {
      files.push_back({{"path", path}, {"filename", f.file.filename}, {"size", f.file.size}});
    } else if (f.type == field_type::array) {
      arrays.push_back({{"path", path}, {"dtype", f.array.dtype}, {"shape", f.array.shape}, {"file", f.array.file}});
    } else {
      fields.push_back({{"path", path}, {"type", type_name(f.type)}, {"value", atom_json(f.atom)}});
    }
  }
  json calls = json::array();
  for (const auto& [n, c] : rec->calls) {
    calls.push_back({{"call", n}, {"step", c.step}, {"items", c.items}, {"partitions", c.partitions}, {"signature", c.signature}});
  }
  return {{"info", info_json(rec->info)},
          {"live", rec->info.status == "running"},
          {"fields", fields},
          {"series", series},
          {"files", files},
          {"arrays", arrays},
          {"ledger", {{"rows", rec->ledger.size()}, {"calls", calls}}}};
}

json experiments::series(const params& p) {
  const std::size_t exp = exp_of(p);
  const std::string& id = need(p, "id");
  const std::string& path = field_path(p);
  const std::string x = optional(p, "x", "step");
  if (x != "step" && x != "time") throw http_error(400, "parameter 'x' must be step or time, got '" + x + "'");
  const auto width = static_cast<std::size_t>(integer(p, "width", 800, 1, max_width));
  const auto from = number(p, "from"), to = number(p, "to");
  if (from.has_value() != to.has_value()) throw http_error(400, "a window needs both 'from' and 'to'");
  if (from && *to < *from) throw http_error(400, "parameter 'to' is smaller than 'from'");
  std::lock_guard lock(mutex_);
  const auto all = index(exp);
  const double t0 = entry(exp, id, *all).info.start_time;
  const bool by_time = x == "time";
  minmax_reducer red(width, from, to);
  // The points stream from the run's file into the reducer; a live run's
  // come from its journal, in memory.
  tr::series_points sp{tr::series_points::which::one, path, by_time};
  sp.total = [&](std::uint64_t n) { red.total(n); };
  sp.chunk = [&](std::uint64_t at, const double* steps, const double* times, const double* values, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) red.add(at + i, by_time ? micro(times[i] - t0) : steps[i], values[i]);
  };
  const auto rec = tr::load_run(files_[exp], id, false, sp);
  const auto* f = rec.find(path);
  if (!f || !is_series(f->type)) {
    throw http_error(404, "run " + id + " has no series '" + path + "'" +
                              (f ? " (it is a " + std::string(type_name(f->type)) + ")" : ""));
  }
  const auto& s = f->series;
  auto x_of = [&](std::size_t k) { return by_time ? micro(s.timestamps[k] - t0) : s.steps[k]; };
  json points = json::array();
  std::uint64_t count = std::max<std::uint64_t>(f->points, s.size()), window = 0;
  bool reduced = false;
  if (f->type == field_type::string_series) {
    // Text is listed, not drawn: the last `width` points of the window.
    std::vector<std::size_t> in;
    for (std::size_t k = 0; k < s.size(); ++k) {
      if (!from || (x_of(k) >= *from && x_of(k) <= *to)) in.push_back(k);
    }
    window = in.size();
    reduced = in.size() > width;
    for (std::size_t j = in.size() > width ? in.size() - width : 0; j < in.size(); ++j) {
      points.push_back(json::array({x_of(in[j]), s.s[in[j]]}));
    }
  } else {
    if (s.size() > 0) {  // in memory (a live run): fed here
      red.total(s.size());
      for (std::size_t k = 0; k < s.size(); ++k) {
        red.add(k, x_of(k), f->type == field_type::int_series ? static_cast<double>(s.i[k]) : s.f[k]);
      }
    }
    points = red.points();
    window = red.window();
    reduced = red.reduced();
  }
  return {{"path", path}, {"type", type_name(f->type)}, {"count", count}, {"window", window},
          {"x", x},       {"reduced", reduced},          {"points", std::move(points)},
          {"live", rec.info.status == "running"}};
}

std::pair<std::string, std::string> experiments::file(const params& p) {
  const std::size_t exp = exp_of(p);
  const std::string& id = need(p, "id");
  const std::string& path = field_path(p);
  std::lock_guard lock(mutex_);
  const auto all = index(exp);
  (void)entry(exp, id, *all);
  const auto rec = record(exp, id, true, tr::series_points{tr::series_points::which::none, {}});
  const auto* f = rec->find(path);
  if (!f || f->type != field_type::file) throw http_error(404, "run " + id + " has no File field '" + path + "'");
  if (f->file.data.size() != f->file.size) {
    throw http_error(409, "the bytes of '" + path + "' are not readable yet; try again after the run's next wait()");
  }
  return {f->file.data, f->file.filename.empty() ? path.substr(path.rfind('/') + 1) : f->file.filename};
}

json experiments::timeline(const params& p) {
  const std::size_t exp = exp_of(p);
  const std::string& id = need(p, "id");
  std::lock_guard lock(mutex_);
  const auto all = index(exp);
  (void)entry(exp, id, *all);
  const auto rec = record(exp, id, false, tr::series_points{tr::series_points::which::none, {}});
  const auto& L = rec->ledger;
  double t0 = 0, t1 = 0;
  int ranks = std::max(rec->info.ranks, 1);
  for (const auto& e : L) {
    if (t0 == 0 || e.start < t0) t0 = e.start;
    t1 = std::max(t1, e.end);
    ranks = std::max(ranks, e.rank + 1);
  }
  auto step_of = [&](std::int64_t call) {
    const auto it = rec->calls.find(call);
    return it == rec->calls.end() ? std::string() : it->second.step;
  };
  auto entry_json = [&](const tr::ledger_entry& e) {
    json j{{"rank", e.rank},         {"call", e.call},         {"step", step_of(e.call)},
           {"partition", e.partition}, {"start", micro(e.start - t0)}, {"end", micro(e.end - t0)},
           {"ok", e.ok},             {"attempts", e.attempts}, {"error", e.error}};
    if (e.call < 0) j["task"] = e.result;  // a drive()'s task: its id is the partition (docs/format.md)
    return j;
  };
  // The longest partitions first when there are more than can be drawn.
  std::vector<std::size_t> order(L.size());
  for (std::size_t k = 0; k < L.size(); ++k) order[k] = k;
  auto longer = [&](std::size_t a, std::size_t b) { return L[a].end - L[a].start > L[b].end - L[b].start; };
  std::vector<std::size_t> slowest = order;
  std::partial_sort(slowest.begin(), slowest.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(10, L.size())),
                    slowest.end(), longer);
  slowest.resize(std::min<std::size_t>(10, L.size()));
  if (order.size() > max_timeline) {
    std::nth_element(order.begin(), order.begin() + max_timeline, order.end(), longer);
    order.resize(max_timeline);
    std::sort(order.begin(), order.end());
  }
  json entries = json::array(), slow = json::array(), failures = json::array();
  for (const auto k : order) entries.push_back(entry_json(L[k]));
  for (const auto k : slowest) slow.push_back(entry_json(L[k]));
  std::vector<double> busy(static_cast<std::size_t>(ranks), 0.0);
  for (const auto& e : L) {
    if (e.rank >= 0 && e.rank < ranks) busy[static_cast<std::size_t>(e.rank)] += e.end - e.start;
    if ((!e.ok && !tr::lost_copy(e)) || e.attempts > 1) failures.push_back(entry_json(e));
    if (failures.size() >= 200) break;
  }
  json idle = json::array();
  for (const double b : busy) idle.push_back(std::max(0.0, (t1 - t0) - b));
  // Progress of the last collective call: partitions recorded of those it has.
  json progress = nullptr;
  if (!rec->calls.empty() && rec->calls.rbegin()->first > 0) {
    const auto& [n, c] = *rec->calls.rbegin();
    std::int64_t done = 0;
    double first = 0, last = 0;
    for (const auto& e : L) {
      if (e.call != n || !e.ok) continue;
      ++done;
      if (first == 0 || e.start < first) first = e.start;
      last = std::max(last, e.end);
    }
    progress = {{"call", n}, {"step", c.step}, {"done", done}, {"partitions", c.partitions}};
    if (done > 0 && done < c.partitions && last > first) {
      progress["eta_s"] = (last - first) / static_cast<double>(done) * static_cast<double>(c.partitions - done);
    }
  }
  return {{"ranks", ranks},        {"t0", t0},           {"span", t1 - t0},
          {"rows", L.size()},      {"drawn", order.size()}, {"entries", std::move(entries)},
          {"slowest", std::move(slow)}, {"failures", std::move(failures)}, {"idle", idle},
          {"progress", progress},  {"live", rec->info.status == "running"}};
}

json experiments::compare(const params& p) {
  const std::size_t exp = exp_of(p);
  const std::string& ids_text = need(p, "ids");
  std::vector<std::string> ids;
  for (std::size_t at = 0; at <= ids_text.size();) {
    const std::size_t comma = std::min(ids_text.find(',', at), ids_text.size());
    if (comma > at) ids.push_back(ids_text.substr(at, comma - at));
    at = comma + 1;
  }
  if (ids.size() < 2 || ids.size() > 20) throw http_error(400, "parameter 'ids' must name 2 to 20 runs, comma-separated");
  std::lock_guard lock(mutex_);
  const auto all = index(exp);
  std::vector<const tr::index_entry*> runs;
  std::vector<std::shared_ptr<const tr::run_record>> recs;
  for (const auto& id : ids) runs.push_back(&entry(exp, id, *all));
  // Every field of every run (the index keeps some only): the runs' files,
  // without their series' points.
  for (const auto& id : ids) recs.push_back(record(exp, id, false, tr::series_points{tr::series_points::which::none, {}}));
  std::set<std::string> paths, series;
  for (const auto& r : recs) {
    for (const auto& [path, f] : r->fields) {
      if (is_series(f.type)) {
        if (f.type != field_type::string_series) series.insert(path);
      } else if (f.type != field_type::file && f.type != field_type::array) {
        paths.insert(path);
      }
    }
  }
  json fields = json::array();
  auto row = [&](const std::string& name, json values) {
    std::set<std::string> distinct;
    for (const auto& v : values) distinct.insert(v.dump());
    fields.push_back({{"path", name}, {"values", std::move(values)}, {"differs", distinct.size() > 1}});
  };
  for (const char* a : {"name", "status", "duration", "ranks"}) {
    json values = json::array();
    for (const auto* e : runs) values.push_back(cell_json(query::value_of(*e, a)));
    row(a, std::move(values));
  }
  for (const auto& path : paths) {
    json values = json::array();
    for (const auto& r : recs) {
      const auto* f = r->find(path);
      values.push_back(f && !is_series(f->type) ? atom_json(f->atom) : json(nullptr));
    }
    row(path, std::move(values));
  }
  for (const auto& path : series) {
    json values = json::array();
    for (const auto* e : runs) values.push_back(cell_json(query::value_of(*e, path + ":last")));
    row(path + ":last", std::move(values));
  }
  return {{"runs", ids}, {"fields", fields}, {"series", std::vector<std::string>(series.begin(), series.end())}};
}

}  // namespace rankflow::ui
