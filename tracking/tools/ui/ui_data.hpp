// What `rankflow ui` serves and `rankflow report` embeds: the JSON of each
// view of the page (docs/ui.md, "The JSON API"), built from experiment files
// opened read-only. One class for both, so the report shows exactly what the
// server would.
//
// Every request names an experiment by its position on the command line and
// a run by its id, checked against the experiment's run index; field paths
// are checked by validate_path and must be fields of that run. Nothing a
// request carries becomes part of a file path, so no request can read
// outside the experiments it was started with.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <rankflow/tracking/experiment.hpp>

#include "run_index.hpp"

namespace rankflow::ui {

using json = nlohmann::json;

/// A request the API refuses: its HTTP status (400, 404, 409) and why.
struct http_error : std::runtime_error {
  http_error(int code, const std::string& why) : std::runtime_error(why), status(code) {}
  int status;
};

/// The parameters of one API request (the query string, decoded).
using params = std::map<std::string, std::string>;

/// Bounds of the numbers a request may ask for.
inline constexpr std::int64_t max_page = 1000;        ///< runs per page
inline constexpr std::int64_t max_width = 10000;      ///< chart buckets
inline constexpr std::size_t max_timeline = 20000;    ///< partitions drawn

/// The experiments a server or report reads. Thread-safe: HDF5 (Debian's
/// parallel build) is not, so every read holds one lock; results of reads
/// are cached and used again while the files they came from are unchanged.
class experiments {
 public:
  explicit experiments(std::vector<std::string> files);
  ~experiments();
  experiments(const experiments&) = delete;
  experiments& operator=(const experiments&) = delete;

  const std::vector<std::string>& files() const { return files_; }

  json list();                       ///< /api/experiments
  json runs(const params& p);        ///< /api/runs
  json sweeps(const params& p);      ///< /api/sweeps
  json run(const params& p);         ///< /api/run
  json series(const params& p);      ///< /api/series
  json timeline(const params& p);    ///< /api/timeline
  json compare(const params& p);     ///< /api/compare
  /// /api/file: the bytes and file name of a File field.
  std::pair<std::string, std::string> file(const params& p);

  /// The runs of experiment `exp`, newest last (for the report).
  std::vector<std::string> run_ids(std::size_t exp);

 private:
  struct index_cache;
  struct run_cache;
  std::size_t exp_of(const params& p) const;
  std::shared_ptr<const std::vector<tracking::index_entry>> index(std::size_t exp);
  const tracking::index_entry& entry(std::size_t exp, const std::string& id,
                                     const std::vector<tracking::index_entry>& all) const;
  /// A run as read for one request: `points` names the series whose points
  /// it needs (none for listing a run: a run of long series is not read whole).
  std::shared_ptr<const tracking::run_record> record(std::size_t exp, const std::string& id, bool with_bytes,
                                                     const tracking::series_points& points);

  std::vector<std::string> files_;
  std::mutex mutex_;  // every read of the files, and the caches
  std::vector<std::unique_ptr<index_cache>> indexes_;
  std::vector<std::unique_ptr<run_cache>> records_;
};

/// The key the page fetches a view's JSON under, e.g.
/// "/api/series?exp=0&id=RUN-1&path=loss&x=step&width=800": values escaped
/// as JavaScript's encodeURIComponent does, so that a report's embedded data
/// is found under the very URL the page builds.
std::string api_key(const std::string& endpoint, const std::vector<std::pair<std::string, std::string>>& query);

/// Reduces a series for a chart `width` buckets wide to at most 2 * width
/// points: the smallest and the largest of each bucket, in their order, so
/// that spikes survive. Fed one point at a time (a 10M-point series is never
/// held). Without a window the buckets split the points by position; with
/// one (a zoom, [lo, hi] of x), by x. A window of at most 2 * width points is
/// kept whole. A bucket of NaN only keeps one of them (a gap in the line).
class minmax_reducer {
 public:
  minmax_reducer(std::size_t width, std::optional<double> lo, std::optional<double> hi);
  /// The series' length (before the points; positions are bucketed by it).
  void total(std::uint64_t n) { n_ = n; }
  /// Point k of the series.
  void add(std::uint64_t k, double x, double y);
  /// Points in the window, and whether they were reduced.
  std::uint64_t window() const { return window_; }
  bool reduced() const { return reducing_; }
  /// The kept points as [[x, y], ...], in series order (y null for NaN).
  json points() const;

 private:
  struct point {
    std::uint64_t k;
    double x, y;
  };
  struct bucket {
    bool any = false;
    point lo{}, hi{}, nan{};
    bool has_nan = false;
  };
  void to_bucket(const point& p);
  std::size_t width_;
  std::optional<double> lo_, hi_;
  std::uint64_t n_ = 0, window_ = 0;
  bool reducing_ = false;
  std::vector<point> raw_;
  std::vector<bucket> buckets_;
};

/// The page, with Chart.js inline (embedded at build time).
const std::string& page_html();

}  // namespace rankflow::ui
