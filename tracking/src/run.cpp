// rankflow::Run: starting, resuming, stopping a run, and collective array writes.
#include <rankflow/tracking/run.hpp>

#include "provenance.hpp"
#include "run_impl.hpp"


// ----------------------------------------------------------------- public --

namespace rankflow {

using tracking::field_record;
using tracking::op;
using tracking::op_kind;

Run::Run() noexcept = default;
Run::Run(Run&&) noexcept = default;
Run& Run::operator=(Run&& o) noexcept {
  if (this != &o) {
    this->~Run();
    new (this) Run(std::move(o));
  }
  return *this;
}

namespace {

// Rank 0's state while it opens a run (Run's constructor, in steps).
struct opening {
  tracking::run_record rec;
  tracking::journal_writer journal;
  bool resumed = false;
  tracking::run_record old;  // the run being resumed
  std::map<std::int64_t, std::map<std::int64_t, std::string>> recorded;
  std::map<std::int64_t, tracking::call_info> recorded_calls;
  std::map<std::string, std::string> inputs_of_old;  // params/ and declared inputs
};

// A file a job left unmerged is recovered first; say what it restored.
void recover_unmerged(const tracking::run_impl& r) {
  tracking::check_file(r.paths.file);  // a bad file is refused before anything is created
  const auto recovered = tracking::recover(r.paths.file);
  if (recovered.empty()) return;
  // recover() keeps the status a run recorded (one that ended but was not
  // merged stays succeeded or failed).
  std::map<std::string, std::string> status;
  for (const auto& i : tracking::list_runs(r.paths.file)) status[i.id] = i.status;
  for (const auto& id : recovered) {
    log::warn() << "recovered run " << id << " of '" << r.paths.file << "' (its job ended before merging it; status '"
                << (status.count(id) ? status[id] : "unknown") << "')";
  }
}

// --resume finds the run to continue, or a new run is created.
void create_or_reopen(const tracking::run_impl& r, const tracking::run_context& ctx, const run_options& opts,
                      opening& o) {
  const auto& resume = opts.resume ? opts.resume : ctx.resume;
  std::string resume_id;
  if (resume && *resume != "no") resume_id = tracking::find_resumable(r.paths.file, r.name, *resume);
  if (!resume_id.empty()) {
    o.old = tracking::load_run(r.paths.file, resume_id, true);
    tracking::reopen_run(r.paths, resume_id, o.journal);
    o.rec.info.id = resume_id;
    o.resumed = true;
    return;
  }
  if (resume && *resume != "no") {
    log::info() << "--resume: '" << r.paths.file << "' holds no killed or failed run named '" << r.name
                << "'; starting a new run";
  }
  o.rec.info.id = tracking::create_run(r.paths, o.journal);
}

// The run's begin record: who, where, when (a resumed run keeps its start
// and counts its resumes).
op begin_record(const tracking::run_impl& r, const tracking::run_context& ctx, const run_options& opts,
                const opening& o) {
  op begin;
  begin.kind = op_kind::begin;
  begin.time = now_unix_seconds();
  auto& i = begin.info;
  i.id = o.rec.info.id;
  i.name = r.name;
  i.status = "running";
  i.start_time = begin.time;
  i.ranks = ctx.size;
  i.hosts = ctx.hosts;
  i.command_line = ctx.command_line;
  i.version = RANKFLOW_VERSION_STRING;
  i.mode = to_string(r.mode);
  i.context = ctx.context;
  if (!opts.sweep.empty()) i.context["sweep"] = opts.sweep;  // over --sweep
  if (o.resumed) {
    i.start_time = o.old.info.start_time;
    int n = 0;
    if (auto c = o.old.info.context.find("resumes"); c != o.old.info.context.end()) n = std::atoi(c->second.c_str());
    i.context["resumes"] = std::to_string(n + 1);
  }
  return begin;
}

// Everything the resumed run held goes into its new journal, so that it is
// whole again if it is killed once more; its ledger and inputs are kept for
// the calls to come.
void carry_resumed(const tracking::run_impl& r, const run_options& opts, opening& o) {
  const std::string old_status = o.old.info.status, old_reason = o.old.info.reason;
  std::map<std::string, double, std::less<>> floors;
  for (const auto& [path, f] : o.old.fields) {
    if (is_series(f.type)) floors[path] = f.last_step;
  }
  for (const auto& e : o.old.ledger) {
    if (e.ok) o.recorded[e.call][e.partition] = e.result;
  }
  o.recorded_calls = o.old.calls;
  for (const auto& [path, f] : o.old.fields) {
    const bool atom = f.type != field_type::none && !is_series(f.type) && f.type != field_type::file &&
                      f.type != field_type::array;
    if (atom && (path.rfind("params/", 0) == 0 || opts.inputs.count(path))) {
      auto a = f.atom;
      a.type = f.type;
      o.inputs_of_old[path] = tracking::input_key(a);
    }
  }
  std::size_t reused = 0;
  for (const auto& [c, parts] : o.recorded) reused += parts.size();
  o.rec.keep_points = false;
  std::vector<tracking::rejection> none;
  std::string enc;
  for (auto& op : tracking::carried_ops(std::move(o.old))) {
    if (!o.rec.apply(op, none)) continue;
    enc.clear();
    tracking::encode(op, enc);
    const auto at = o.journal.append(enc);
    if (op.kind == op_kind::file) {
      o.rec.fields[op.path].file.journal_offset = static_cast<std::int64_t>(at + enc.size() - op.file.data.size());
    }
  }
  o.rec.resume_floor = floors;
  tracking::commit_reopened(r.paths, o.rec.info.id, o.journal);
  log::info() << "resuming run " << o.rec.info.id << " ('" << r.name << "', " << old_status
              << (old_reason.empty() ? "" : ": " + old_reason) << "): " << reused << " finished partitions in "
              << o.recorded_calls.size() << " calls recorded";
}

// Rank 0 opens the run (read-only, debug, new or resumed) and returns what
// every rank learns: "id\nname\nresumed\ninputs".
std::string open_on_rank0(const tracking::run_impl& r, const tracking::run_context& ctx, const run_options& opts,
                          opening& o) {
  for (const std::string* sweep : {&opts.sweep, ctx.context.count("sweep") ? &ctx.context.at("sweep") : nullptr}) {
    if (!sweep) continue;
    if (const auto why = tracking::string_problem(*sweep); !why.empty() || sweep->size() > 256) {
      throw usage_error("the sweep name '" + *sweep + "' " + (why.empty() ? "is longer than 256 characters" : why) +
                        ": name the sweep with up to 256 characters of UTF-8 text");
    }
  }
  int provided = 0;
  MPI_Query_thread(&provided);
  if (provided < MPI_THREAD_MULTIPLE) {
    throw usage_error("run tracking needs MPI initialised with MPI_THREAD_MULTIPLE (rank 0 answers every rank " +
                      std::string("from a service thread); rankflow::Runtime does this, a program that calls ") +
                      "MPI_Init itself must ask for it");
  }
  validate_path(r.name);
  if (r.mode == tracking_mode::read_only) {
    std::string id = opts.with_id;
    if (id.empty()) {
      auto runs = tracking::list_runs(r.paths.file);
      if (runs.empty()) throw usage_error("read-only: '" + r.paths.file + "' holds no runs");
      id = runs.back().id;
    }
    o.rec = tracking::load_run(r.paths.file, id);
  } else if (r.mode == tracking_mode::debug) {
    o.rec.info.id = "DEBUG";
  } else {
    recover_unmerged(r);
    create_or_reopen(r, ctx, opts, o);
  }
  if (r.mode != tracking_mode::read_only) {
    op begin = begin_record(r, ctx, opts, o);
    std::vector<tracking::rejection> none;
    o.rec.apply(begin, none);
    if (r.mode != tracking_mode::debug) {
      std::string enc;
      tracking::encode(begin, enc);
      o.journal.append(enc);
      if (o.resumed) carry_resumed(r, opts, o);
      o.journal.flush();  // survives kill -9 at once; fsync'd by the first wait()
    }
  }
  return o.rec.info.id + '\n' + o.rec.info.name + '\n' + (o.resumed ? '1' : '0') + '\n' +
         tracking::encode_inputs(o.inputs_of_old);
}

}  // namespace

Run::Run(const tracking::run_context& ctx, std::string name, const run_options& opts)
    : impl_(std::make_unique<tracking::run_impl>()), uncaught_at_start_(std::uncaught_exceptions()) {
  auto& r = *impl_;
  r.rank = ctx.rank;
  r.size = ctx.size;
  r.mode = opts.mode.value_or(ctx.mode);
  r.name = std::move(name);
  r.paths = tracking::experiment_paths(opts.experiment.empty() ? ctx.experiment : opts.experiment);
  r.seg = ctx.segment_bytes;
  detail::check_mpi(MPI_Comm_dup(ctx.comm, &r.coll), "MPI_Comm_dup");
  detail::check_mpi(MPI_Comm_dup(ctx.comm, &r.ops), "MPI_Comm_dup");

  // 1. Rank 0 opens the run; every rank learns the outcome (or its error).
  tracking::err_kind k = tracking::err_kind::none;
  std::string msg;
  opening o;
  if (r.rank == 0) {
    try {
      msg = open_on_rank0(r, ctx, opts, o);
    } catch (...) {
      std::tie(k, msg) = tracking::classify(std::current_exception());
    }
  }
  std::string shared;
  try {
    shared = tracking::share_outcome(r.coll, r.rank, k, msg);
  } catch (...) {
    r.stopped = true;
    r.free_comms();
    throw;
  }
  const auto nl = shared.find('\n');
  const auto nl2 = shared.find('\n', nl + 1);
  r.id = shared.substr(0, nl);
  if (r.mode == tracking_mode::read_only) r.name = shared.substr(nl + 1, nl2 - nl - 1);
  r.resumed = nl2 != std::string::npos && shared.compare(nl2 + 1, 1, "1") == 0;
  if (r.resumed && shared.size() > nl2 + 3) r.resumed_inputs = tracking::decode_inputs(std::string_view(shared).substr(nl2 + 3));
  for (const auto& [path, value] : opts.inputs) r.declared_inputs.insert(path);
  r.on_change = opts.on_change ? *opts.on_change : ctx.on_change;

  // 2. Every rank's ledger (recorded results stay on rank 0), rank 0's service.
  if (r.mode == tracking_mode::async || r.mode == tracking_mode::sync) {
    r.ledger = std::make_shared<tracking::partition_ledger>();
    r.ledger->run_ = &r;
    r.ledger->id_ = r.id;
    r.ledger->resuming_ = r.resumed;
    r.ledger->on_change_ = r.on_change;
    r.ledger->recorded_ = std::move(o.recorded);
    r.ledger->recorded_calls_ = std::move(o.recorded_calls);
  }
  if (r.rank == 0) {
    const bool journaling = r.mode == tracking_mode::async || r.mode == tracking_mode::sync;
    r.svc = std::make_unique<tracking::service>(r.ops, r.size, r.seg, std::move(o.rec), std::move(o.journal), journaling);
    r.svc_thread = std::thread([svc = r.svc.get()] { svc->loop(); });
  }
  r.new_batch();
  if (r.rank == 0) {
    if (r.mode != tracking_mode::read_only) {
      log::info() << "run " << r.id << " ('" << r.name << "') " << (r.resumed ? "resumed, " : "") << "tracking to "
                  << r.paths.file << " (" << to_string(r.mode) << ")";
    }
    // 3. Declared inputs are fields like any other (checked on resume by assign).
    if (r.writable()) {
      for (const auto& [path, value] : opts.inputs) (*this)[path] = value;
    }
  }
  record_provenance(ctx, opts);
}

// 4. What produced the run (a fresh run only: a resumed one keeps what its
// first start recorded). Collective, so rank 0 decides for every rank.
void Run::record_provenance(const tracking::run_context& ctx, const run_options& opts) {
  auto& r = *impl_;
  int wanted = r.rank == 0 && opts.provenance.value_or(ctx.provenance) && !r.resumed && r.writable() &&
               r.mode != tracking_mode::debug;
  detail::check_mpi(MPI_Bcast(&wanted, 1, MPI_INT, 0, r.coll), "MPI_Bcast");
  if (!wanted) return;
  const auto p = tracking::collect_provenance(r.coll, r.rank, r.size, ctx.hosts);
  if (r.rank != 0) return;
  for (const auto& [path, value] : p.strings) (*this)[path] = value;
  for (const auto& [path, value] : p.lists) (*this)[path] = value;
  if (!p.diff.empty()) (*this)["sys/provenance/source/diff"].upload_bytes(p.diff, "diff.patch");
  if (!p.warning.empty()) log::warn() << "run " << r.id << ": " << p.warning;
}

Run::~Run() {
  if (!impl_) return;
  auto& r = *impl_;
  if (!r.stopped) {
    if (std::uncaught_exceptions() > uncaught_at_start_) {
      try {
        r.abandon("an exception ended the program on rank " + std::to_string(r.rank));
      } catch (const std::exception& e) {
        log::error() << "recording run " << r.id << " as failed: " << e.what();
      }
    } else {
      try {
        r.stop("succeeded", "");
      } catch (const std::exception& e) {
        log::error() << "stopping run " << r.id << ": " << e.what();
      }
    }
  }
  if (r.svc_thread.joinable()) {
    r.svc->abort();
    r.svc_thread.join();
  }
  if (std::uncaught_exceptions() <= uncaught_at_start_) r.free_comms();
}

field_ref Run::operator[](std::string_view path) {
  if (!impl_) throw usage_error("this Run is empty (moved from, or default-constructed)");
  validate_path(path);
  return field_ref(impl_.get(), std::string(path));
}

const std::string& Run::id() const { return impl_->id; }
const std::string& Run::name() const { return impl_->name; }
tracking_mode Run::mode() const { return impl_->mode; }
const std::string& Run::experiment() const { return impl_->paths.file; }
bool Run::active() const noexcept { return impl_ && !impl_->stopped; }
std::shared_ptr<tracking::partition_ledger> Run::ledger() const { return impl_ ? impl_->ledger : nullptr; }
bool Run::resumed() const noexcept { return impl_ && impl_->resumed; }

void Run::wait() {
  if (impl_ && !impl_->stopped) impl_->wait();
}
void Run::sync() {
  if (impl_ && !impl_->stopped) impl_->sync();
}
const std::map<std::string, field_type>& Run::structure() const { return impl_->view; }
bool Run::has(const std::string& path) const { return impl_->view.count(path) != 0; }
void Run::stop() {
  if (impl_) impl_->stop("succeeded", "");
}
void Run::fail(const std::string& reason) {
  if (impl_) impl_->stop("failed", reason);
}

// Never throws: write_array must not fail on one rank before the ranks agree
// (see write_array_raw). A block that is not whole rows gets no shape, and
// write_array_raw reports it on every rank.
std::vector<std::uint64_t> Run::row_block_shape(std::size_t n, const std::vector<std::uint64_t>& global_shape) {
  if (global_shape.empty()) return {};
  std::uint64_t row = 1;
  for (std::size_t d = 1; d < global_shape.size(); ++d) {
    if (__builtin_mul_overflow(row, global_shape[d], &row)) return {};
  }
  if (row == 0 || n % row != 0) return {};
  std::vector<std::uint64_t> shape = global_shape;
  shape[0] = n / row;
  return shape;
}

namespace {
hid_t h5_type(const std::string& dtype, bool memory) {
  if (dtype == "f8") return memory ? H5T_NATIVE_DOUBLE : H5T_IEEE_F64LE;
  if (dtype == "f4") return memory ? H5T_NATIVE_FLOAT : H5T_IEEE_F32LE;
  if (dtype == "i8") return memory ? H5T_NATIVE_INT64 : H5T_STD_I64LE;
  if (dtype == "i4") return memory ? H5T_NATIVE_INT32 : H5T_STD_I32LE;
  return memory ? H5T_NATIVE_UINT8 : H5T_STD_U8LE;
}
}  // namespace

namespace {
std::string shape_text(const std::vector<std::uint64_t>& v) {
  std::string s = "[";
  for (std::size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

/// Why this rank's block cannot be written, or "" when it can. Checked
/// arithmetic throughout: an offset + block that wraps past 2^64 would pass
/// a plain comparison and send HDF5 out of bounds.
std::string block_problem(std::size_t n, const std::vector<std::uint64_t>& block_shape,
                          const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset) {
  if (global_shape.empty()) return "the global shape must have at least one dimension";
  if (global_shape.size() > 32)
    return "the global shape has " + std::to_string(global_shape.size()) + " dimensions; HDF5 allows 32";
  std::uint64_t total = 1, row = 1;
  for (std::size_t d = 0; d < global_shape.size(); ++d) {
    if (__builtin_mul_overflow(total, global_shape[d], &total) ||
        (d > 0 && __builtin_mul_overflow(row, global_shape[d], &row))) {
      return "the global shape " + shape_text(global_shape) + " holds more than 2^64 values";
    }
  }
  if (block_shape.empty()) {  // the row-block form could not derive a shape, or none was given
    if (n == 0) return "";
    return "a block of " + std::to_string(n) + " values is not a whole number of rows of " + std::to_string(row) +
           " values of the global shape " + shape_text(global_shape) + "; pass the block's shape explicitly";
  }
  if (block_shape.size() != global_shape.size()) {
    return "the block shape " + shape_text(block_shape) + " has " + std::to_string(block_shape.size()) +
           " dimensions but the global shape " + shape_text(global_shape) + " has " +
           std::to_string(global_shape.size());
  }
  std::uint64_t count = 1;
  for (auto b : block_shape) {
    if (__builtin_mul_overflow(count, b, &count)) {
      return "the block shape " + shape_text(block_shape) + " holds more than 2^64 values";
    }
  }
  if (count != n) {
    return "the block holds " + std::to_string(n) + " values but its shape " + shape_text(block_shape) + " holds " +
           std::to_string(count);
  }
  if (count == 0) return "";  // an empty block: its offset is not used
  if (offset.size() != global_shape.size()) {
    return "the offset " + shape_text(offset) + " has " + std::to_string(offset.size()) +
           " dimensions but the global shape " + shape_text(global_shape) + " has " +
           std::to_string(global_shape.size());
  }
  for (std::size_t d = 0; d < global_shape.size(); ++d) {
    std::uint64_t end = 0;
    if (__builtin_add_overflow(offset[d], block_shape[d], &end)) {
      return "offset " + std::to_string(offset[d]) + " + block " + std::to_string(block_shape[d]) + " in dimension " +
             std::to_string(d) + " is past 2^64";
    }
    if (end > global_shape[d]) {
      return "the block [" + std::to_string(offset[d]) + ", " + std::to_string(end) + ") exceeds dimension " +
             std::to_string(d) + " of size " + std::to_string(global_shape[d]) + " (offset " + shape_text(offset) +
             ", block " + shape_text(block_shape) + ", global shape " + shape_text(global_shape) + ")";
    }
  }
  return "";
}

/// Two ranks whose blocks share an element ("" when none do): the elements'
/// values would depend on MPI-IO's order. `all` holds every rank's offset
/// then block shape, `dims` each; empty blocks have a zero extent.
std::string overlapping_blocks(const std::vector<std::uint64_t>& all, std::size_t dims, int size) {
  const auto at = [&](int r, std::size_t k) { return all[static_cast<std::size_t>(r) * 2 * dims + k]; };
  std::vector<int> order;
  for (int r = 0; r < size; ++r) {
    bool empty = false;
    for (std::size_t d = 0; d < dims; ++d) empty = empty || at(r, dims + d) == 0;
    if (!empty) order.push_back(r);
  }
  // Sorted by the start in dimension 0, each block is compared with those
  // starting before its end there: row blocks cost O(P log P), not O(P^2).
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return at(a, 0) < at(b, 0) || (at(a, 0) == at(b, 0) && a < b); });
  for (std::size_t i = 0; i < order.size(); ++i) {
    const int a = order[i];
    for (std::size_t j = i + 1; j < order.size() && at(order[j], 0) < at(a, 0) + at(a, dims); ++j) {
      const int b = order[j];
      bool shared = true;
      for (std::size_t d = 0; d < dims && shared; ++d) {
        shared = at(a, d) < at(b, d) + at(b, dims + d) && at(b, d) < at(a, d) + at(a, dims + d);
      }
      if (!shared) continue;
      const auto text = [&](int r) {
        std::vector<std::uint64_t> o, b2;
        for (std::size_t d = 0; d < dims; ++d) {
          o.push_back(at(r, d));
          b2.push_back(at(r, dims + d));
        }
        return "rank " + std::to_string(r) + " writes block " + shape_text(b2) + " at " + shape_text(o);
      };
      return "the blocks of ranks " + std::to_string(std::min(a, b)) + " and " + std::to_string(std::max(a, b)) +
             " overlap (" + text(std::min(a, b)) + ", " + text(std::max(a, b)) +
             "); every element must be written by one rank only";
    }
  }
  return "";
}
}  // namespace

namespace {

// write_array's first step: everything one rank can check alone, agreed on
// by all ranks before any collective HDF5 call.
void agree_on_array(tracking::run_impl& r, const std::string& path, const char* dtype, std::size_t n,
                    const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                    const std::vector<std::uint64_t>& offset) {
  // Everything one rank could find wrong on its own is checked first and the
  // verdicts are agreed on (one allreduce) before any collective HDF5 call:
  // a rank throwing alone would leave the others waiting in H5Fcreate or
  // H5Dwrite forever. Every rank then throws the same usage_error naming the
  // lowest bad rank, nothing is written, and the run goes on.
  std::string why;
  try {
    validate_path(path);
    why = block_problem(n, block_shape, global_shape, offset);
    const auto file = r.paths.array_absolute(r.id, path);
    if (why.empty() && r.mode != tracking_mode::debug && file.size() > tracking::array_path_limit) {
      why = "its file '" + file + "' would have a path of " + std::to_string(file.size()) + " characters; Open " +
            "MPI's OMPIO aborts the job on paths longer than about 244: keep the experiment file in a directory " +
            "with a shorter path";
    }
  } catch (const usage_error& e) {
    why = e.what();
  }
  // Every rank must also describe the same array: a digest of name, type
  // and global shape travels in the same allreduce (its minimum and, as the
  // minimum of its complement, its maximum).
  std::string desc = path + '|' + dtype;
  for (auto d : global_shape) desc += '|' + std::to_string(d);
  const auto digest = static_cast<std::uint64_t>(tracking::crc32c(desc.data(), desc.size()));
  std::uint64_t agree[3] = {why.empty() ? static_cast<std::uint64_t>(r.size) : static_cast<std::uint64_t>(r.rank),
                            digest, ~digest};
  detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, agree, 3, MPI_UINT64_T, MPI_MIN, r.coll), "MPI_Allreduce");
  if (agree[0] < static_cast<std::uint64_t>(r.size)) {
    const int bad = static_cast<int>(agree[0]);
    bytes text;
    if (r.rank == bad) {
      const auto m = "write_array('" + path + "') refused on every rank because of rank " + std::to_string(bad) + ": " +
                     why + " (nothing was written; the run goes on)";
      text.assign(m.begin(), m.end());
    }
    detail::bcast_frame(r.coll, bad, text, r.seg);
    throw usage_error(std::string(text.begin(), text.end()));
  }
  if (agree[1] != ~agree[2]) {
    throw usage_error("write_array('" + path + "'): ranks passed different names, element types or global shapes; " +
                      "every rank must describe the same array");
  }
}

