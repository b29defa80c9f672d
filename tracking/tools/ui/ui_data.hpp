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
  std::shared_ptr<const tracking::run_record> record(std::size_t exp, const std::string& id, bool with_bytes);

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

/// Reduces points to at most 2 * width: the smallest and the largest of
/// each of `width` buckets of consecutive points, in their order, so that
/// spikes survive. Points whose y is NaN are kept only where a bucket has
/// nothing else.
std::vector<std::size_t> reduce_minmax(const std::vector<double>& y, std::size_t first, std::size_t last,
                                       std::size_t width);

/// The page, with Chart.js inline (embedded at build time).
const std::string& page_html();

}  // namespace rankflow::ui
