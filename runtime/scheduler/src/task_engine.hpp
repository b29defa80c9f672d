// Private to driver mode: rank 0's task engine (placement, retries, groups).
#pragma once

#include "task_wire.hpp"

namespace rankflow::detail {

// ------------------------------------------------------------ rank 0 state

// One attempt of a multi-rank task: its members (worker indices, member 0
// first) and how they ended. The attempt ends at its first failure (the
// others are told to abandon) or when every member succeeded; members still
// running after that keep their workers until they report.
struct gang_attempt {
  std::vector<int> workers;
  std::vector<char> reported;
  int left = 0;
  bool failed = false;
  bool final = false;
  bool ended = false;
  std::string result;  // member 0's
  double start = 0, end = 0;
  int failed_worker = -1;
  std::string error;
};

struct task_rec {
  std::uint64_t id = 0;
  const task_def* def = nullptr;
  bytes args;
  resources need;
  std::vector<std::string> labels;
  int retries = 0;
  double backoff_s = 0.5;
  std::optional<source> from;
  // Workers (indices) that could ever run it: shared by every task with the
  // same labels and needs, so a task costs rank 0 a pointer, not a list of
  // all workers (10,000 ranks x 4 bytes each).
  std::shared_ptr<const std::vector<int>> candidates;
  task_status status = task_status::PENDING;
  int attempts = 0;
  int worker = -1;  // index of the worker running it / that ran it last
  int rank = -1;
  std::chrono::steady_clock::time_point not_before{};
  std::string result;
  std::optional<task_error::details> error;
  std::function<void()> on_end;  // compositions: what follows this task
  std::map<int, gang_attempt> gang_attempts;  // multi-rank tasks: attempts with members still out
};

// One attempt of a task, as the run's ledger records it.
struct task_attempt {
  std::uint64_t id = 0;
  std::string task;
  int rank = -1;
  double start = 0, end = 0;  // Unix seconds, on the worker
  int attempt = 0;
  bool ok = false;
  std::string error;
};

struct group_state {
  enum class kind { sequence, parallel, mapreduce } k = kind::parallel;
  std::vector<std::shared_ptr<task_rec>> recs;  // mapreduce: the combiner is last
  std::vector<bytes> own;                       // each call's own arguments, encoded
};

// The error of a task that never ran, and why.
inline task_error::details not_run(const task_rec& rec, const std::string& why) {
  return task_error::details{
      rec.def->name, -1, "", -1, -1, rec.attempts, "not run: " + why, static_cast<std::int64_t>(rec.id)};
}

class task_engine {
 public:
  task_engine(runtime_state& st, MPI_Comm comm, const std::map<std::string, task_def, std::less<>>& defs,
              std::vector<worker_info> workers)
      : st_(st), comm_(comm), defs_(defs), workers_(std::move(workers)), local_(st.size == 1) {
    handle_->engine = this;
    for (const auto& w : workers_) free_.push_back(w.capacity);
    open_workers_ = static_cast<int>(workers_.size());
    reserved_.assign(workers_.size(), 0);
    if (local_) {
      exec_ = std::make_unique<executor>(defs_, workers_.front(), [this](const result_header& h, const std::string& p) {
        std::lock_guard lk(done_m_);
        done_.emplace_back(h, p);
      });
    }
    pump_ = std::thread([this] { pump(); });
  }
  ~task_engine() {
    stop_pump();
    exec_.reset();  // its threads report into done_ and done_m_: join them first
    if (handle_) handle_->engine = nullptr;
  }

  const std::vector<worker_info>& workers() const { return workers_; }
  const std::shared_ptr<engine_handle>& handle() const { return handle_; }
  const std::map<std::string, task_def, std::less<>>& defs() const { return defs_; }
  std::mutex& mutex() { return mu_; }

  void check_labels(const std::vector<std::string>& labels) const {
    for (const auto& l : labels) {
      if (std::none_of(workers_.begin(), workers_.end(), [&](const worker_info& w) { return w.has_label(l); })) {
        throw usage_error("no worker has the label '" + l + "'; the workers have: " + describe_labels() +
                          " (add labels with --labels or RANKFLOW_LABELS on the ranks that should have it)");
      }
    }
  }

