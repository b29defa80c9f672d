// Driver mode's public face: groups, compositions, Submitter and drive().
#include "task_engine.hpp"

namespace rankflow {

// ------------------------------------------------------------ public API

std::size_t group::size() const { return g_->recs.size(); }

std::vector<task_status> group::statuses() const {
  std::unique_lock<std::mutex> lk;
  if (auto* e = h_->engine) {
    lk = std::unique_lock(e->mutex());
    e->progress_locked();
  }
  std::vector<task_status> out;
  for (const auto& r : g_->recs) out.push_back(r->status);
  return out;
}

bool group::ready() const {
  const auto s = statuses();
  return std::all_of(s.begin(), s.end(),
                     [](task_status t) { return t == task_status::SUCCESS || t == task_status::FAILURE; });
}

void group::wait() const {
  for (const auto& r : g_->recs) detail::wait_task(*h_, r, nullptr);
}

bool group::wait_until(std::chrono::steady_clock::time_point deadline) const {
  for (const auto& r : g_->recs) {
    if (!detail::wait_task(*h_, r, &deadline)) return false;
  }
  return true;
}

std::shared_ptr<detail::task_rec> group::task(std::size_t i, const std::type_info& expect) const {
  if (i >= g_->recs.size()) {
    throw usage_error("the group has " + std::to_string(g_->recs.size()) + " tasks; there is no task " +
                      std::to_string(i));
  }
  const auto& rec = g_->recs[i];
  if (rec->def->result != std::type_index(expect)) {
    throw usage_error("task " + std::to_string(i) + " of the group ('" + rec->def->name + "') returns " +
                      rec->def->result_name + ", not " + detail::type_name(expect));
  }
  return rec;
}

std::vector<std::size_t> group::failed() const {
  std::unique_lock<std::mutex> lk;
  if (auto* e = h_->engine) {
    lk = std::unique_lock(e->mutex());
    e->progress_locked();
  }
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < g_->recs.size(); ++i) {
    if (g_->recs[i]->status == task_status::FAILURE) out.push_back(i);
  }
  return out;
}

// ------------------------------------------------------------ compositions

namespace detail {
namespace {

void reset(task_rec& rec) {
  rec.status = task_status::PENDING;
  rec.error.reset();
  rec.result.clear();
  rec.attempts = 0;
  rec.rank = -1;
  rec.worker = -1;
  rec.not_before = {};
}

bool ok(const task_rec& r) { return r.status == task_status::SUCCESS; }
bool failed(const task_rec& r) { return r.status == task_status::FAILURE; }

// Step i of a composition with the forwarded value (if any) before its own arguments.
void fire(task_engine& e, group_state& g, std::size_t i, const std::string* forwarded) {
  auto& rec = *g.recs[i];
  rec.args.clear();
  if (forwarded)
    append_arg(rec.args, arg_kind::value, [&](bytes& o) { o.insert(o.end(), forwarded->begin(), forwarded->end()); });
  rec.args.insert(rec.args.end(), g.own[i].begin(), g.own[i].end());
  e.enqueue_locked(g.recs[i]);
}

void fire_combiner(task_engine& e, group_state& g) {
  const std::size_t last = g.recs.size() - 1;
  std::vector<const std::string*> parts;
  for (std::size_t i = 0; i < last; ++i) parts.push_back(&g.recs[i]->result);
  bytes joined;
  g.recs[0]->def->join(parts, joined);
  const std::string value(joined.begin(), joined.end());
  fire(e, g, last, &value);
}

// Continuations run by the engine (lock held) when a step ends.
void wire(task_engine& e, group_state& g) {
  const std::size_t n = g.recs.size();
  for (std::size_t i = 0; i < n; ++i) {
    task_rec& rec = *g.recs[i];
    if (g.k == group_state::kind::sequence) {
      rec.on_end = [&e, &g, i, n] {
        const task_rec& done = *g.recs[i];
        if (i + 1 >= n) return;
        if (ok(done)) {
          fire(e, g, i + 1, &done.result);
          return;
        }
        for (std::size_t j = i + 1; j < n; ++j) {
          g.recs[j]->status = task_status::FAILURE;
          g.recs[j]->error = not_run(
              *g.recs[j], "step " + std::to_string(i + 1) + " ('" + done.def->name + "') of the sequence failed");
        }
      };
    } else if (g.k == group_state::kind::mapreduce && i + 1 < n) {
      rec.on_end = [&e, &g, n] {
        std::size_t first_failed = n;
        for (std::size_t j = 0; j + 1 < n; ++j) {
          if (!ok(*g.recs[j]) && !failed(*g.recs[j])) return;  // still running
          if (failed(*g.recs[j]) && first_failed == n) first_failed = j;
        }
        auto& comb = *g.recs[n - 1];
        if (comb.status != task_status::PENDING || comb.error) return;
        if (first_failed == n) {
          fire_combiner(e, g);
        } else {
          comb.status = task_status::FAILURE;
          comb.error = not_run(
              comb, "map task " + std::to_string(first_failed) + " ('" + g.recs[first_failed]->def->name + "') failed");
        }
      };
    }
  }
}

}  // namespace
}  // namespace detail

