// rankflow::Run: Neptune-style run tracking into an HDF5 experiment file.
//
//   rankflow::Run run = rt.start_run("train");       // collective
//   run["params/lr"] = 0.5;                          // any rank
//   run["train/loss"].append(loss);                  // any rank, batched
//   run.write_array("weights", block, {n, m}, {row0, 0});  // collective, parallel HDF5
//   run.wait();                                      // durable; rank 0's refusals thrown here
//
// Rank 0 owns the run's metadata. Every rank's calls are encoded into batches
// and sent to a service thread on rank 0, which checks them (types, paths,
// steps) in order per rank, appends what it accepts to the run's journal and
// fsyncs it at wait(). When the run stops the journal becomes /runs/<id> in
// the experiment file. See docs/usage.md (API), docs/format.md (layout) and
// docs/design.md (why a journal).
#pragma once

#include <mpi.h>

#include <concepts>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rankflow/tracking/detail/ledger.hpp>
#include <rankflow/tracking/detail/store.hpp>
#include <rankflow/tracking/types.hpp>

namespace rankflow {

/// Per-run choices; empty ones come from --experiment / --tracking-mode (or
/// RANKFLOW_EXPERIMENT / RANKFLOW_TRACKING_MODE), then the defaults.
struct run_options {
  std::string experiment;             ///< experiment file; default rankflow.h5
  std::optional<tracking_mode> mode;  ///< default async
  std::string with_id;                ///< read-only: the run to open ("" = the latest)
  /// Continue an earlier run instead of starting one: its id, or "last" (or
  /// "") for the latest run of this name that was killed or failed; with no
  /// such run a new one starts. Default: --resume / RANKFLOW_RESUME, and
  /// "last" in a job Slurm requeued (SLURM_RESTART_COUNT > 0).
  std::optional<std::string> resume;
  /// What the run's results depend on besides its params/ fields: path ->
  /// value, assigned as String fields when the run starts (by rank 0). On
  /// --resume every input (these and any params/ field) must keep the value
  /// the resumed run recorded: another value is not stored, and the next
  /// collective call throws usage_error on every rank naming it, since the
  /// results the run recorded would mix with results of other inputs.
  std::map<std::string, std::string> inputs;
  /// On --resume, when the program differs from the run it resumes (a call
  /// with another signature, an input with another value): refuse (the
  /// default) or restart, which runs the affected calls afresh and records
  /// the new inputs. A changed call restarts itself and every later call (a
  /// later call may use its results); a changed input restarts every call,
  /// and must therefore be assigned before the run's first collective call.
  /// Default: --on-change / RANKFLOW_ON_CHANGE, else refuse.
  std::optional<change_policy> on_change;
  /// The sweep this run belongs to (`rankflow sweeps`, `rankflow runs
  /// --sweep`): runs of one Slurm array form one without it. Default:
  /// --sweep / RANKFLOW_SWEEP, else none. Recorded as the run attribute `sweep`.
  std::string sweep;
  /// Record what produced the run under sys/provenance/ (source revision and
  /// diff, executable hash on every rank, versions, environment, hosts).
  /// Default: --provenance / RANKFLOW_PROVENANCE, else on. A resumed run keeps
  /// what its first start recorded.
  std::optional<bool> provenance;
};

namespace tracking {
class run_impl;

/// What a Run needs from the runtime that starts it (filled by Runtime::start_run).
struct run_context {
  MPI_Comm comm = MPI_COMM_NULL;  ///< all ranks of the run; duplicated, not kept
  int rank = 0;
  int size = 1;
  std::vector<std::string> hosts;
  std::string command_line;
  std::size_t segment_bytes = std::size_t{1} << 30;
  std::string experiment = "rankflow.h5";
  tracking_mode mode = tracking_mode::async;
  std::map<std::string, std::string> context;  ///< slurm_job_id, ...
  std::optional<std::string> resume;           ///< see run_options::resume
  bool provenance = true;                      ///< see run_options::provenance
  change_policy on_change = change_policy::refuse;  ///< see run_options::on_change
};

template <class T>
struct dtype_of;
template <>
struct dtype_of<double> {
  static constexpr const char* name = "f8";
};
template <>
struct dtype_of<float> {
  static constexpr const char* name = "f4";
};
template <>
struct dtype_of<std::int64_t> {
  static constexpr const char* name = "i8";
};
template <>
struct dtype_of<std::int32_t> {
  static constexpr const char* name = "i4";
};
template <>
struct dtype_of<std::uint8_t> {
  static constexpr const char* name = "u1";
};
}  // namespace tracking

/// A field of a run, by path: `run["params/lr"]`. Cheap to make; holds the
/// path and a pointer to its run, so it must not outlive the Run.
class field_ref {
 public:
  /// A field below this one: run["train"]["loss"] is run["train/loss"].
  field_ref operator[](std::string_view sub) const;
  const std::string& path() const noexcept { return path_; }

