#include <rankflow/core/clock.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/runtime/runtime.hpp>
#include <rankflow/runtime/with_slurm.hpp>

#include "deadline.hpp"
#include "watchdog.hpp"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <iostream>
#include <tuple>

namespace rankflow {

namespace {

// An exception nobody caught: say which rank and why, then take the whole job
// down. Without this, std::terminate aborts one process and mpirun may leave
// the others blocked in a collective for a long time.
[[noreturn]] void abort_job_on_terminate() {
  std::string why = "std::terminate called";
  if (std::current_exception()) why = "uncaught exception: " + detail::describe_current_exception();
  log::error() << why << "; aborting all ranks";
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  // A task_error is thrown on every rank at once. Let rank 0 abort first so
  // mpirun reports one MPI_Abort instead of N racing ones (which garble its
  // help output); the others follow within two seconds if it did not.
  int rank = 0;
  if (inited && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  bool is_task_error = false;
  try {
    if (std::current_exception()) std::rethrow_exception(std::current_exception());
  } catch (const task_error&) {
    is_task_error = true;
  } catch (...) {
  }
  if (is_task_error && rank != 0) {
    timespec ts{2, 0};
    nanosleep(&ts, nullptr);
  }
  if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

}  // namespace

Runtime::Runtime(int& argc, char**& argv, runtime_options opts) : uncaught_at_start_(std::uncaught_exceptions()) {
  for (int i = 0; i < argc; ++i) st_.command_line += (i ? " " : "") + std::string(argv[i]);
  // --with slurm submits a batch job before MPI starts (a login node may
  // have no MPI runtime to start).
  if (!detail::mpi_environment::initialized()) maybe_submit(argc, argv);
  env_ = std::make_unique<detail::mpi_environment>(argc, argv);  // core's (environment.hpp)
  st_.comm = env_->comm;
  st_.rank = env_->rank;
  st_.size = env_->size;
  st_.thread_level = env_->thread_level;
  st_.host = env_->host;
  st_.hosts = env_->hosts;

  // Every rank parses the same argv the same way, so every rank reaches the
  // same decision below without talking; only rank 0 prints.
  std::string bad;
  try {
    st_.cfg = parse_config(argc, argv);
  } catch (const usage_error& e) {
    bad = e.what();
  }
  log::set_identity(st_.cfg.run_name.empty() ? "rankflow" : st_.cfg.run_name, st_.rank);
  log::set_level(st_.cfg.level);

  if (!bad.empty() || (st_.cfg.help && !opts.program_handles_help)) {
    if (st_.rank == 0) {
      if (!bad.empty()) {
        std::fprintf(stderr, "error: %s\nRun with --help to list rankflow's options.\n", bad.c_str());
      } else {
        std::fputs(help_text().c_str(), stdout);
      }
    }
    std::fflush(nullptr);
    env_->release();
    std::exit(bad.empty() ? 0 : 2);
  }
  std::set_terminate(abort_job_on_terminate);
  if (opts.handle_signals) detail::install_signal_handlers();
  if (st_.rank == 0) {
    // Only rank 0 hands out work, so only it needs the job's end: the ranks
    // learn of it as of a signal, inside the protocol (no clock to agree on).
    const auto end = detail::find_job_end(st_.cfg, detail::unix_now());
    if (end.end > 0) {
      detail::set_deadline(end.end, end.margin);
      log::info() << "the job ends at " << format_time(end.end) << " (" << end.source
                  << "): no partition that could not finish is started after " << format_time(end.end - end.margin)
                  << " (--deadline-margin " << end.margin << " s)";
    }
  }
  // Its thread makes MPI calls: only when MPI allows threads (a program that
  // initialised MPI itself may not have asked for that).
  if (st_.size > 1 && st_.thread_level == MPI_THREAD_MULTIPLE) {
    watchdog_ = std::make_unique<detail::watchdog>(st_.comm, st_.rank, st_.size, st_.hosts, st_.cfg.peer_timeout_s);
  }
}

// --with slurm: this process only writes and submits the batch job (before
// MPI starts: a login node may have no MPI runtime to start), then exits.
void Runtime::maybe_submit(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc), rest;
  slurm_submission sub;
  try {
    sub = parse_submission(args, &rest);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    std::exit(2);
  }
  if (!sub.requested) return;
  for (const auto& a : rest) {
    if (a == "--help" || a == "-h") return;  // the help, not a job
  }
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(v)) {
      if (!std::getenv("OMPI_COMM_WORLD_RANK") || std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")) == 0) {
        std::fprintf(stderr,
                     "error: --with slurm submits the program as a batch job: start it directly (./%s --with slurm "
                     "--ntasks N ...), not under mpirun or srun\n",
                     argc > 0 ? argv[0] : "program");
      }
      std::exit(2);
    }
  }
  std::exit(submit_with_slurm(sub, rest, st_.command_line));
}

