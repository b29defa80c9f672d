// Experiment files: a small HDF5 file linking every run, plus a sidecar
// directory `<file>.d/` with one HDF5 file per run, the run index, the
// journals of live runs, collectively written arrays and a lock. See
// docs/format.md for the layout and docs/design.md for why.
//
// Everything here runs on one rank (rank 0, or a tool such as `rankflow`);
// the experiment file itself is only ever written by a single process at a
// time, under the sidecar's lock, and replaced atomically.
#pragma once

#include <functional>

#include <string>
#include <vector>

#include <rankflow/tracking/detail/store.hpp>

namespace rankflow::tracking {


/// Layout version written to the root of every experiment file. A reader
/// accepts files of its own major version and refuses newer majors.
/// 2.0: a file per run in the sidecar, linked from the experiment file, and
/// the run index. Format 1 files (every run inside the experiment file; 1.1
/// added the partition ledger, 1.2 calls/signature) are read as they are and
/// upgraded to 2.0 by the first run that stops into them (or `rankflow upgrade`).
inline constexpr int format_major = 2;
inline constexpr int format_minor = 0;
/// The oldest major this version reads.
inline constexpr int format_major_oldest = 1;

/// Array file names (see experiment_paths::array_relative).
inline constexpr std::size_t array_name_kept = 100;    ///< longer last parts are shortened
inline constexpr std::size_t array_name_prefix = 48;   ///< what a shortened part keeps
inline constexpr std::size_t array_path_budget = 200;  ///< longer paths become arrays/<id>/+<hash>.h5
/// write_array refuses array file paths longer than this: OMPIO aborts the
/// job from about 245 characters on (Open MPI 4.1), so this keeps a margin.
inline constexpr std::size_t array_path_limit = 230;

/// The paths that make up an experiment.
struct experiment_paths {
  explicit experiment_paths(std::string file);
  std::string file;  ///< the HDF5 file, e.g. rankflow.h5
  std::string dir;   ///< its sidecar, rankflow.h5.d
  std::string journal(const std::string& id) const;
  /// A run's own HDF5 file (format 2): `<dir>/runs/<id>.h5`, and the same
  /// relative to the experiment file's directory (as its link stores it).
  std::string run_file(const std::string& id) const;
  std::string run_file_relative(const std::string& id) const;
  /// The run index (format 2), `<dir>/index`.
  std::string index() const;
  /// Array file of a run, relative to the experiment file's directory (as
  /// stored in the external link) and absolute: `arrays/<id>/<path>.h5`,
  /// except that a last part over array_name_kept characters is shortened to
  /// a prefix plus a hash, and a path that would be longer than
  /// array_path_budget becomes `arrays/<id>/+<hash>.h5` (Open MPI's OMPIO
  /// aborts on long paths; see experiment.cpp).
  std::string array_relative(const std::string& id, const std::string& path) const;
  std::string array_absolute(const std::string& id, const std::string& path) const;
};

/// Throws format_error when `file` exists but is not an experiment file this
/// version can read (not HDF5, truncated, another program's HDF5 file, newer
/// major format). Returns false when it does not exist.
bool check_file(const std::string& file);

/// How format errors about a file tell the reader to name another one: jobs
/// name their flag (the default: "pass another path with --experiment"), the
/// `rankflow` command its FILE argument. Set it once, before reading files.
void set_other_file_advice(std::string advice);

/// Runs of an experiment: those merged into the file, then live runs and
/// killed runs not yet recovered, read from their journals (status "running",
/// or "killed" with reason "not recovered yet"). Opens nothing for writing.
std::vector<run_info> list_runs(const std::string& file);

/// One run with its fields. Array data stays in its file (see array_info).
/// File artifacts are loaded when `with_bytes`. Throws usage_error naming the
/// runs there are when `id` is not one of them.
run_record load_run(const std::string& file, const std::string& id, bool with_bytes = true);

/// Which series' points load_run reads from a run's file: all of them, none
/// (each series' type, count and last step only: a run of long series is
/// listed without reading them), or only those of `path`. A live or killed
/// run read from its journal has all of them either way.
struct series_points {
  enum class which { all, none, one } w = which::all;
  std::string path;  ///< which::one
  /// false: the series read leave their timestamps out (a chart by step
  /// needs steps and values only: a third less to read).
  bool timestamps = true;
  /// which::one, numeric series: instead of keeping the points, hand them
  /// over in chunks as they are read (a 10M-point series is reduced without
  /// holding it): first `total` with the count, then `chunk` with points
  /// [at, at + n): steps, timestamps (nullptr unless `timestamps`) and values
  /// as doubles. The record keeps the series' count and last step.
  std::function<void(std::uint64_t count)> total;
  std::function<void(std::uint64_t at, const double* steps, const double* times, const double* values, std::size_t n)>
      chunk;
};

/// load_run, reading only the series points `points` asks for.
run_record load_run(const std::string& file, const std::string& id, bool with_bytes, const series_points& points);

/// Reads an array field's data as doubles (for tools and tests).
std::vector<double> read_array(const std::string& file, const array_info& a,
                               std::vector<std::uint64_t>* shape = nullptr);

/// The run `--resume` continues: `requested` ("" or "last": the latest run
/// named `name` that did not succeed; "slurm-job:<id>": the same, recorded
/// by Slurm job <id>) after recovering killed runs. Returns ""
/// when `requested` is not a run id and there is none (a first start). Throws
/// usage_error when a named run is missing, still running, or succeeded.
std::string find_resumable(const std::string& file, const std::string& name, const std::string& requested);

/// Writes `rec` into its own run file (a new file, fsync'd, renamed into
/// place: no lock, the id is the run's own), then, under the sidecar's lock,
/// appends its index entry and links it from the experiment file (a copy of
/// that small file, renamed over it). A kill at any point leaves either the
/// old or the new state, never a damaged one, and never touches another run.
/// File artifacts whose bytes and series whose points are not in memory are
/// read from `journal_path`, streamed. A format 1 experiment file is upgraded
/// first (once; see upgrade).
void merge_run(const experiment_paths& p, const run_record& rec, const std::string& journal_path);

/// Converts a format 1 experiment file to format 2: each run into its own
/// file, the index built, the experiment file replaced by the linking one
/// (under the lock; a kill leaves the format 1 file as it was). Returns the
/// number of runs converted; 0 when the file already has format 2.
std::size_t upgrade(const std::string& file);

/// Format 2: writes the run index afresh from the run files (a damaged or
/// deleted index; `rankflow upgrade` on a format 2 file). Returns the runs indexed.
std::size_t rebuild_index(const std::string& file);

/// Replays every journal in the sidecar whose writer is gone: the run is
/// merged with what its journal holds (status "killed" unless it recorded an
/// end) and the journal removed. Returns the recovered ids.
std::vector<std::string> recover(const std::string& file);

/// Rebuilds a run from a journal (what recover and live readers use). With
/// keep_points false, series hold their type, count and last step only, and
/// merge_run streams their points from the journal.
run_record replay(const std::string& journal_path, bool* torn = nullptr, bool keep_points = true);

}  // namespace rankflow::tracking