  std::string describe_labels() const {
    std::map<std::string, std::vector<int>> by;
    for (const auto& w : workers_)
      for (const auto& l : w.labels) by[l].push_back(w.rank);
    std::string s;
    for (const auto& [l, ranks] : by) {
      s += (s.empty() ? "" : ", ") + l + " (rank";
      s += ranks.size() > 1 ? "s " : " ";
      for (std::size_t i = 0; i < ranks.size(); ++i) s += (i ? "," : "") + std::to_string(ranks[i]);
      s += ")";
    }
    return s;
  }

  // A new task record with the options in effect and its candidate workers;
  // throws when no worker could ever run it. Caller holds the lock or not: it
  // touches no shared state.
  std::shared_ptr<task_rec> make(const task_def& d, bytes&& args, const overrides& ov) {
    auto rec = std::make_shared<task_rec>();
    rec->def = &d;
    rec->args = std::move(args);
    rec->need = ov.need.value_or(d.defaults.need);
    rec->labels = d.defaults.labels;
    rec->labels.insert(rec->labels.end(), ov.labels.begin(), ov.labels.end());
    rec->retries = ov.retries.value_or(d.defaults.retries);
    rec->backoff_s = ov.backoff_s.value_or(d.defaults.backoff_s);
    rec->from = ov.from ? ov.from : d.defaults.from;
    const auto& n = rec->need;
    if (n.cpu < 1 || n.memory_mb < 0 || n.gpu < 0 || n.ranks < 1) {
      throw usage_error("task '" + d.name + "': resources need cpu >= 1, memory_mb >= 0, gpu >= 0 and ranks >= 1, got " +
                        std::to_string(n.cpu) + ", " + std::to_string(n.memory_mb) + ", " + std::to_string(n.gpu) +
                        ", " + std::to_string(n.ranks));
    }
    if (rec->retries < 0) throw usage_error("task '" + d.name + "': retries must be >= 0");
    check_labels(rec->labels);
    rec->candidates = candidates_for(d, rec->labels, n);
    if (n.ranks > 1) {
      const auto m = rec->candidates->size();
      if (m < static_cast<std::size_t>(n.ranks)) {
        throw resource_error("task '" + d.name + "' needs " + std::to_string(n.ranks) + " ranks at once (resources::ranks) but only " +
                             std::to_string(m) + " worker rank" + (m == 1 ? "" : "s") +
                             " can run it (rank 0 drives; the workers are ranks 1 to " + std::to_string(st_.size - 1) +
                             "): run with at least " + std::to_string(n.ranks + 1) + " ranks, or ask for fewer");
      }
      if (st_.thread_level != MPI_THREAD_MULTIPLE) {
        throw usage_error("task '" + d.name + "': multi-rank tasks need MPI_THREAD_MULTIPLE (tasks make their "
                          "communicator on a worker thread); this MPI provided level " +
                          std::to_string(st_.thread_level));
      }
    }
    return rec;
  }

  // The workers with all of `labels` whose capacity holds `n`, computed once
  // per (labels, need); throws resource_error naming the largest worker when
  // there are none.
  std::shared_ptr<const std::vector<int>> candidates_for(const task_def& d, const std::vector<std::string>& labels,
                                                         const resources& n) {
    std::string key = std::to_string(n.cpu) + '/' + std::to_string(n.memory_mb) + '/' + std::to_string(n.gpu);
    for (const auto& l : labels) key += '\n' + l;
    std::lock_guard lk(classes_m_);
    if (auto it = classes_.find(key); it != classes_.end()) return it->second;
    auto list = std::make_shared<std::vector<int>>();
    const worker_info* largest = nullptr;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      const auto& wi = workers_[w];
      if (!std::all_of(labels.begin(), labels.end(), [&](const std::string& l) { return wi.has_label(l); })) continue;
      if (fits(n, wi.capacity)) list->push_back(static_cast<int>(w));
      if (!largest || larger(wi.capacity, largest->capacity)) largest = &wi;
    }
    if (list->empty()) {
      std::string names;
      for (const auto& l : labels) names += (names.empty() ? "" : ",") + l;
      if (!largest) {
        throw usage_error("task '" + d.name + "': no worker has all of the labels " + names +
                          "; the workers have: " + describe_labels());
      }
      const auto& c = largest->capacity;
      throw resource_error("task '" + d.name + "' needs " + to_string(n) + " but no worker" +
                           (names.empty() ? std::string() : " with label(s) " + names) +
                           " can ever give it that; the largest is rank " + std::to_string(largest->rank) + " (host " +
                           largest->host + ") with " + to_string(c) + " (CPUs from " + largest->cpu_source +
                           ", memory from " + largest->memory_source + ", GPUs from " + largest->gpu_source +
                           "): ask for less or run on bigger ranks (--cpus-per-task, --mem, --gpus-per-task)");
    }
    classes_.emplace(key, list);
    return list;
  }