Runtime::~Runtime() {
  if (std::uncaught_exceptions() > uncaught_at_start_) {
    detail::mpi_environment::abort_job("leaving rankflow::Runtime because of an exception on this rank; aborting all " +
                                           std::to_string(st_.size) + " ranks so none waits forever",
                                       1);
  }
  // A rank that leaves while others are still in (or about to start) a
  // collective call would leave them waiting forever: the end of the
  // program is agreed like a call, so they get a usage_error naming it.
  if (st_.comm != MPI_COMM_NULL && st_.size > 1) {
    detail::call_signature end;
    end.call = "the end of the program (rankflow::Runtime destroyed)";
    std::string why;
    try {
      why = detail::agree_or_explain(st_.comm, st_.rank, st_.size, ++st_.op, end, st_.cfg.spin_us);
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (!why.empty()) {
      log::error() << why << "; aborting all " << st_.size << " ranks";
      // The ranks still in a call throw the same message; give them a moment
      // to print it before the job goes down.
      timespec ts{1, 0};
      nanosleep(&ts, nullptr);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
  }
  watchdog_.reset();
  st_.comm = MPI_COMM_NULL;  // env_ frees it, and finalises MPI if it started it
}

Run Runtime::start_run(std::string name, const run_options& opts) {
  const change_policy on_change = opts.on_change                ? *opts.on_change
                                  : st_.cfg.on_change.empty() ? change_policy::refuse
                                                              : parse_change_policy(st_.cfg.on_change);
  {
    detail::call_signature sig;
    sig.call = "start_run";
    sig.step = name;
    sig.extra = "experiment \"" + (opts.experiment.empty() ? st_.cfg.experiment : opts.experiment) + "\"";
    if (opts.resume) sig.extra += ", resume \"" + *opts.resume + "\"";
    if (!opts.with_id.empty()) sig.extra += ", with_id \"" + opts.with_id + "\"";
    // Rank 0 decides what a resume reuses: every rank must follow the same policy.
    if (on_change != change_policy::refuse) sig.extra += std::string(", on_change ") + to_string(on_change);
    detail::agree(st_.comm, st_.rank, st_.size, ++st_.op, sig, st_.cfg.spin_us);
  }
  tracking::run_context ctx;
  ctx.comm = st_.comm;
  ctx.rank = st_.rank;
  ctx.size = st_.size;
  ctx.hosts = st_.hosts;
  ctx.command_line = st_.command_line;
  ctx.segment_bytes = st_.cfg.segment_bytes;
  ctx.experiment = st_.cfg.experiment;
  ctx.mode = parse_tracking_mode(st_.cfg.tracking_mode);
  ctx.on_change = on_change;
  // Where the job runs, recorded with the run (issue #5 resumes from it).
  for (const auto& [env, key] : {std::pair{"SLURM_JOB_ID", "slurm_job_id"},
                                 {"SLURM_ARRAY_JOB_ID", "slurm_array_job_id"},
                                 {"SLURM_ARRAY_TASK_ID", "slurm_array_task_id"},
                                 {"SLURM_JOB_NODELIST", "slurm_nodelist"},
                                 {"SLURM_RESTART_COUNT", "slurm_restart_count"},
                                 {"SLURM_JOB_PARTITION", "slurm_partition"},
                                 {"SLURM_JOB_NAME", "slurm_job_name"}}) {
    if (const char* v = std::getenv(env); v && *v) ctx.context[key] = v;
  }
  if (!st_.cfg.sweep.empty()) ctx.context["sweep"] = st_.cfg.sweep;
  ctx.provenance = st_.cfg.provenance;
  if (!st_.cfg.resume.empty()) {
    ctx.resume = st_.cfg.resume;
  } else if (const char* n = std::getenv("SLURM_RESTART_COUNT"); n && std::atoi(n) > 0) {
    // Slurm requeued this job (time limit, preemption, node failure): carry
    // on with the run its last execution left, as if --resume were given.
    // Only this job's run: other jobs may share the experiment file.
    const char* job = std::getenv("SLURM_JOB_ID");
    ctx.resume = job && *job ? std::string("slurm-job:") + job : std::string("last");
    if (is_scheduler()) {
      log::info() << "Slurm restarted this job (SLURM_RESTART_COUNT=" << n << "): resuming its run";
    }
  }
  Run run(ctx, std::move(name), opts);
  ledger_ = run.ledger();
  return run;
}

boost::mpi::communicator Runtime::world() const {
  return boost::mpi::communicator(MPI_COMM_WORLD, boost::mpi::comm_attach);
}

void Runtime::check_splits(std::int64_t n) const {
  if (static_cast<std::size_t>(n) > st_.cfg.max_num_splits) {
    throw usage_error("foreach over " + std::to_string(n) + " items exceeds --max-num-splits=" +
                      std::to_string(st_.cfg.max_num_splits) + ": nothing was run. Pass --max-num-splits " +
                      std::to_string(n) + " (or set RANKFLOW_MAX_NUM_SPLITS=" + std::to_string(n) +
                      ") if you really want this many splits");
  }
}

detail::call_signature Runtime::signature_of(const char* call, range r, bool container, const partition_plan& plan,
                                             const map_options& opts, const std::type_info& result) {
  detail::call_signature s;
  s.call = call;
  s.has_range = true;
  s.container = container;
  s.first = r.first;
  s.last = r.last;
  s.chunk = plan.chunk;
  s.sched = static_cast<int>(opts.sched);
  s.retries = opts.retries;
  s.results_on_all_ranks = opts.results_on_all_ranks;
  s.max_workers = opts.max_workers;
  s.result = &result;
  s.step = opts.step;
  if (opts.need) s.extra = "need " + to_string(*opts.need);
  if (!opts.record) s.extra += s.extra.empty() ? "not recorded" : ", not recorded";
  return s;
}

detail::job Runtime::make_job(const map_options& opts, const char* default_step, const partition_plan& plan,
                              const detail::call_signature& sig) {
  // Before anything else, and before any check that could throw on some
  // ranks only: the ranks agree that they make this same call.
  detail::agree(st_.comm, st_.rank, st_.size, ++st_.op, sig, st_.cfg.spin_us);
  if (std::int64_t n = 0; sig.has_range && !sig.container && __builtin_sub_overflow(sig.last, sig.first, &n)) {
    throw usage_error(std::string(default_step) + ": range(" + std::to_string(sig.first) + ", " +
                      std::to_string(sig.last) + ") holds more than 2^63 - 1 items: split it into smaller ranges");
  }
  // After the agreement: a rank whose foreach has more items than the
  // others must not throw alone while they wait in the next call.
  if (std::string_view(default_step) == "foreach") check_splits(plan.items);
  if (opts.retries < 0) throw usage_error("map_options::retries must be >= 0, got " + std::to_string(opts.retries));
  if (opts.chunk_size < 0) {
    throw usage_error("map_options::chunk_size must be >= 0 (0 = automatic), got " + std::to_string(opts.chunk_size));
  }
  detail::job j;
  {
    // The call site for small calls: the signature without the range's
    // position (a stencil's window moves every step; its cost does not),
    // completed by the function's type in the typed front-ends.
    detail::call_signature at = sig;
    at.last = sig.has_range ? plan.items : 0;
    at.first = 0;
    j.site = detail::signature_hash(0, at) | 1;  // never 0 (0: not learned)
  }
  j.step = opts.step.empty() ? default_step : opts.step;
  j.plan = plan;
  j.sched = opts.sched;
  j.retries = opts.retries;
  j.backups = opts.sched == schedule::dynamic &&
              (opts.backups ? *opts.backups
                            : st_.cfg.backups == backup_mode::on ||
                                  (st_.cfg.backups == backup_mode::automatic && opts.retries > 0));
  j.active_ranks =
      opts.max_workers == 0 ? st_.size : static_cast<int>(std::min<std::size_t>(opts.max_workers, st_.size));
  if (opts.need) {
    // The --max-workers window counts ranks that qualify.
    j.eligible = eligible_ranks(*opts.need, opts, j.step);
    int allowed = opts.need->ranks > 1 ? st_.size : j.active_ranks;  // teams: make_teams counts teams
    for (auto& e : j.eligible) {
      if (e && allowed-- <= 0) e = 0;
    }
    j.active_ranks = st_.size;
  }
  auto lg = ledger_.lock();
  // An unrecorded call takes no number either: the recorded calls keep the
  // numbers a run made before or without it had.
  if (!lg || !lg->open() || !opts.record) return j;
  // Every rank numbers the call (they make the same calls); only rank 0
  // records and recalls.
  tracking::call_info call{lg->next_call(), j.step, plan.items, plan.chunk, plan.count};
  // What resume compares besides the sizes: what the results depend on
  // (call kind, range bounds, chunk, result type, step), not how they were
  // scheduled: a resumed job may change schedule, retries or workers.
  // ("" in files written before format 1.2.)
  detail::call_signature work = sig;
  work.sched = -1;
  work.retries = 0;
  work.results_on_all_ranks = false;
  work.max_workers = 0;
  work.extra.clear();
  call.signature = detail::render(work);
  j.resuming = lg->resuming();
  if (j.resuming) refuse_changed_inputs(*lg, j.step);
  if (!is_scheduler()) return j;
  if (j.resuming) j.recorded_cost = lg->recorded_seconds_per_partition(call.call);
  j.recall = [lg, call] { return lg->take_recorded(call); };
  j.record = [lg, call, plan](const detail::partition_outcome& o, const char* data, std::size_t n) {
    tracking::ledger_entry e;
    e.partition = o.partition;
    e.first = plan.begin(o.partition);
    e.last = plan.end(o.partition);
    e.rank = o.rank;
    e.start = o.start;
    e.end = o.end;
    e.attempts = o.attempts;
    e.ok = o.ok;
    if (o.lost) {
      e.error = std::string(tracking::lost_copy_prefix) + o.message;
    } else if (!o.ok) {
      e.error = "item " + std::to_string(o.item) + ": " + o.message;
    }
    if (n) e.result.assign(data, n);
    lg->record(call, std::move(e));
  };
  j.flush_record = [lg](bool force) { lg->flush(force); };
  return j;
}

void Runtime::refuse_changed_inputs(tracking::partition_ledger& lg, const std::string& step) {
  // Any rank may have assigned an input: gather what each changed (a
  // resumed run only, so ordinary calls do not pay for it).
  const std::string mine = lg.changed_inputs();
  if (mine.size() > (std::size_t{1} << 30)) throw usage_error(step + ": more than 1 GiB of changed inputs");
  int len = static_cast<int>(mine.size()), longest = 0;
  detail::check_mpi(MPI_Allreduce(&len, &longest, 1, MPI_INT, MPI_MAX, st_.comm), "MPI_Allreduce");
  if (longest == 0) return;
  std::vector<int> lens(static_cast<std::size_t>(st_.size)), at(static_cast<std::size_t>(st_.size), 0);
  detail::check_mpi(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, st_.comm), "MPI_Allgather");
  std::int64_t sum = 0;
  for (int r = 0; r < st_.size; ++r) sum += lens[r];
  if (sum > INT_MAX) throw usage_error(step + ": more than 2 GiB of changed inputs");
  for (int r = 1; r < st_.size; ++r) at[r] = at[r - 1] + lens[r - 1];
  std::string all(static_cast<std::size_t>(sum), '\0');
  detail::check_mpi(MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), at.data(), MPI_CHAR, st_.comm),
                    "MPI_Allgatherv");
  std::vector<std::string> per_rank;
  for (int r = 0; r < st_.size; ++r) per_rank.push_back(all.substr(static_cast<std::size_t>(at[r]), lens[r]));
  const std::string what = lg.describe_changes(per_rank);
  // Every rank takes the same branch: the gathered changes, the policy
  // (agreed on in start_run) and the call count are the same everywhere.
  if (lg.can_restart_for(per_rank)) {
    if (is_scheduler()) {
      log::info() << "--on-change restart: " << what << ": every call of run " << lg.run_id() << " runs afresh";
    }
    lg.restart_for_inputs(per_rank, is_scheduler());
    return;
  }
  if (lg.on_change() == change_policy::restart) {
    throw usage_error("--resume: " + step + ": " + what + ". --on-change restart restarts every call for a new "
                      "input, so it must be assigned, with the type it had, before the run's first "
                      "parallel_map/mapreduce/foreach (or given in run_options::inputs); this change came after call #" +
                      std::to_string(lg.calls_made() - 1) + " or changed the type. The run keeps its value; start a "
                      "new run (--resume no) to use another");
  }
  throw usage_error("--resume: " + step + ": run " + lg.run_id() +
                    " recorded its results with other inputs: " + what +
                    ". Reusing them would mix results of different inputs: resume with the same inputs, restart "
                    "the calls afresh (--on-change restart), or start a new run (--resume no)");
}

