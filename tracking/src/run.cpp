// rankflow::Run: starting, resuming and stopping a run (its collective array
// writes are in run_arrays.cpp).
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
  std::map<std::int64_t, std::pair<double, std::int64_t>> recorded_seconds;  // call -> (sum, successes)
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
    if (e.ok && e.end >= e.start) {
      auto& [sum, n] = o.recorded_seconds[e.call];
      sum += e.end - e.start;
      ++n;
    }
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
    r.ledger->recorded_seconds_ = std::move(o.recorded_seconds);
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

}  // namespace rankflow