void group::restart() {
  auto* engine_ = h_->engine;
  if (!engine_) throw usage_error("group::restart(): the drive() this group was made in has ended");
  std::lock_guard lk(engine_->mutex());
  engine_->progress_locked();
  auto& g = *g_;
  const std::size_t n = g.recs.size();
  using kind = detail::group_state::kind;
  if (g.k == kind::sequence) {
    for (std::size_t i = 0; i < n; ++i) {
      if (!detail::failed(*g.recs[i])) continue;
      for (std::size_t j = i; j < n; ++j) detail::reset(*g.recs[j]);
      detail::fire(*engine_, g, i, i ? &g.recs[i - 1]->result : nullptr);
      return;
    }
    return;
  }
  const std::size_t maps = g.k == kind::mapreduce ? n - 1 : n;
  bool refired = false;
  for (std::size_t i = 0; i < maps; ++i) {
    if (!detail::failed(*g.recs[i])) continue;
    detail::reset(*g.recs[i]);
    detail::fire(*engine_, g, i, nullptr);
    refired = true;
  }
  if (g.k == kind::mapreduce && detail::failed(*g.recs[n - 1])) {
    detail::reset(*g.recs[n - 1]);
    if (!refired) detail::fire_combiner(*engine_, g);  // else it fires when the maps end
  }
}

// ------------------------------------------------------------ Submitter

Submitter Submitter::require(std::string label) const {
  engine_->check_labels({label});
  detail::overrides o = ov_;
  o.labels.push_back(std::move(label));
  return Submitter(engine_, std::move(o));
}

Submitter Submitter::with(resources need) const {
  detail::overrides o = ov_;
  o.need = need;
  return Submitter(engine_, std::move(o));
}

Submitter Submitter::retries(int n, double backoff_s) const {
  if (n < 0 || !(backoff_s >= 0)) throw usage_error("retries(n, backoff_s) needs n >= 0 and backoff_s >= 0");
  detail::overrides o = ov_;
  o.retries = n;
  o.backoff_s = backoff_s;
  return Submitter(engine_, std::move(o));
}

Submitter Submitter::from(source s) const {
  detail::overrides o = ov_;
  o.from = std::move(s);
  return Submitter(engine_, std::move(o));
}

namespace {
const detail::task_def& find_def(detail::task_engine& e, std::string_view name) {
  const auto& defs = e.defs();
  auto it = defs.find(name);
  if (it == defs.end()) {
    std::string have;
    for (const auto& [n, d] : defs) have += (have.empty() ? "" : ", ") + n;
    throw usage_error("no task named '" + std::string(name) +
                      "' is defined (defined: " + (have.empty() ? std::string("none") : have) + "): call rt.define(\"" +
                      std::string(name) + "\", fn) on every rank before drive()");
  }
  return it->second;
}

void check_arity(const detail::task_def& d, std::size_t given, const char* how) {
  if (d.params.size() != given) {
    throw usage_error("task '" + d.name + "' takes " + std::to_string(d.params.size()) + " argument(s), " + how +
                      std::to_string(given));
  }
}
}  // namespace

