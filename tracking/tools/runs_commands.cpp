#include "runs_commands.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <map>
#include <set>

#include <rankflow/core/error.hpp>
#include <rankflow/tracking/experiment.hpp>

#include "output.hpp"
#include "query.hpp"
#include "run_index.hpp"

namespace rankflow::cli {

namespace tr = rankflow::tracking;
using query::cell;

namespace {

// Longest a text cell is shown; the CSV and JSON outputs keep every byte.
constexpr std::size_t max_text_width = 60;

// UTF-8 aware width of a cell, in code points (close enough for a terminal).
std::size_t width_of(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string clipped(const std::string& s) {
  if (width_of(s) <= max_text_width) return s;
  std::string out;
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80 && ++n > max_text_width - 1) break;
    out += s[i];
  }
  return out + "\u2026";
}

void print_table(const std::vector<std::string>& cols, const std::vector<std::vector<cell>>& rows,
                 const std::string& format) {
  if (format == "json") {
    std::string o = "[";
    for (std::size_t r = 0; r < rows.size(); ++r) {
      o += r ? ",\n {" : "\n {";
      for (std::size_t c = 0; c < cols.size(); ++c) {
        const cell& v = rows[r][c];
        o += (c ? ", " : "") + json_str(cols[c]) + ": ";
        if (v.k == cell::kind::missing) {
          o += "null";
        } else if (v.k == cell::kind::number && v.text == query::number_text(v.num)) {
          o += json_num(v.num);
        } else {
          o += json_str(v.text);  // text, and numbers shown otherwise (a Datetime as ISO 8601)
        }
      }
      o += "}";
    }
    o += rows.empty() ? "]\n" : "\n]\n";
    std::cout << o;
    return;
  }
  if (format == "csv") {
    std::string o;
    for (std::size_t c = 0; c < cols.size(); ++c) o += (c ? "," : "") + csv_cell(cols[c]);
    o += "\n";
    for (const auto& row : rows) {
      for (std::size_t c = 0; c < cols.size(); ++c) o += (c ? "," : "") + csv_cell(row[c].text);
      o += "\n";
    }
    std::cout << o;
    return;
  }
  std::vector<std::size_t> w(cols.size());
  for (std::size_t c = 0; c < cols.size(); ++c) w[c] = width_of(cols[c]);
  std::vector<std::vector<std::string>> shown(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t c = 0; c < cols.size(); ++c) {
      shown[r].push_back(rows[r][c].k == cell::kind::missing ? "-" : clipped(rows[r][c].text));
      w[c] = std::max(w[c], width_of(shown[r].back()));
    }
  }
  auto line = [&](const std::vector<std::string>& v, const std::vector<cell>* types) {
    std::string o;
    for (std::size_t c = 0; c < v.size(); ++c) {
      const std::string pad(w[c] - width_of(v[c]), ' ');
      const bool right = types && (*types)[c].k == cell::kind::number;
      o += (c ? "  " : "") + (right ? pad + v[c] : (c + 1 == v.size() ? v[c] : v[c] + pad));
    }
    return o + "\n";
  };
  std::string o = line(cols, nullptr);
  for (std::size_t r = 0; r < rows.size(); ++r) o += line(shown[r], &rows[r]);
  std::cout << o;
}

// Every column a sweep's runs have: parameters first, then other scalars,
// then series (their last values), each sorted by path.
std::vector<std::string> sweep_columns(const std::vector<const tr::index_entry*>& runs) {
  std::set<std::string> params, scalars, series;
  for (const auto* e : runs) {
    for (const auto& [p, a] : e->scalars) (p.starts_with("params/") ? params : scalars).insert(p);
    for (const auto& s : e->series) series.insert(s.path);
  }
  std::vector<std::string> cols = {"id", "status"};
  cols.insert(cols.end(), params.begin(), params.end());
  cols.insert(cols.end(), scalars.begin(), scalars.end());
  cols.insert(cols.end(), series.begin(), series.end());
  cols.push_back("reason");
  return cols;
}

}  // namespace

