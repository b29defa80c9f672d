// `rankflow report FILE [RUN...] -o report.html`: the page of `rankflow ui`
// with its data inline, one file that opens from disk with no server (for
// sharing, or a paper's supplement). The data are the API's answers for the
// views the report holds, stored under the URLs the page asks for them by.
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>

#include <rankflow/core/error.hpp>

#include "output.hpp"
#include "ui_commands.hpp"
#include "ui_data.hpp"

namespace rankflow::ui {

namespace {

constexpr int page_size = 100;          // the page's PAGE
constexpr int report_width = 800;       // the page's WIDTH
constexpr int text_rows = 50;           // the page's TEXT_ROWS
constexpr std::size_t max_pages = 20;   // runs table: the first 2000 runs

using query_list = std::vector<std::pair<std::string, std::string>>;

// JSON inside <script>: "</" would end the element; "<\/" is the same JSON.
std::string script_safe(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 64);
  for (std::size_t k = 0; k < s.size(); ++k) {
    out += s[k];
    if (s[k] == '<' && k + 1 < s.size() && s[k + 1] == '/') out += '\\';
  }
  return out;
}

// Writes `text` to `out`. A regular file (or a new one) is written beside it
// and renamed over it, so a reader never sees half a report and a failed
// write leaves the old one; anything else (a pipe, /dev/stdout, a device) is
// written in place. Either way a short write is an error (exit 1, as a
// failed export), never exit 0.
void write_output(const std::string& out, const std::string& text) {
  struct stat st {};
  const bool regular = ::stat(out.c_str(), &st) != 0 || S_ISREG(st.st_mode);
  const std::string target = regular ? out + ".tmp" : out;
  std::FILE* f = std::fopen(target.c_str(), "wb");
  if (!f) throw usage_error("cannot write '" + target + "': " + std::strerror(errno) + "; pass another path with -o");
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed) {
    const std::string why = std::strerror(errno);
    if (regular) std::remove(target.c_str());
    throw error("writing '" + target + "' failed (" + why + "): free some space or pass another path with -o");
  }
  if (regular && std::rename(target.c_str(), out.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(target.c_str());
    throw error("cannot rename '" + target + "' to '" + out + "': " + why);
  }
}

std::string now_text() {
  return format_time(now_unix_seconds()).substr(0, 19) + "Z";
}

}  // namespace

// The page builds the same keys (page.html, key()): encodeURIComponent.
std::string api_key(const std::string& endpoint, const std::vector<std::pair<std::string, std::string>>& query) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = endpoint;
  char sep = '?';
  for (const auto& [k, v] : query) {
    out += sep;
    sep = '&';
    out += k + "=";
    for (const unsigned char c : v) {
      if (std::isalnum(c) || std::string_view("-_.!~*'()").find(static_cast<char>(c)) != std::string_view::npos) {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
  }
  return out;
}

int cmd_report(const std::string& file, const std::vector<std::string>& wanted, const std::string& out) {
  if (!tracking::check_file(file)) {
    throw usage_error("'" + file + "' is not an experiment file (it does not exist): pass the path of one as FILE");
  }
  experiments exps({file});
  json api = json::object();
  auto put = [&](const std::string& endpoint, const query_list& q, json value) { api[api_key(endpoint, q)] = std::move(value); };
  put("/api/experiments", {}, exps.list());
  put("/api/sweeps", {{"exp", "0"}}, exps.sweeps({{"exp", "0"}}));
  const auto ids_all = exps.run_ids(0);
  for (std::size_t page = 0; page < max_pages; ++page) {
    const std::string offset = std::to_string(page * page_size);
    const query_list q = {{"exp", "0"}, {"offset", offset}, {"limit", std::to_string(page_size)}};
    json runs = exps.runs({q.begin(), q.end()});
    put("/api/runs", q, runs);
    if ((page + 1) * page_size >= runs["matched"].get<std::size_t>()) break;
  }
  std::vector<std::string> ids = wanted;
  if (ids.empty() && !ids_all.empty()) ids.push_back(ids_all.back());
  const std::set<std::string> known(ids_all.begin(), ids_all.end());
  for (const auto& id : ids) {
    if (!known.count(id)) {
      throw usage_error("no run '" + id + "' in " + file + " (" + std::to_string(ids_all.size()) + " runs; see `rankflow runs " + file + "`)");
    }
  }
  for (const auto& id : ids) {
    const query_list rq = {{"exp", "0"}, {"id", id}};
    json run = exps.run({rq.begin(), rq.end()});
    put("/api/timeline", rq, exps.timeline({rq.begin(), rq.end()}));
    for (const auto& s : run["series"]) {
      if (s["type"] == "StringSeries") {  // listed, its last text_rows points
        const query_list sq = {{"exp", "0"}, {"id", id}, {"path", s["path"].get<std::string>()}, {"x", "step"},
                               {"width", std::to_string(text_rows)}};
        put("/api/series", sq, exps.series({sq.begin(), sq.end()}));
        continue;
      }
      // By step only: with time on x as well a report of 20 series doubles
      // (the page offers time in `rankflow ui`).
      for (const char* x : {"step"}) {
        const query_list sq = {{"exp", "0"}, {"id", id}, {"path", s["path"].get<std::string>()}, {"x", x},
                               {"width", std::to_string(report_width)}};
        put("/api/series", sq, exps.series({sq.begin(), sq.end()}));
      }
    }
    put("/api/run", rq, std::move(run));
  }
  std::string start = ids.empty() ? "#/runs" : "#/run/0/" + ids.front();
  if (ids.size() >= 2) {
    std::string joined;
    for (const auto& id : ids) joined += (joined.empty() ? "" : ",") + id;
    const query_list cq = {{"exp", "0"}, {"ids", joined}};
    put("/api/compare", cq, exps.compare({cq.begin(), cq.end()}));
  }
  const json data = {{"file", file}, {"made", now_text()}, {"runs", ids}, {"start", start}, {"api", std::move(api)}};
  std::string page = page_html();
  const std::string marker = "<!--DATA-->";
  const auto at = page.find(marker);
  if (at == std::string::npos) throw error("rankflow report: the page has no place for its data (a build error)");
  page.replace(at, marker.size(),
               "<script id=\"rf-data\" type=\"application/json\">" +
                   script_safe(data.dump(-1, ' ', false, json::error_handler_t::replace)) + "</script>");
  write_output(out, page);
  std::cout << "rankflow report: " << out << " (" << page.size() / 1024 << " KiB; runs table of " << ids_all.size()
            << " runs" << (ids.empty() ? "" : ", details of " + cli::join(ids, ", ")) << ")\n";
  return 0;
}

}  // namespace rankflow::ui