  // ---- atoms: assign (Int, Float, Bool, String, Datetime, StringList, StringSet)
  field_ref& operator=(double v);
  field_ref& operator=(float v) { return *this = static_cast<double>(v); }
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) field_ref& operator=(T v) {
    assign_int(static_cast<std::int64_t>(v));
    return *this;
  }
  field_ref& operator=(bool v);
  field_ref& operator=(const char* v) { return *this = std::string(v); }
  field_ref& operator=(std::string_view v) { return *this = std::string(v); }
  field_ref& operator=(const std::string& v);
  field_ref& operator=(timestamp v);
  field_ref& operator=(const std::vector<std::string>& v);  ///< StringList
  field_ref& operator=(const std::set<std::string>& v);     ///< StringSet
  /// StringSet: adds strings (creates the set on first use).
  void add(const std::string& v) { add(std::vector<std::string>{v}); }
  void add(const std::vector<std::string>& v);

  // ---- series: append a point (FloatSeries, IntSeries, StringSeries)
  void append(double v, point_options o = {});
  void append(float v, point_options o = {}) { append(static_cast<double>(v), o); }
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) void append(T v, point_options o = {}) {
    append_int(static_cast<std::int64_t>(v), o);
  }
  void append(const char* v, point_options o = {}) { append(std::string(v), o); }
  void append(const std::string& v, point_options o = {});

  // ---- artifacts
  /// Stores the bytes of the file at `file_path` (read now, on this rank).
  void upload(const std::string& file_path);
  /// Stores `data` as a File artifact named `filename`.
  void upload_bytes(std::string_view data, const std::string& filename = "");

  // ---- reading back (round trip to rank 0 after this rank's own writes)
  /// The field's value as T: double (Float or Int), std::int64_t/int (Int),
  /// bool, std::string, timestamp (Datetime), std::vector<std::string>
  /// (StringList or StringSet), std::set<std::string> (StringSet).
  template <class T>
  T fetch() const;
  /// A series' points: T = double (FloatSeries or IntSeries), std::int64_t, std::string.
  template <class T = double>
  series_values<T> fetch_values() const;
  /// A File artifact's bytes.
  std::string fetch_bytes() const;
  /// Writes a File artifact to `dest`.
  void download(const std::string& dest) const;
  /// An Array's data as doubles, read from its file on this rank.
  std::vector<double> fetch_array(std::vector<std::uint64_t>* shape = nullptr) const;
  /// The field's type; field_type::none when it does not exist.
  field_type type() const;
  bool exists() const { return type() != field_type::none; }

 private:
  friend class Run;
  field_ref(tracking::run_impl* r, std::string p);
  void assign(tracking::atom_value a);
  void assign_int(std::int64_t v);
  void append_int(std::int64_t v, point_options o);
  tracking::field_record get() const;
  tracking::run_impl* r_;
  std::string path_;
};

class Run {
 public:
  Run() noexcept;
  /// Collective over ctx.comm. Prefer Runtime::start_run.
  Run(const tracking::run_context& ctx, std::string name, const run_options& opts = {});
  Run(Run&&) noexcept;
  Run& operator=(Run&&) noexcept;
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  /// Stops the run if stop() was not called (collective); if this rank is
  /// leaving because of an exception, rank 0 marks the run failed instead.
  ~Run();