void Runtime::raise_reduce_failure(const std::string& step, const std::string& why) const {
  task_error::details d;
  d.step = step;
  d.rank = 0;
  d.host = st_.hosts.empty() ? "?" : st_.hosts[0];
  d.attempts = 1;
  d.message = "reduce, combining partition results on rank 0: " + why;
  throw task_error(std::move(d));
}

std::unique_ptr<detail::team_call> Runtime::make_teams(const map_options& opts, detail::job& j) {
  if (!opts.need || opts.need->ranks <= 1) return nullptr;
  std::vector<std::uint8_t> leaders;
  auto team = std::make_unique<detail::team_call>(st_, j.eligible, *opts.need, opts.max_workers, j.step, leaders);
  j.eligible = std::move(leaders);
  return team;
}

std::vector<std::uint8_t> Runtime::eligible_ranks(const resources& need, const map_options& opts,
                                                  const std::string& step) {
  if (need.cpu < 1 || need.memory_mb < 0 || need.gpu < 0) {
    throw usage_error(step + ": map_options::need needs cpu >= 1, memory_mb >= 0 and gpu >= 0");
  }
  if (need.ranks < 1) {
    throw usage_error(step + ": map_options::need.ranks is " + std::to_string(need.ranks) +
                      ": it is the number of ranks that run each partition together, at least 1");
  }
  if (need.ranks > 1 && opts.sched == schedule::blocked) {
    throw usage_error(step + ": map_options::need.ranks is " + std::to_string(need.ranks) +
                      " and schedule::blocked gives each rank its own block of partitions: partitions on several "
                      "ranks at once need schedule::dynamic");
  }
  const worker_info me = detect_worker(st_.comm, st_.rank, st_.host, st_.cfg.labels);
  std::vector<resources> all(static_cast<std::size_t>(st_.size));
  static_assert(std::is_trivially_copyable_v<resources>);
  detail::check_mpi(MPI_Allgather(&me.capacity, sizeof(resources), MPI_BYTE, all.data(), sizeof(resources), MPI_BYTE,
                                  st_.comm),
                    "MPI_Allgather");
  std::vector<std::uint8_t> ok(static_cast<std::size_t>(st_.size), 0);
  std::size_t largest = 0;
  int count = 0;
  for (std::size_t r = 0; r < all.size(); ++r) {
    if (larger(all[r], all[largest])) largest = r;
    if (fits(need, all[r])) {
      ok[r] = 1;
      ++count;
    }
  }
  if (count == 0) {
    throw resource_error(step + ": each partition needs " + to_string(need) +
                         " but no rank has that; the largest is rank " + std::to_string(largest) + " (host " +
                         st_.hosts[largest] + ") with " + to_string(all[largest]) +
                         ": ask for less or run on bigger ranks (--cpus-per-task, --mem, --gpus-per-task)");
  }
  if (opts.sched == schedule::blocked && count < st_.size) {
    throw usage_error(step + ": " + std::to_string(st_.size - count) + " of " + std::to_string(st_.size) +
                      " ranks cannot meet the partition need (" + to_string(need) +
                      "), and schedule::blocked gives every rank partitions: use schedule::dynamic");
  }
  return ok;
}

}  // namespace rankflow
