// The content of one run as rank 0 holds it in memory, and the operations
// that change it. The same code applies operations live (on rank 0, from every
// rank), replays them from a journal after a crash, and is filled from an
// experiment file for reading, so all three agree on what a run contains.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <rankflow/core/serialize.hpp>
#include <rankflow/tracking/types.hpp>

namespace rankflow::tracking {

/// Value of an atom field. `d` holds Float and Datetime (Unix seconds), `i`
/// Int and Bool, `s` String, `list` StringSet (sorted, unique) and StringList.
struct atom_value {
  field_type type = field_type::none;
  std::int64_t i = 0;
  double d = 0.0;
  std::string s;
  std::vector<std::string> list;
};

/// Points of a series: parallel columns, values in the column of the type.
struct series_data {
  field_type type = field_type::none;  ///< float_series, int_series or string_series
  std::vector<double> steps;
  std::vector<double> timestamps;
  std::vector<double> f;
  std::vector<std::int64_t> i;
  std::vector<std::string> s;
  std::size_t size() const noexcept { return steps.size(); }
};

/// Uploaded bytes. While a run is live the bytes stay in its journal (at
/// `journal_offset`); read from a file they are loaded into `data`.
struct file_info {
  std::string filename;
  std::uint64_t size = 0;
  std::int64_t journal_offset = -1;
  std::string data;
};

/// A collectively written array: its own HDF5 file beside the experiment file.
struct array_info {
  std::string dtype;  ///< "f8", "f4", "i8", "i4", "u1"
  std::vector<std::uint64_t> shape;
  std::string file;  ///< relative to the experiment file's directory
};

/// What the run index keeps of a series (docs/format.md, "The run index"):
/// its last value, smallest and largest, kept up to date as points arrive, so
/// that a stop need not read the points back. Numbers only; a StringSeries
/// keeps its last value in `last_text`.
struct series_summary {
  double last = 0;
  double min = 0;
  double max = 0;
  std::string last_text;
  void add(double v) noexcept {
    last = v;
    if (v != v) return;  // NaN: kept in the series, not in min and max
    if (!has_number) {
      min = max = v;
      has_number = true;
    } else if (v < min) {
      min = v;
    } else if (v > max) {
      max = v;
    }
  }
  bool has_number = false;  ///< min and max hold a number (not every point was NaN)
};

struct field_record {
  field_type type = field_type::none;
  int rank = 0;              ///< rank whose write created the field
  double updated = 0;        ///< Unix seconds of the last change
  double last_step = -1;     ///< series: step of the last point (-1: none yet)
  std::uint64_t points = 0;  ///< series: number of points
  series_summary summary;    ///< series: last, min, max of its points
  atom_value atom;
  series_data series;
  file_info file;
  array_info array;
};

/// Attributes of /runs/<id>.
struct run_info {
  std::string id;
  std::string name;
  std::string status;  ///< running | succeeded | failed | killed
  std::string reason;  ///< why it failed or was killed
  double start_time = 0;
  double end_time = 0;
  int ranks = 0;
  std::vector<std::string> hosts;
  std::string command_line;
  std::string version;
  std::string mode;
  std::map<std::string, std::string> context;  ///< slurm_job_id, ... when present
};

/// One collective call of a run (parallel_map, mapreduce, foreach), numbered
/// from 1 in the order the program made its calls since start_run. A resumed
/// run matches its calls to the recorded ones by this number.
struct call_info {
  std::int64_t call = 0;
  std::string step;             ///< the call's step name (map_options::step)
  std::int64_t items = 0;       ///< items in the call's range
  std::int64_t chunk = 0;       ///< items per partition
  std::int64_t partitions = 0;  ///< ceil(items / chunk)
  /// The call as rendered by the runtime: kind, range bounds, chunk,
  /// schedule, retries, result type, step. Empty in files of format < 1.2.
  std::string signature;
  bool same_work(const call_info& o) const noexcept {
    return call == o.call && step == o.step && items == o.items && chunk == o.chunk && partitions == o.partitions &&
           (signature.empty() || o.signature.empty() || signature == o.signature);
  }
};

/// One partition's outcome in a run's ledger: where and when it ran and, for
/// a success, its encoded result (what resume hands back instead of running it).
struct ledger_entry {
  std::int64_t call = 0;
  std::int64_t partition = 0;
  std::int64_t first = 0;  ///< items [first, last) of the call's range
  std::int64_t last = 0;
  std::int32_t rank = 0;
  double start = 0;  ///< Unix seconds on the rank that ran it
  double end = 0;
  std::int32_t attempts = 1;
  bool ok = true;
  std::string error;   ///< failures: item and message
  std::string result;  ///< successes: the encoded partition result (may be empty)
};

/// A backup copy's loser (docs/format.md, "Ledger"): not a failure. Another
/// copy of the same partition finished first and its result was kept.
inline constexpr std::string_view lost_copy_prefix = "lost: ";
inline bool lost_copy(const ledger_entry& e) noexcept { return !e.ok && e.error.rfind(lost_copy_prefix, 0) == 0; }

/// Ledger entries of one call, as journaled together.
struct ledger_batch {
  call_info call;
  std::vector<ledger_entry> entries;
};

enum class op_kind : std::uint8_t {
  begin = 1,
  assign = 2,
  append = 3,
  add = 4,
  file = 5,
  array = 6,
  end = 7,
  ledger = 8,
  /// The run starts its calls from ledger.call.call on afresh (a resume with
  /// --on-change restart): the ledger forgets those calls and their entries.
  /// `items` holds encoded assign operations (the new inputs) applied with it.
  ledger_restart = 9,
};

/// One tracking operation, as sent to rank 0 and as stored in a journal.
struct op {
  op_kind kind = op_kind::assign;
  int rank = 0;
  double time = 0;  ///< when the calling rank made it
  std::string path;
  atom_value atom;                 ///< assign
  series_data points;              ///< append: steps < 0 are assigned by rank 0
  std::vector<std::string> items;  ///< add; ledger_restart: encoded assigns
  file_info file;                  ///< file (bytes in file.data)
  array_info array;                ///< array
  run_info info;                   ///< begin; end uses status, reason, end_time
  ledger_batch ledger;             ///< ledger
};

/// Why apply() refused (all or part of) an operation.
struct rejection {
  bool type = false;  ///< a type conflict (type_error) rather than another refusal
  std::string message;
};

/// A run's fields, keyed by path, with Neptune's rules.
class run_record {
 public:
  run_info info;
  std::map<std::string, field_record> fields;
  /// false: series keep only their type, last step and count, not their
  /// points (rank 0 of a live run, whose points are in the journal); the
  /// ledger keeps only its counts.
  bool keep_points = true;

