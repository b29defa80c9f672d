// Private to driver mode: the messages between rank 0 and the workers,
// the executor that runs tasks on a worker's threads, and how a drive ends.
#pragma once

#include <rankflow/core/detail/agreement.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/core/detail/transport.hpp>
#include <rankflow/runtime/resources.hpp>
#include <rankflow/runtime/runtime.hpp>
#include <rankflow/runtime/tasks.hpp>
#include <rankflow/runtime/threads.hpp>
#include <rankflow/tracking/experiment.hpp>

#include <cxxabi.h>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <list>
#include <map>
#include <set>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace rankflow::detail {


constexpr int tag_down = 40;  // rank 0 -> worker (segments on 41)
constexpr int tag_up = 42;    // worker -> rank 0 (segments on 43)

// abandon: rank 0 -> the other members of a multi-rank task one of whose
// members failed (body: the task id and attempt), so that their
// task_context::wait() throws instead of waiting for the failed member.
enum class msg : std::uint8_t { task = 1, stop = 2, result = 3, bye = 4, abandon = 5 };

struct task_header {
  std::uint64_t id;
  std::int32_t attempt;
  std::int32_t cpu;
  std::int64_t memory_mb;
  std::int32_t gpu;
  std::uint32_t name_len;
  std::uint32_t from_len;  // "experiment\0run", 0 for none
  std::int32_t members;    // ranks of the task; > 1: that many int32 ranks follow the header, member 0 first
  std::int32_t member;     // this rank's place among them
  std::int32_t pad;
};

struct result_header {
  std::uint64_t id;
  double start;
  double end;
  std::uint8_t ok;
  std::uint8_t final;  // a failure retries cannot fix
  std::uint8_t pad[2];
  std::int32_t member;   // multi-rank tasks: which member reports
  std::int32_t attempt;  // the attempt it belongs to
  std::int32_t pad2;
};