int cmd_runs(const std::string& file, const runs_request& q) {
  std::optional<query::expression> where;
  if (!q.where.empty()) where.emplace(q.where);
  const auto keys = query::parse_sort(q.sort.empty() ? "id" : q.sort);
  const auto all = tr::experiment_index(file);
  std::vector<const tr::index_entry*> runs;
  for (const auto& e : all) {
    if (!q.sweep.empty() && e.sweep() != q.sweep) continue;
    if (where && !where->matches(e)) continue;
    runs.push_back(&e);
  }
  if (!q.sweep.empty() && runs.empty() && !where) {
    std::set<std::string> known;
    for (const auto& e : all) {
      if (!e.sweep().empty()) known.insert(e.sweep());
    }
    std::string list;
    for (const auto& s : known) list += (list.empty() ? "" : ", ") + s;
    throw usage_error("--sweep " + q.sweep + ": no such sweep in '" + file +
                      "' (sweeps there: " + (list.empty() ? "none" : list) + "; see `rankflow sweeps`)");
  }
  if (q.sort.empty()) {
    // By run number (the index order), not by the id's text (RUN-10 < RUN-9).
  } else {
    query::sort_runs(runs, keys);
  }
  if (q.limit >= 0 && runs.size() > static_cast<std::size_t>(q.limit)) runs.resize(static_cast<std::size_t>(q.limit));
  std::vector<std::string> cols;
  if (!q.cols.empty()) {
    cols = query::parse_columns(q.cols);
  } else if (!q.sweep.empty()) {
    cols = sweep_columns(runs);
  } else {
    cols = {"id", "name", "status", "start", "duration", "ranks", "hosts"};
    if (std::any_of(runs.begin(), runs.end(), [](const auto* e) { return !e->sweep().empty(); })) {
      cols.push_back("sweep");
    }
  }
  if (runs.empty() && q.format == "text") {
    std::cout << (all.empty() ? "no runs in " + file : "no run of " + std::to_string(all.size()) + " matches") << "\n";
    return 0;
  }
  std::vector<std::vector<cell>> rows;
  rows.reserve(runs.size());
  for (const auto* e : runs) {
    std::vector<cell> row;
    for (const auto& c : cols) row.push_back(query::value_of(*e, c));
    rows.push_back(std::move(row));
  }
  print_table(cols, rows, q.format);
  return 0;
}

int cmd_sweeps(const std::string& file, const std::string& format) {
  struct counts {
    std::int64_t runs = 0, succeeded = 0, failed = 0, running = 0, killed = 0;
    double first = 0, last = 0;
    std::set<std::string> names;
  };
  std::map<std::string, counts> sweeps;
  for (const auto& e : tr::experiment_index(file)) {
    const auto s = e.sweep();
    if (s.empty()) continue;
    auto& c = sweeps[s];
    ++c.runs;
    const auto& st = e.info.status;
    c.succeeded += st == "succeeded";
    c.failed += st == "failed";
    c.running += st == "running";
    c.killed += st == "killed";
    if (c.first == 0 || e.info.start_time < c.first) c.first = e.info.start_time;
    c.last = std::max(c.last, std::max(e.info.start_time, e.info.end_time));
    c.names.insert(e.info.name);
  }
  if (sweeps.empty() && format == "text") {
    std::cout << "no sweeps in " << file
              << " (runs of one Slurm array form one; a program names one with --sweep or run_options::sweep)\n";
    return 0;
  }
  const std::vector<std::string> cols = {"sweep", "runs", "succeeded", "failed", "running", "killed", "first start",
                                         "names"};
  std::vector<std::vector<cell>> rows;
  for (const auto& [s, c] : sweeps) {
    auto n = [](std::int64_t v) { return cell{cell::kind::number, static_cast<double>(v), std::to_string(v)}; };
    std::string names;
    for (const auto& x : c.names) names += (names.empty() ? "" : ",") + x;
    rows.push_back({{cell::kind::text, 0, s},
                    n(c.runs),
                    n(c.succeeded),
                    n(c.failed),
                    n(c.running),
                    n(c.killed),
                    {cell::kind::number, c.first, format_time(c.first)},
                    {cell::kind::text, 0, names}});
  }
  print_table(cols, rows, format);
  return 0;
}