  /// The partition ledger: the calls it covers, and its entries in the order
  /// they were recorded (with keep_points; otherwise they are in the journal).
  std::map<std::int64_t, call_info> calls;
  std::vector<ledger_entry> ledger;
  std::uint64_t ledger_rows = 0;
  std::uint64_t ledger_bytes = 0;  ///< result bytes of all entries
  /// Rows and result bytes per call, so that a ledger_restart can take its
  /// calls' entries out of the counts even when they live in the journal only.
  struct ledger_count {
    std::uint64_t rows = 0;
    std::uint64_t bytes = 0;
  };
  std::map<std::int64_t, ledger_count> ledger_counts;

  /// A resumed run: the last step each series had when it was resumed. A
  /// point with an explicit step at or before it was recorded before the
  /// resume and is dropped without a refusal (the program is replaying).
  std::map<std::string, double, std::less<>> resume_floor;
  std::uint64_t replayed_points = 0;  ///< points dropped that way

  /// Applies `o`, checking types, namespaces and series steps. On success the
  /// operation is changed into what must be journaled (steps resolved,
  /// rejected points removed) and true is returned. Refusals are appended to
  /// `out`; an operation refused as a whole returns false and changes nothing.
  bool apply(op& o, std::vector<rejection>& out);

  /// Checks that `path` may become a field of type `t` (used before the
  /// collective write of an array). Empty when it may.
  std::string check_new(const std::string& path, field_type t, int rank) const;

  const field_record* find(const std::string& path) const;

 private:
  // The steps of apply(), one per kind of record (store.cpp).
  bool apply_ledger(const op& o, std::vector<rejection>& out);
  bool apply_ledger_restart(const op& o, std::vector<rejection>& out);
  bool apply_assign(op& o, field_record* f, std::vector<rejection>& out);
  bool apply_append(op& o, field_record* f, std::vector<rejection>& out);
  std::size_t resolve_steps(op& o, const field_record* f, double& last, std::vector<rejection>& out);
  bool apply_add(const op& o, field_record* f, std::vector<rejection>& out);
  bool apply_artifact(op& o, field_record* f, std::vector<rejection>& out);
  field_record& create(const op& o, field_type t);
  std::string namespace_conflict(const std::string& path) const;
  void add_namespaces(const std::string& path);
  std::map<std::string, int> namespaces_;  ///< prefixes of field paths -> count
};

/// Offset of the first byte of `s` that does not start a well-formed UTF-8
/// sequence (RFC 3629: no overlong forms, surrogates or code points past
/// U+10FFFF), or std::string_view::npos when all of `s` is UTF-8.
std::size_t invalid_utf8_at(std::string_view s) noexcept;
/// Why `s` cannot be a string value, "" when it can. String values are
/// stored as UTF-8 text in HDF5, where a NUL ends a string, so invalid UTF-8
/// and NUL characters are refused (rank 0 refuses such writes as type_error).
std::string string_problem(std::string_view s);

/// Byte encoding of operations (journal records and messages to rank 0),
/// appended to `out`.
void encode(const op& o, std::string& out);
void encode(const op& o, bytes& out);
/// Decodes one operation at `data[pos]`, advancing `pos`. Throws format_error
/// on truncated or malformed input.
op decode(std::string_view data, std::size_t& pos);
/// Same, into `o`, reusing its buffers (rank 0 decodes millions of points).
void decode_into(std::string_view data, std::size_t& pos, op& o);

/// The codec's pieces the run index shares (tracking/src/run_index.cpp).
void encode_atom(const atom_value& a, std::string& out);
atom_value decode_atom(std::string_view data, std::size_t& pos);
void encode_info(const run_info& i, std::string& out);
run_info decode_info(std::string_view data, std::size_t& pos);

}  // namespace rankflow::tracking