  // Queues a task made by make(); lock held.
  void enqueue_locked(const std::shared_ptr<task_rec>& rec) {
    rec->id = ++next_id_;
    if (stopping_) {  // a composition's next step after the driver ended
      rec->status = task_status::FAILURE;
      rec->error = not_run(*rec, "the driver ended before it started");
      return;
    }
    rec->status = task_status::PENDING;
    queue_.push_back(rec);
    ++open_;
    dispatch();
  }

  // Receives what arrived, frees finished sends and places queued tasks.
  // Lock held. Returns true when anything happened.
  bool progress_locked() {
    bool did = false;
    if (local_) {
      std::vector<std::pair<result_header, std::string>> done;
      {
        std::lock_guard lk(done_m_);
        done.swap(done_);
      }
      for (auto& [h, p] : done) finish(h, std::move(p));
      did = !done.empty();
    } else {
      frame_in f;
      while (try_recv_frame(comm_, MPI_ANY_SOURCE, tag_up, st_.cfg.segment_bytes, f)) {
        did = true;
        const auto kind = static_cast<msg>(f.payload()[0]);
        if (kind == msg::result) {
          result_header h;
          std::memcpy(&h, f.payload() + 1, sizeof h);
          const char* p = f.payload() + 1 + sizeof h;
          finish(h, std::string(p, f.payload_size() - 1 - sizeof h));
        } else if (kind == msg::bye) {
          ++byes_;
        }
      }
      for (auto it = sends_.begin(); it != sends_.end();) it = it->test() ? sends_.erase(it) : std::next(it);
    }
    did |= dispatch();
    return did;
  }

  bool ended(const task_rec& r) const { return r.status == task_status::SUCCESS || r.status == task_status::FAILURE; }

  // Waits for `rec` (or for every task when null); false at the deadline.
  bool wait(const task_rec* rec, const std::chrono::steady_clock::time_point* deadline) {
    waiters_.fetch_add(1);
    struct leave {
      std::atomic<int>& w;
      ~leave() { w.fetch_sub(1); }
    } guard{waiters_};
    backoff bo(1000, 200);
    for (;;) {
      {
        std::lock_guard lk(mu_);
        if (pump_error_) std::rethrow_exception(pump_error_);
        const bool did = progress_locked();
        if (rec ? ended(*rec) : open_ == 0) return true;
        if (did) bo.reset();
      }
      if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
      if (const int sig = pending_signal()) {
        throw interrupted(sig, std::string("drive() interrupted by ") + signal_name(sig) + " while waiting for tasks");
      }
      bo.wait();
    }
  }

  std::size_t open() {
    std::lock_guard lk(mu_);
    return open_;
  }

  /// The attempts that ended since the last call (the driver's thread takes
  /// them for the run's ledger: runs are not thread-safe, so the pump thread
  /// that sees most of them cannot record them itself).
  std::vector<task_attempt> take_attempts() {
    std::lock_guard lk(mu_);
    return std::exchange(attempts_, {});
  }

  /// Compositions live as long as the drive, so their continuations can run
  /// whether or not the driver still holds the group.
  void keep(std::shared_ptr<group_state> g) {
    std::lock_guard lk(mu_);
    groups_.push_back(std::move(g));
  }