// Second step: each block is within the shape; no two may share an element.
void refuse_overlaps(tracking::run_impl& r, const std::string& path, std::size_t n, const std::vector<std::uint64_t>& block_shape,
                     const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset) {
  // Each block is within the shape; now no two may share an element. The
  // rank count of dimensions is agreed (same global shape everywhere).
  const std::size_t dims = global_shape.size();
  std::vector<std::uint64_t> mine(2 * dims, 0), all(2 * dims * static_cast<std::size_t>(r.size));
  if (n > 0) {
    std::copy(offset.begin(), offset.end(), mine.begin());
    std::copy(block_shape.begin(), block_shape.end(), mine.begin() + static_cast<std::ptrdiff_t>(dims));
  }
  detail::check_mpi(MPI_Allgather(mine.data(), static_cast<int>(2 * dims), MPI_UINT64_T, all.data(),
                                  static_cast<int>(2 * dims), MPI_UINT64_T, r.coll),
                    "MPI_Allgather");
  const auto overlap = overlapping_blocks(all, dims, r.size);
  if (!overlap.empty()) {
    throw usage_error("write_array('" + path + "') refused on every rank: " + overlap +
                      " (nothing was written; the run goes on)");
  }
}

// Third step: rank 0 checks the path against the run and makes the array's
// directory; every rank learns the outcome. Returns the array file's path.
std::string prepare_array(tracking::run_impl& r, const std::string& path) {
  // Rank 0 checks the path against the run (an Array may not replace a Float)
  // and prepares the directory; everyone learns the outcome.
  tracking::err_kind k = tracking::err_kind::none;
  std::string msg;
  const auto abs = r.paths.array_absolute(r.id, path);
  if (r.rank == 0) {
    try {
      auto refused = r.request(tracking::msg_check, path);  // after this rank's own earlier writes
      if (!refused.empty()) throw type_error(refused);
      if (r.mode != tracking_mode::debug) {
        const auto dir = abs.substr(0, abs.rfind('/'));
        for (std::size_t p = dir.find('/', 1);; p = dir.find('/', p + 1)) {
          const auto sub = p == std::string::npos ? dir : dir.substr(0, p);
          if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) {
            throw storage_error(detail::sys_error("cannot create directory", sub));
          }
          if (p == std::string::npos) break;
        }
      }
    } catch (const type_error& e) {
      k = tracking::err_kind::tracking;
      msg = e.what();
    } catch (...) {
      std::tie(k, msg) = tracking::classify(std::current_exception());
    }
  }
  try {
    tracking::share_outcome(r.coll, r.rank, k, msg);
  } catch (const tracking_error& e) {
    throw type_error(e.what());
  }
  return abs;
}

