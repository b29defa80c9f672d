// The run index of an experiment (format 2): one summary per run, enough to
// list, filter, sort and group runs without opening any run's file. See
// docs/format.md, "The run index", and docs/design.md, "Experiments at scale".
//
// It lives in `<experiment>.d/index`, an append-only log of CRC-framed
// records, one per stop (a resumed or recovered run appends a newer one; the
// last record of a run wins). Only its first `committed` bytes count: the
// experiment file's root attribute `index_bytes`, replaced together with the
// run's link in one rename, says how many. Bytes past it (a stop killed
// between its append and its commit) are ignored by readers and cut off by
// the next writer, so the index and the run links always agree.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rankflow/tracking/detail/store.hpp>

namespace rankflow::tracking {

/// A series as the index keeps it.
struct index_series {
  std::string path;
  field_type type = field_type::none;
  std::uint64_t count = 0;
  double last_step = -1;
  series_summary summary;
};

/// One run's summary.
struct index_entry {
  run_info info;  ///< id, name, status, reason, times, ranks, hosts, command line, context (slurm_*, sweep)
  std::vector<std::pair<std::string, atom_value>> scalars;  ///< every Int, Float, Bool, String, Datetime, StringSet, StringList field
  std::vector<index_series> series;                          ///< every series
  /// The sweep the run belongs to: run_options::sweep, else its Slurm array
  /// job ("slurm-<id>"), else "" (none).
  std::string sweep() const;
};

/// The index entry of a run record (its series summaries are kept as points arrive).
index_entry summarize(const run_record& rec);

std::string encode_entry(const index_entry& e);
/// Throws format_error on a damaged record.
index_entry decode_entry(std::string_view data);

/// Cuts the log to `committed` bytes (creating it when needed), appends `e`,
/// and fsyncs. Returns the new length, to be committed by the caller.
std::uint64_t append_index(const std::string& path, std::uint64_t committed, const std::vector<index_entry>& e);

/// The committed entries, the last one of each run, in the order runs first
/// appear. A record that fails its CRC inside the committed bytes is a
/// format_error (the file was changed by another program).
std::vector<index_entry> read_index(const std::string& path, std::uint64_t committed);

/// Every run of an experiment as the index sees it, by run number: format 2
/// from the index, format 1 by reading each run; live runs and killed ones
/// not recovered yet from their journals (experiment.cpp).
std::vector<index_entry> experiment_index(const std::string& file);

}  // namespace rankflow::tracking