  // The driver is done: drop what never started, tell every worker to stop
  // (they finish what they run), and wait for each one's goodbye.
  void shutdown(const stop_info& why) {
    stop_pump();
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& rec : queue_) {
      rec->status = task_status::FAILURE;
      rec->error = not_run(*rec, "the driver ended before it started");
    }
    queue_.clear();
    if (local_) {
      exec_->join();
      return;
    }
    bytes body;
    body.push_back(static_cast<char>(msg::stop));
    encode(body, why);
    for (const auto& w : workers_) {
      bytes f = new_frame();
      f.insert(f.end(), body.begin(), body.end());
      sends_.push_back(isend_frame(comm_, w.rank, tag_down, std::move(f), st_.cfg.segment_bytes));
    }
    backoff bo(2000);
    const auto stop_at = std::chrono::steady_clock::now();
    while (byes_ < static_cast<int>(workers_.size())) {
      progress_locked() ? bo.reset() : bo.wait();
      if (!gangs_.empty()) stuck_members(stop_at);
    }
    for (auto& s : sends_) s.wait();
    sends_.clear();
  }

 private:
  void finish(const result_header& h, std::string&& payload) {
    if (auto g = gangs_.find(h.id); g != gangs_.end()) {
      finish_member(g->second, h, std::move(payload));
      return;
    }
    auto it = in_flight_.find(h.id);
    if (it == in_flight_.end()) return;  // after a shutdown: nobody waits for it
    auto rec = it->second;
    in_flight_.erase(it);
    {
      // Every attempt's end, for the run's ledger (drive() records them).
      task_attempt a{rec->id, rec->def->name, rec->rank, h.start, h.end, rec->attempts, h.ok != 0,
                     h.ok ? std::string() : payload};
      attempts_.push_back(std::move(a));
    }
    give_back(rec->worker, rec->need);
    const auto& w = workers_[static_cast<std::size_t>(rec->worker)];
    if (h.ok) {
      rec->status = task_status::SUCCESS;
      rec->result = std::move(payload);
    } else if (!h.final && rec->attempts <= rec->retries && !stopping_) {
      log::warn() << "task '" << rec->def->name << "' (id " << rec->id << ") failed on rank " << w.rank << " (host "
                  << w.host << "), attempt " << rec->attempts << " of " << rec->retries + 1 << ": " << payload
                  << "; retrying in " << backoff_s(*rec) << " s";
      retry_later(rec);
      return;
    } else {
      rec->status = task_status::FAILURE;
      rec->error = task_error::details{rec->def->name,
                                       w.rank,
                                       w.host,
                                       -1,
                                       -1,
                                       rec->attempts,
                                       std::move(payload),
                                       static_cast<std::int64_t>(rec->id)};
    }
    --open_;
    if (rec->on_end) rec->on_end();
  }

  // The wait before the next attempt: backoff_s, doubling, at most 60 s.
  static double backoff_s(const task_rec& rec) {
    return std::min(60.0, rec.backoff_s * std::pow(2.0, rec.attempts - 1));
  }
  void retry_later(const std::shared_ptr<task_rec>& rec) {
    rec->status = task_status::RETRY;
    rec->not_before =
        std::chrono::steady_clock::now() +
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(backoff_s(*rec)));
    queue_.push_back(rec);
  }

  void give_back(int worker, const resources& need) {
    auto& f = free_[static_cast<std::size_t>(worker)];
    if (f.cpu <= 0 && f.cpu + need.cpu > 0) ++open_workers_;
    f.cpu += need.cpu;
    f.memory_mb += need.memory_mb;
    f.gpu += need.gpu;
  }
  void take(int worker, const resources& need) {
    auto& f = free_[static_cast<std::size_t>(worker)];
    const bool was_open = f.cpu > 0;
    f.cpu -= need.cpu;
    f.memory_mb -= need.memory_mb;
    f.gpu -= need.gpu;
    if (was_open && f.cpu <= 0) --open_workers_;
  }

  // ---- multi-rank tasks (task_gangs.cpp) -------------------------------------

  // One member of a multi-rank task reported (its worker is free again).
  void finish_member(const std::shared_ptr<task_rec>& rec, const result_header& h, std::string&& payload);
  // The attempt ended: at its first failure, or once every member succeeded.
  void end_gang_attempt(const std::shared_ptr<task_rec>& rec, int attempt, gang_attempt& ga);
  void send_abandon(int worker, std::uint64_t id, int attempt);
  // Places a multi-rank task now, or holds the freest candidates; see there.
  bool place_gang(const std::shared_ptr<task_rec>& rec);
  // At the drive's end: members blocked for good end the job, named.
  void stuck_members(std::chrono::steady_clock::time_point since);

  void reserve(int w) {
    const auto i = static_cast<std::size_t>(w);
    if (reserved_[i]) return;
    reserved_[i] = 1;
    if (free_[i].cpu > 0) --open_workers_;  // for this pass only
    held_.push_back(w);
  }

  // Places queued tasks in order. A task that fits nowhere now reserves the
  // candidate with the most free CPUs for the rest of the pass, so smaller
  // tasks behind it cannot keep that worker busy forever: large requests are
  // never starved, and the other workers still take small ones.
  bool dispatch() {
    // After the stop nothing more is sent: a worker leaves at the stop and
    // would never receive it.
    if (stopping_ || queue_.empty() || open_workers_ == 0) return false;
    const auto now = std::chrono::steady_clock::now();
    bool did = false;
    int scanned = 0;
    for (auto it = queue_.begin(); it != queue_.end() && scanned < 4096 && open_workers_ > 0; ++scanned) {
      auto& rec = *it;
      if (rec->not_before > now) {
        ++it;
        continue;
      }
      if (rec->need.ranks > 1) {
        if (place_gang(rec)) {
          it = queue_.erase(it);
          did = true;
        } else {
          ++it;
        }
        continue;
      }
      // First fit from a rotating start (spreads tasks, and stops at the
      // first free worker instead of scanning them all); away from the
      // worker it just failed on when another fits.
      const auto& cand = *rec->candidates;
      const std::size_t m = cand.size();
      int best = -1, fallback = -1;
      for (std::size_t k = 0; k < m; ++k) {
        const int w = cand[(cursor_ + k) % m];
        const auto i = static_cast<std::size_t>(w);
        if (reserved_[i] || !fits(rec->need, free_[i])) continue;
        if (workers_[i].rank == rec->rank && m > 1) {
          if (fallback < 0) fallback = w;
          continue;
        }
        best = w;
        cursor_ = (cursor_ + k + 1) % m;
        break;
      }
      if (best < 0) best = fallback;
      if (best >= 0) {
        send(rec, best);
        it = queue_.erase(it);
        did = true;
        continue;
      }
      int hold = -1;
      for (int w : cand) {
        const auto i = static_cast<std::size_t>(w);
        if (!reserved_[i] && (hold < 0 || free_[i].cpu > free_[static_cast<std::size_t>(hold)].cpu)) hold = w;
      }
      if (hold >= 0) reserve(hold);
      ++it;
    }
    for (int h : held_) {
      reserved_[static_cast<std::size_t>(h)] = 0;
      if (free_[static_cast<std::size_t>(h)].cpu > 0) ++open_workers_;
    }
    held_.clear();
    return did;
  }

  void send(const std::shared_ptr<task_rec>& rec, int w) {
    const auto i = static_cast<std::size_t>(w);
    take(w, rec->need);
    rec->status = task_status::STARTED;
    rec->worker = w;
    rec->rank = workers_[i].rank;
    ++rec->attempts;
    in_flight_[rec->id] = rec;
    bytes frame = task_frame(rec, 0, {});
    if (local_) {
      frame_in in;
      in.buf = std::move(frame);
      exec_->post(parse_task(std::move(in)));
    } else {
      sends_.push_back(isend_frame(comm_, workers_[i].rank, tag_down, std::move(frame), st_.cfg.segment_bytes));
    }
  }

  // The task message for one member (ranks empty: a one-rank task).
  bytes task_frame(const std::shared_ptr<task_rec>& rec, int member, const std::vector<int>& ranks) {
    std::string from;
    if (rec->from) from = rec->from->experiment + '\0' + rec->from->run;
    task_header h{};
    h.id = rec->id;
    h.attempt = rec->attempts;
    h.cpu = rec->need.cpu;
    h.memory_mb = rec->need.memory_mb;
    h.gpu = rec->need.gpu;
    h.name_len = static_cast<std::uint32_t>(rec->def->name.size());
    h.from_len = static_cast<std::uint32_t>(from.size());
    h.members = ranks.empty() ? 1 : static_cast<std::int32_t>(ranks.size());
    h.member = member;
    bytes frame = new_frame();
    frame.reserve(frame_header_bytes + 1 + sizeof h + ranks.size() * sizeof(int) + h.name_len + from.size() +
                  rec->args.size());
    frame.push_back(static_cast<char>(msg::task));
    put(frame, h);
    for (int r : ranks) put(frame, r);
    frame.insert(frame.end(), rec->def->name.begin(), rec->def->name.end());
    frame.insert(frame.end(), from.begin(), from.end());
    frame.insert(frame.end(), rec->args.begin(), rec->args.end());
    return frame;
  }

  // Keeps workers fed while the driver computes between calls.
  void pump() {
    backoff bo(1000);
    while (!stop_pump_.load()) {
      bool did = false;
      if (waiters_.load() == 0) {
        std::unique_lock lk(mu_, std::try_to_lock);
        if (lk.owns_lock()) {
          try {
            did = progress_locked();
          } catch (...) {
            pump_error_ = std::current_exception();
            return;
          }
        }
      }
      did ? bo.reset() : bo.wait();
    }
  }
  void stop_pump() {
    stop_pump_ = true;
    if (pump_.joinable()) pump_.join();
  }

  runtime_state& st_;
  MPI_Comm comm_;
  const std::map<std::string, task_def, std::less<>>& defs_;
  std::vector<worker_info> workers_;
  std::vector<resources> free_;
  bool local_;
  std::mutex mu_;
  std::list<std::shared_ptr<task_rec>> queue_;
  std::unordered_map<std::uint64_t, std::shared_ptr<task_rec>> in_flight_;
  std::vector<task_attempt> attempts_;  // ended since take_attempts()
  std::list<pending_send> sends_;
  std::uint64_t next_id_ = 0;
  std::size_t open_ = 0;  // submitted and not ended
  int byes_ = 0;
  std::unique_ptr<executor> exec_;
  std::mutex done_m_;
  std::vector<std::pair<result_header, std::string>> done_;
  std::thread pump_;
  std::atomic<bool> stop_pump_{false};
  std::atomic<int> waiters_{0};
  std::exception_ptr pump_error_;
  std::vector<std::shared_ptr<group_state>> groups_;
  std::shared_ptr<engine_handle> handle_ = std::make_shared<engine_handle>();
  bool stopping_ = false;       // shutdown began: nothing more is sent
  int open_workers_ = 0;        // workers with a free CPU (minus those reserved in a pass)
  std::size_t cursor_ = 0;      // where the next first-fit search starts
  std::vector<char> reserved_;  // per pass: held for a task that fits nowhere yet
  std::vector<int> held_;
  std::mutex classes_m_;
  std::map<std::string, std::shared_ptr<const std::vector<int>>> classes_;
  std::unordered_map<std::uint64_t, std::shared_ptr<task_rec>> gangs_;  // multi-rank tasks with members out
};

/// A worker rank's side of drive() (task_engine.cpp).
stop_info serve(runtime_state& st, MPI_Comm comm, MPI_Comm gang_comm,
                const std::map<std::string, task_def, std::less<>>& defs, const worker_info& me);
/// Every rank's worker_info, on rank 0 (empty elsewhere). Collective.
std::vector<worker_info> gather_workers(MPI_Comm comm, int rank, int size, const worker_info& me);
/// How the driver ended, for every rank.
stop_info describe_failure(std::exception_ptr e);

}  // namespace rankflow::detail