// Last step: the collective write, then rank 0 makes it durable and records
// it before any rank returns.
void write_and_record(tracking::run_impl& r, const std::string& path, const std::string& abs, const char* dtype, const void* data,
                      const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                      const std::vector<std::uint64_t>& offset) {
  {
    auto file = h5::create_parallel(abs, r.coll);
    auto dset = h5::write_block(file.id(), "data", h5_type(dtype, false), h5_type(dtype, true), data, block_shape,
                                global_shape, offset);
    h5::write_attr(dset.id(), "rankflow_type", "Array");
    h5::write_attr(dset.id(), "dtype", dtype);
    h5::write_attr(dset.id(), "updated", now_unix_seconds());
  }
  if (r.rank == 0) {
    // Durable before it is recorded: the journal never points at a partial file.
    const int fd = ::open(abs.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    op o;
    o.kind = op_kind::array;
    o.rank = 0;
    o.time = now_unix_seconds();
    o.path = path;
    o.array.dtype = dtype;
    o.array.shape = global_shape;
    o.array.file = r.paths.array_relative(r.id, path);
    r.enqueue(o);
    // Applied by the service before any rank leaves the barrier below: a
    // rank that fetches the array next must find it. A request is answered
    // after this rank's earlier writes (once in ~40 runs, tracking_test at
    // -n 3 fetched before rank 0's batch had even been sent).
    (void)r.request(tracking::msg_check, path);
  }
  detail::check_mpi(MPI_Barrier(r.coll), "MPI_Barrier");
}

}  // namespace

void Run::write_array_raw(std::string_view name, const char* dtype, const void* data, std::size_t n,
                          const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                          const std::vector<std::uint64_t>& offset) {
  if (!impl_) throw usage_error("this Run is empty (moved from, or default-constructed)");
  auto& r = *impl_;
  const std::string path(name);
  // Stopped and read-only are the same on every rank (stop() is collective,
  // the mode is rank 0's): refused at once, with no collective to wait in.
  r.require_writable(path);
  agree_on_array(r, path, dtype, n, block_shape, global_shape, offset);
  refuse_overlaps(r, path, n, block_shape, global_shape, offset);
  const std::string abs = prepare_array(r, path);
  if (r.mode == tracking_mode::debug) return;
  write_and_record(r, path, abs, dtype, data, block_shape, global_shape, offset);
}

}  // namespace rankflow