namespace {

std::string atom_shown(const tr::field_record& f) { return query::atom_cell(f.atom).text; }

double point(const tr::series_data& s, std::size_t k) {
  return s.type == field_type::int_series ? static_cast<double>(s.i[k]) : s.f[k];
}

// Where two series first differ: by step, a point one of them lacks counts.
std::string divergence(const tr::series_data& a, const tr::series_data& b) {
  if (a.type == field_type::string_series || b.type == field_type::string_series) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t k = 0; k < n; ++k) {
      if (a.steps[k] != b.steps[k] || a.s[k] != b.s[k]) return "first differs at step " + query::number_text(a.steps[k]);
    }
    return a.size() == b.size() ? "identical (" + std::to_string(n) + " points)"
                                : "same for " + std::to_string(n) + " points, then one run has more";
  }
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a.steps[i] != b.steps[j]) {
      const double step = std::min(a.steps[i], b.steps[j]);
      return "first differs at step " + query::number_text(step) + " (only one run has it)";
    }
    const double x = point(a, i), y = point(b, j);
    if (!(x == y || (std::isnan(x) && std::isnan(y)))) {
      return "first differs at step " + query::number_text(a.steps[i]) + " (" + query::number_text(x) + " vs " +
             query::number_text(y) + ")";
    }
    ++i;
    ++j;
  }
  if (i == a.size() && j == b.size()) return "identical (" + std::to_string(i) + " points)";
  const double step = i < a.size() ? a.steps[i] : b.steps[j];
  return "same up to step " + query::number_text(step) + ", where one run ends";
}

}  // namespace

int cmd_compare(const std::string& file, const std::vector<std::string>& ids) {
  if (ids.size() < 2) throw usage_error("compare needs at least two runs, e.g. rankflow compare FILE RUN-1 RUN-2");
  std::vector<tr::run_record> recs;
  for (const auto& id : ids) recs.push_back(tr::load_run(file, id, false));
  std::set<std::string> scalar_paths, series_paths;
  for (const auto& r : recs) {
    for (const auto& [p, f] : r.fields) {
      if (is_series(f.type)) {
        series_paths.insert(p);
      } else if (f.type != field_type::file && f.type != field_type::array) {
        scalar_paths.insert(p);
      }
    }
  }
  std::vector<std::string> cols = {"field"};
  for (const auto& r : recs) cols.push_back(r.info.id);
  auto text = [](std::string s) { return cell{cell::kind::text, 0, std::move(s)}; };
  // 1. Fields (parameters and other scalars) that differ.
  std::vector<std::vector<cell>> rows;
  for (const auto& p : scalar_paths) {
    std::vector<cell> row = {text(p)};
    std::set<std::string> distinct;
    for (const auto& r : recs) {
      const auto* f = r.find(p);
      row.push_back(f ? text(atom_shown(*f)) : cell{});
      distinct.insert(f ? "=" + atom_shown(*f) : "missing");
    }
    if (distinct.size() > 1) rows.push_back(std::move(row));
  }
  std::cout << "fields that differ (" << rows.size() << " of " << scalar_paths.size() << "):\n";
  if (!rows.empty()) print_table(cols, rows, "text");
  // 2. Series: last, min, max side by side, and where they part.
  std::cout << "\nseries (last / min / max):\n";
  rows.clear();
  for (const auto& p : series_paths) {
    std::vector<cell> row = {text(p)};
    for (const auto& r : recs) {
      const auto* f = r.find(p);
      if (!f || f->points == 0) {
        row.push_back({});
      } else if (f->type == field_type::string_series) {
        row.push_back(text(f->summary.last_text));
      } else {
        row.push_back(text(query::number_text(f->summary.last) + " / " + query::number_text(f->summary.min) + " / " +
                           query::number_text(f->summary.max)));
      }
    }
    rows.push_back(std::move(row));
  }
  if (!rows.empty()) print_table(cols, rows, "text");
  std::cout << "\nwhere the series part (against " << recs[0].info.id << "):\n";
  for (const auto& p : series_paths) {
    const auto* a = recs[0].find(p);
    for (std::size_t k = 1; k < recs.size(); ++k) {
      const auto* b = recs[k].find(p);
      std::cout << "  " << p << ", " << recs[k].info.id << ": "
                << (!a || !b ? std::string("only in one of the runs") : divergence(a->series, b->series)) << "\n";
    }
  }
  return 0;
}

int cmd_upgrade(const std::string& file) {
  const auto n = tr::upgrade(file);
  if (n == 0) {
    const auto indexed = tr::rebuild_index(file);
    std::cout << file << " already has format " << tr::format_major << "." << tr::format_minor
              << "; its run index was rebuilt from " << indexed << " run file(s)\n";
  } else {
    std::cout << "upgraded " << file << " to format " << tr::format_major << "." << tr::format_minor << ": " << n
              << " run(s), each now in " << file << ".d/runs/\n";
  }
  return 0;
}

}  // namespace rankflow::cli