  field_ref operator[](std::string_view path);

  const std::string& id() const;
  const std::string& name() const;
  tracking_mode mode() const;
  const std::string& experiment() const;
  bool active() const noexcept;

  /// Returns when everything this rank tracked is accepted by rank 0 and
  /// durable in the run's journal; throws the first refusal (type_error,
  /// tracking_error) rank 0 recorded for this rank since the last wait().
  void wait();
  /// wait(), then refreshes this rank's view of the run's structure (every
  /// field's path and type, whoever wrote it): see structure(), has().
  void sync();
  /// The structure as of the last sync(): path -> type.
  const std::map<std::string, field_type>& structure() const;
  bool has(const std::string& path) const;

  /// Collective: every rank waits, rank 0 records the end (status
  /// "succeeded") and writes the run into the experiment file.
  void stop();
  /// Collective, like stop(), with status "failed" and `reason`.
  void fail(const std::string& reason);

  /// Collective: every rank writes its block of one N-d array with parallel
  /// HDF5 (MPI-IO, collective transfer). `block` holds prod(block_shape)
  /// row-major values placed at `offset` in an array of `global_shape`; a rank
  /// with nothing to write passes an empty block and shape. All ranks pass the
  /// same name and global shape. Writing the same name again replaces it.
  template <class T>
  void write_array(std::string_view name, std::span<const T> block, const std::vector<std::uint64_t>& block_shape,
                   const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset) {
    write_array_raw(name, tracking::dtype_of<T>::name, block.data(), block.size(), block_shape, global_shape, offset);
  }
  /// Row blocks, the common case: the block spans every dimension but the
  /// first, so its shape follows from its size.
  template <class T>
  void write_array(std::string_view name, std::span<const T> block, const std::vector<std::uint64_t>& global_shape,
                   const std::vector<std::uint64_t>& offset) {
    write_array(name, block, row_block_shape(block.size(), global_shape), global_shape, offset);
  }
  template <class T>
  void write_array(std::string_view name, const std::vector<T>& block, const std::vector<std::uint64_t>& global_shape,
                   const std::vector<std::uint64_t>& offset) {
    write_array(name, std::span<const T>(block), global_shape, offset);
  }

  /// The run's partition ledger (what rankflow::Runtime records calls into
  /// and resumes from); null in debug and read-only mode.
  std::shared_ptr<tracking::partition_ledger> ledger() const;
  /// True when this run continues an earlier execution (see run_options::resume).
  bool resumed() const noexcept;

 private:
  static std::vector<std::uint64_t> row_block_shape(std::size_t n, const std::vector<std::uint64_t>& global_shape);
  void write_array_raw(std::string_view name, const char* dtype, const void* data, std::size_t n,
                       const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                       const std::vector<std::uint64_t>& offset);
  void record_provenance(const tracking::run_context& ctx, const run_options& opts);
  std::unique_ptr<tracking::run_impl> impl_;
  int uncaught_at_start_ = 0;
};

// fetch<T>() and fetch_values<T>() exist for these types (defined in run.cpp).
template <>
double field_ref::fetch<double>() const;
template <>
std::int64_t field_ref::fetch<std::int64_t>() const;
template <>
int field_ref::fetch<int>() const;
template <>
bool field_ref::fetch<bool>() const;
template <>
std::string field_ref::fetch<std::string>() const;
template <>
timestamp field_ref::fetch<timestamp>() const;
template <>
std::vector<std::string> field_ref::fetch<std::vector<std::string>>() const;
template <>
std::set<std::string> field_ref::fetch<std::set<std::string>>() const;
template <>
series_values<double> field_ref::fetch_values<double>() const;
template <>
series_values<std::int64_t> field_ref::fetch_values<std::int64_t>() const;
template <>
series_values<std::string> field_ref::fetch_values<std::string>() const;

}  // namespace rankflow