const detail::task_def& Submitter::lookup(std::string_view name, std::size_t arity, std::type_index result) const {
  const auto& d = find_def(*engine_, name);
  check_arity(d, arity, "got ");
  if (d.result != result) {
    throw usage_error("task '" + d.name + "' returns " + d.result_name + ": submit it as submit<" +
                      (d.result_name == "void" ? std::string("void") : d.result_name) + ">(\"" + d.name + "\", ...)");
  }
  return d;
}

std::shared_ptr<detail::engine_handle> Submitter::handle() const { return engine_->handle(); }

std::shared_ptr<detail::task_rec> Submitter::enqueue(const detail::task_def& d, bytes&& args) const {
  auto rec = engine_->make(d, std::move(args), ov_);
  std::lock_guard lk(engine_->mutex());
  engine_->enqueue_locked(rec);
  return rec;
}

namespace {
// Checks every call and makes its record (nothing is queued yet).
std::shared_ptr<detail::group_state> build(detail::task_engine& e, const detail::overrides& base,
                                           detail::group_state::kind k, std::vector<call>& calls) {
  auto g = std::make_shared<detail::group_state>();
  g->k = k;
  const std::size_t n = calls.size();
  for (std::size_t i = 0; i < n; ++i) {
    const auto& d = find_def(e, calls[i].name());
    const bool forwarded = (k == detail::group_state::kind::sequence && i > 0) ||
                           (k == detail::group_state::kind::mapreduce && i + 1 == n);
    check_arity(d, calls[i].arity() + (forwarded ? 1 : 0),
                forwarded ? "its first from the step before, then got " : "got ");
    if (forwarded) {
      const auto& prev = *g->recs[i - 1]->def;
      const std::type_index want = k == detail::group_state::kind::sequence ? prev.result : prev.result_vector;
      if (d.params[0] != want) {
        throw usage_error("task '" + d.name + "' takes " + d.param_names[0] + " as its first argument, but it is " +
                          (k == detail::group_state::kind::sequence
                               ? "given the result of '" + prev.name + "' (" + prev.result_name + ")"
                               : "given the map tasks' results as std::vector<" + prev.result_name + ">"));
      }
    }
    if (k == detail::group_state::kind::mapreduce && i > 0 && i + 1 < n && d.result != g->recs[0]->def->result) {
      throw usage_error("mapreduce: every map task must return the same type; '" + d.name + "' returns " +
                        d.result_name + " but '" + g->recs[0]->def->name + "' returns " + g->recs[0]->def->result_name);
    }
    bytes own;
    detail::call_access::encode(calls[i], own, d, forwarded ? 1 : 0);
    detail::overrides ov = base;
    ov.merge(detail::call_access::options(calls[i]));
    g->recs.push_back(e.make(d, bytes(own), ov));
    g->own.push_back(std::move(own));
  }
  detail::wire(e, *g);
  e.keep(g);
  return g;
}
}  // namespace

group Submitter::sequence(std::vector<call> calls) const {
  if (calls.empty()) throw usage_error("sequence() needs at least one call");
  auto g = build(*engine_, ov_, detail::group_state::kind::sequence, calls);
  std::lock_guard lk(engine_->mutex());
  detail::fire(*engine_, *g, 0, nullptr);
  return group(engine_->handle(), g);
}

group Submitter::parallel(std::vector<call> calls) const {
  if (calls.empty()) throw usage_error("parallel() needs at least one call");
  auto g = build(*engine_, ov_, detail::group_state::kind::parallel, calls);
  std::lock_guard lk(engine_->mutex());
  for (std::size_t i = 0; i < g->recs.size(); ++i) detail::fire(*engine_, *g, i, nullptr);
  return group(engine_->handle(), g);
}

group Submitter::mapreduce(std::vector<call> calls, call combine) const {
  if (calls.empty()) throw usage_error("mapreduce() needs at least one map call");
  calls.push_back(std::move(combine));
  auto g = build(*engine_, ov_, detail::group_state::kind::mapreduce, calls);
  std::lock_guard lk(engine_->mutex());
  for (std::size_t i = 0; i + 1 < g->recs.size(); ++i) detail::fire(*engine_, *g, i, nullptr);
  return group(engine_->handle(), g);
}