template <class T>
inline void put(bytes& out, const T& v) {
  const auto* p = reinterpret_cast<const char*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

// A task as a worker receives it; `args` point into `frame`.
struct incoming_task {
  task_header h{};
  std::vector<int> ranks;  // multi-rank tasks: the members' ranks, member 0 first
  std::string name;
  std::optional<source> from;
  bytes frame;
  std::vector<arg_view> args;
};

inline incoming_task parse_task(frame_in&& f) {
  incoming_task t;
  const char* p = f.payload() + 1;
  std::memcpy(&t.h, p, sizeof t.h);
  p += sizeof t.h;
  if (t.h.members > 1) {
    t.ranks.resize(static_cast<std::size_t>(t.h.members));
    std::memcpy(t.ranks.data(), p, t.ranks.size() * sizeof(int));
    p += t.ranks.size() * sizeof(int);
  }
  t.name.assign(p, t.h.name_len);
  p += t.h.name_len;
  if (t.h.from_len) {
    std::string s(p, t.h.from_len);
    const auto nul = s.find('\0');
    t.from = source{s.substr(0, nul), nul == std::string::npos ? "" : s.substr(nul + 1)};
    p += t.h.from_len;
  }
  t.frame = std::move(f.buf);
  const char* end = t.frame.data() + t.frame.size();
  // `p` pointed into f.buf, whose storage moved (not copied) into t.frame.
  t.args = split_args(p, static_cast<std::size_t>(end - p));
  return t;
}

using done_fn = std::function<void(const result_header&, const std::string& payload)>;

// Runs tasks on threads of this rank, each holding the cores it asked for.
// Rank 0 sends only what fits, so at most capacity.cpu tasks run at once and
// a new thread is started only when every existing one is busy.
class executor {
 public:
  /// gang_comm: where multi-rank tasks' communicators are made (a
  /// duplicate of the job's ranks for this drive; MPI_COMM_NULL: none).
  executor(const std::map<std::string, task_def, std::less<>>& defs, const worker_info& me, done_fn done,
           MPI_Comm gang_comm = MPI_COMM_NULL)
      : defs_(defs), me_(me), done_(std::move(done)), free_gpus_(me.gpu_ids), gang_comm_(gang_comm) {}

  /// A member of a multi-rank task failed elsewhere: this rank's member, if
  /// it runs, sees task_context::abandoned() (and wait() throws).
  void abandon(std::uint64_t id, int attempt) {
    std::lock_guard lk(m_);
    if (auto it = gangs_.find({id, attempt}); it != gangs_.end()) {
      it->second->store(true);
    } else {
      early_abandon_.insert({id, attempt});  // before this member started
    }
  }
  ~executor() { join(); }

  /// A task that takes every CPU of this rank runs on the calling thread
  /// when nothing else runs: rank 0 sends this rank nothing more until it
  /// ends, so no thread hand-off is needed (it costs more than an empty task).
  void post_or_run(incoming_task&& t, int capacity_cpu) {
    {
      std::lock_guard lk(m_);
      if (t.h.cpu < capacity_cpu || running_ > 0 || !q_.empty()) {
        enqueue_locked(std::move(t));
        return;
      }
      ++running_;
    }
    std::vector<int> gpus = take_gpus(t.h.gpu);
    result_header h{};
    std::string payload;
    run(t, gpus, h, payload);
    {
      std::lock_guard lk(m_);
      free_gpus_.insert(free_gpus_.end(), gpus.begin(), gpus.end());
      --running_;
    }
    done_(h, payload);
  }

  void post(incoming_task&& t) {
    std::lock_guard lk(m_);
    enqueue_locked(std::move(t));
  }

  // A woken thread still counts as idle until it takes its task, so compare
  // the queue with the idle threads rather than test for none.
  void enqueue_locked(incoming_task&& t) {
    q_.push_back(std::move(t));
    if (q_.size() > idle_) {
      threads_.emplace_back([this] { loop(); });
    } else {
      cv_.notify_one();
    }
  }

  // Runs what was posted, then ends the threads.
  void join() {
    {
      std::lock_guard lk(m_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    std::unique_lock lk(m_);
    for (;;) {
      ++idle_;
      cv_.wait(lk, [&] { return !q_.empty() || stopping_; });
      --idle_;
      if (q_.empty()) return;
      incoming_task t = std::move(q_.front());
      q_.pop_front();
      ++running_;
      std::vector<int> gpus = take_gpus_locked(t.h.gpu);
      lk.unlock();
      result_header h{};
      std::string payload;
      run(t, gpus, h, payload);
      lk.lock();
      // Resources are back before rank 0 can learn the task ended and place
      // another one here.
      free_gpus_.insert(free_gpus_.end(), gpus.begin(), gpus.end());
      --running_;
      lk.unlock();
      done_(h, payload);
      lk.lock();
    }
  }

  std::vector<int> take_gpus_locked(int n) {
    std::vector<int> gpus;
    for (int g = 0; g < n && !free_gpus_.empty(); ++g) {
      gpus.push_back(free_gpus_.back());
      free_gpus_.pop_back();
    }
    return gpus;
  }
  std::vector<int> take_gpus(int n) {
    std::lock_guard lk(m_);
    return take_gpus_locked(n);
  }

  // A multi-rank task's communicator: MPI_Comm_create_group over the
  // members only (the other ranks take no part), tagged by the task's id
  // and attempt so that two tasks forming at once do not mix.
  MPI_Comm make_gang_comm(const incoming_task& t) {
    if (gang_comm_ == MPI_COMM_NULL) throw error("rankflow: multi-rank task without a communicator to split");
    MPI_Group world_group = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
    check_mpi(MPI_Comm_group(gang_comm_, &world_group), "MPI_Comm_group");
    const int rc = MPI_Group_incl(world_group, static_cast<int>(t.ranks.size()), t.ranks.data(), &group);
    MPI_Group_free(&world_group);
    check_mpi(rc, "MPI_Group_incl");
    void* attr = nullptr;
    int flag = 0;
    MPI_Comm_get_attr(gang_comm_, MPI_TAG_UB, &attr, &flag);
    const std::uint64_t tag_ub = flag && attr ? static_cast<std::uint64_t>(*static_cast<int*>(attr)) : 32767;
    const int tag = static_cast<int>((t.h.id * 64 + static_cast<std::uint64_t>(t.h.attempt)) % tag_ub);
    MPI_Comm c = MPI_COMM_NULL;
    const int rc2 = MPI_Comm_create_group(gang_comm_, group, tag, &c);
    MPI_Group_free(&group);
    check_mpi(rc2, "MPI_Comm_create_group");
    return c;
  }

  void run(incoming_task& t, std::vector<int>& gpus, result_header& r, std::string& payload) {
    r.id = t.h.id;
    r.member = t.h.member;
    r.attempt = t.h.attempt;
    r.start = now_unix_seconds();
    bytes out;
    const bool gang = t.h.members > 1;
    std::shared_ptr<std::atomic<bool>> abandoned;
    MPI_Comm comm = MPI_COMM_SELF;
    if (gang) {
      abandoned = std::make_shared<std::atomic<bool>>(false);
      std::lock_guard lk(m_);
      if (early_abandon_.erase({t.h.id, t.h.attempt})) abandoned->store(true);
      gangs_[{t.h.id, t.h.attempt}] = abandoned;
    }
    try {
      auto def = defs_.find(t.name);
      if (def == defs_.end()) {
        throw substitution_error("task '" + t.name + "' is not defined on rank " + std::to_string(me_.rank) +
                                 ": call rt.define(\"" + t.name + "\", fn) on every rank before drive()");
      }
      if (static_cast<int>(gpus.size()) < t.h.gpu) {
        throw substitution_error("rankflow: task '" + t.name + "' was placed on rank " + std::to_string(me_.rank) +
                                 " with " + std::to_string(t.h.gpu) + " GPU(s) asked but only " +
                                 std::to_string(gpus.size()) + " free there (internal accounting error)");
      }
      core_pool::lease cores = core_pool::instance().acquire(static_cast<unsigned>(std::max(1, t.h.cpu)));
      task_context c;
      c.threads_ = cores.count();
      c.gpus_ = gpus;
      c.rank_ = me_.rank;
      c.host_ = &me_.host;
      c.name_ = &def->first;
      c.id_ = t.h.id;
      c.attempt_ = t.h.attempt;
      if (gang) {
        comm = make_gang_comm(t);
        c.comm_ = comm;
        c.member_ = t.h.member;
        c.members_ = t.h.members;
        c.abandoned_ = abandoned;
      }
      def->second.invoke(c, t.args, t.from, out);
      r.ok = 1;
      // Member 0's value is the task's; the others' need not travel.
      if (t.h.member == 0) payload.assign(out.begin(), out.end());
    } catch (const substitution_error& e) {
      r.final = 1;
      payload = e.what();
    } catch (...) {
      payload = describe_current_exception();
    }
    if (gang) {
      std::lock_guard lk(m_);
      // An abandoned member may have left an operation on comm pending (the
      // failed member never joined it): freeing comm then is not safe, so it
      // is left to MPI_Finalize.
      if (comm != MPI_COMM_SELF && comm != MPI_COMM_NULL && !abandoned->load()) MPI_Comm_free(&comm);
      gangs_.erase({t.h.id, t.h.attempt});
    }
    r.end = now_unix_seconds();
  }

  const std::map<std::string, task_def, std::less<>>& defs_;
  const worker_info& me_;
  done_fn done_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<incoming_task> q_;
  std::vector<std::thread> threads_;
  std::vector<int> free_gpus_;
  unsigned idle_ = 0;
  int running_ = 0;
  bool stopping_ = false;
  MPI_Comm gang_comm_;
  std::map<std::pair<std::uint64_t, int>, std::shared_ptr<std::atomic<bool>>> gangs_;  // running members
  std::set<std::pair<std::uint64_t, int>> early_abandon_;  // abandoned before they started here
};

// How the driver ended, sent with the stop so every rank leaves drive() alike.
enum class stop_kind : std::uint8_t { ok = 0, task_failed = 1, interrupted = 2, other_error = 3 };

struct stop_info {
  stop_kind kind = stop_kind::ok;
  std::int32_t signal = 0;
  std::string message;
  task_error::details task;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& kind& signal& message& task.step& task.rank& task.host& task.item& task.partition& task.attempts& task
        .message& task.task_id;
  }
};

[[noreturn]] inline void rethrow_stop(const stop_info& s) {
  switch (s.kind) {
    case stop_kind::task_failed:
      throw task_error(s.task);
    case stop_kind::interrupted:
      throw interrupted(s.signal, s.message);
    case stop_kind::ok:
    case stop_kind::other_error:
      break;
  }
  throw error("the driver on rank 0 failed: " + s.message);
}


}  // namespace rankflow::detail