std::vector<worker_info> Scheduler::labels() const { return engine_->workers(); }
void Scheduler::wait_all() const { engine_->wait(nullptr, nullptr); }
std::size_t Scheduler::in_flight() const { return engine_->open(); }

// ------------------------------------------------------------ drive

void Runtime::check_task_name(const std::string& name) const {
  if (driving_) throw usage_error("define(\"" + name + "\") inside drive(): define every task before drive()");
  if (name.empty()) throw usage_error("define(): a task needs a name");
}

void Runtime::drive(const std::function<void(Scheduler&)>& driver) {
  if (driving_) throw usage_error("drive() inside drive() is not supported");
  {
    // Every rank must have defined the same tasks: a worker asked to run a
    // task it does not know could only fail it.
    detail::call_signature sig;
    sig.call = "drive";
    sig.extra = "tasks";
    for (const auto& [name, def] : tasks_) sig.extra += " " + name;
    detail::agree(st_.comm, st_.rank, st_.size, ++st_.op, sig, st_.cfg.spin_us);
  }
  driving_ = true;
  struct unset {
    bool& b;
    ~unset() { b = false; }
  } guard{driving_};
  MPI_Comm comm = MPI_COMM_NULL;
  detail::check_mpi(MPI_Comm_dup(st_.comm, &comm), "MPI_Comm_dup");
  struct comm_free {
    MPI_Comm& c;
    ~comm_free() { MPI_Comm_free(&c); }
  } free_comm{comm};
  // Multi-rank tasks make their communicators here (MPI_Comm_create_group
  // over their members only), apart from the task messages on `comm`.
  MPI_Comm gang_comm = MPI_COMM_NULL;
  detail::check_mpi(MPI_Comm_dup(st_.comm, &gang_comm), "MPI_Comm_dup");
  struct gang_free {
    MPI_Comm& c;
    ~gang_free() { MPI_Comm_free(&c); }
  } free_gang{gang_comm};
  const worker_info me = detect_worker(comm, st_.rank, st_.host, st_.cfg.labels);
  auto all = detail::gather_workers(comm, st_.rank, st_.size, me);

  if (st_.rank != 0) {
    const auto stop = detail::serve(st_, comm, gang_comm, tasks_, me);
    if (stop.kind != detail::stop_kind::ok) detail::rethrow_stop(stop);
    return;
  }
  if (st_.size > 1) all.erase(all.begin());  // rank 0 drives; the others work
  detail::task_engine engine(st_, comm, tasks_, std::move(all));
  Scheduler s(&engine);
  std::exception_ptr failure;
  try {
    driver(s);
    engine.wait(nullptr, nullptr);  // what was submitted runs to its end
  } catch (...) {
    failure = std::current_exception();
  }
  engine.shutdown(failure ? detail::describe_failure(failure) : detail::stop_info{});
  record_tasks(engine.take_attempts());
  if (failure) std::rethrow_exception(failure);
}

// Rank 0: the tasks of this drive() into the active run's ledger, one entry
// per attempt, under a negative call number (resume never matches them; a
// task's result is not kept). Entries hold the task's id as their partition
// and its name in place of a result. `rankflow ui` draws them in the run's
// timeline. Recorded when drive() ends: the attempts are seen by the
// engine's pump thread, and a run takes records from one thread.
void Runtime::record_tasks(const std::vector<detail::task_attempt>& attempts) {
  auto lg = ledger_.lock();
  if (!lg || !lg->open() || attempts.empty()) return;
  tracking::call_info c;
  c.call = lg->next_task_batch();
  c.step = "drive";
  c.items = static_cast<std::int64_t>(attempts.size());
  c.chunk = 1;
  c.partitions = c.items;
  c.signature = "drive (tasks)";
  for (const auto& a : attempts) {
    tracking::ledger_entry e;
    e.partition = static_cast<std::int64_t>(a.id);
    e.rank = a.rank;
    e.start = a.start;
    e.end = a.end;
    e.attempts = a.attempt;
    e.ok = a.ok;
    e.error = a.error;
    e.result = a.task;
    lg->record(c, std::move(e));
  }
  lg->flush(true);
}

}  // namespace rankflow
