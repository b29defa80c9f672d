// Driver mode: rank 0 places tasks on worker ranks, workers run them on
// threads that hold the cores the task asked for.
//
// Wire protocol, on a communicator drive() duplicates (so nothing else can
// match these tags): rank 0 -> worker on tag_down, worker -> rank 0 on
// tag_up. Every message is one frame whose first byte says what it is. One
// tag per direction keeps MPI's non-overtaking order: a worker sees every
// task sent to it before the stop that follows them.
#include <rankflow/core/agreement.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/core/transport.hpp>
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
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace rankflow {

// ------------------------------------------------------------------ basics

std::string to_string(const resources& r) {
  std::string s = std::to_string(r.cpu) + (r.cpu == 1 ? " CPU, " : " CPUs, ") + std::to_string(r.memory_mb) + " MB";
  if (r.gpu) s += ", " + std::to_string(r.gpu) + (r.gpu == 1 ? " GPU" : " GPUs");
  return s;
}

const char* to_string(task_status s) noexcept {
  switch (s) {
    case task_status::PENDING:
      return "PENDING";
    case task_status::STARTED:
      return "STARTED";
    case task_status::RETRY:
      return "RETRY";
    case task_status::SUCCESS:
      return "SUCCESS";
    case task_status::FAILURE:
      return "FAILURE";
  }
  return "?";
}

bool worker_info::has_label(std::string_view label) const {
  return std::find(labels.begin(), labels.end(), label) != labels.end();
}

namespace {

int parse_int_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < 0) throw usage_error(std::string(name) + " must be a whole number >= 0, got '" + v + "'");
  return static_cast<int>(n);
}

// GPUs this rank may use: CUDA_VISIBLE_DEVICES when set (Slurm sets it per
// task with --gpus-per-task), else the NVIDIA device files of the node
// shared out among the node's ranks.
std::vector<int> detect_gpus(int local_rank, int local_size, std::string& source) {
  std::vector<int> ids;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) {
    source = "CUDA_VISIBLE_DEVICES";
    std::stringstream ss(v);
    std::string item;
    int n = 0;
    while (std::getline(ss, item, ',')) {
      if (item.empty() || item == "-1" || item == "NoDevFiles") break;  // CUDA stops at the first invalid entry
      ids.push_back(n++);
    }
    return ids;
  }
  std::vector<int> devices;
  if (DIR* d = opendir("/dev")) {
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n.size() > 6 && n.substr(0, 6) == "nvidia" &&
          std::all_of(n.begin() + 6, n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        devices.push_back(std::atoi(e->d_name + 6));
      }
    }
    closedir(d);
  }
  std::sort(devices.begin(), devices.end());
  source = devices.empty() ? "no GPU found" : "/dev/nvidia* shared by " + std::to_string(local_size) + " ranks";
  for (std::size_t i = 0; i < devices.size(); ++i) {
    if (static_cast<int>(i % static_cast<std::size_t>(local_size)) == local_rank) ids.push_back(devices[i]);
  }
  return ids;
}

}  // namespace

worker_info detect_worker(MPI_Comm comm, int rank, const std::string& host, const std::vector<std::string>& extra) {
  worker_info w;
  w.rank = rank;
  w.host = host;
  auto [cpus, cpu_source] = core_pool::detect_capacity();
  w.capacity.cpu = static_cast<int>(cpus);
  w.cpu_source = cpu_source;
  const memory_budget mem = query_memory(comm);
  w.capacity.memory_mb = static_cast<std::int64_t>(mem.per_rank_bytes >> 20);
  w.memory_source = mem.source + " shared by " + std::to_string(mem.ranks_on_node) + " ranks";
  if (const int mb = parse_int_env("RANKFLOW_MEMORY_MB"); mb >= 0) {
    w.capacity.memory_mb = mb;
    w.memory_source = "RANKFLOW_MEMORY_MB";
  }
  MPI_Comm node = MPI_COMM_NULL;
  detail::check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int local_rank = 0, local_size = 1;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  w.gpu_ids = detect_gpus(local_rank, local_size, w.gpu_source);
  w.capacity.gpu = static_cast<int>(w.gpu_ids.size());
  w.labels = {"default", host};
  if (w.capacity.gpu > 0) w.labels.emplace_back("gpu");
  for (const auto& l : extra) {
    if (!w.has_label(l)) w.labels.push_back(l);
  }
  return w;
}

namespace detail {

std::string type_name(const std::type_info& t) {
  if (t == typeid(std::string)) return "std::string";
  if (t == typeid(std::vector<std::string>)) return "std::vector<std::string>";
  if (t == typeid(void_result)) return "void";
  std::string s = demangle(t);  // core's demangler (agreement.hpp)
  for (const std::string from : {"std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >"}) {
    for (std::size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), "std::string");
  }
  return s;
}

std::vector<arg_view> split_args(const char* data, std::size_t n) {
  std::vector<arg_view> out;
  std::size_t at = 0;
  while (at < n) {
    if (n - at < 1 + sizeof(std::uint64_t)) throw usage_error("malformed task arguments (truncated header)");
    arg_view a;
    a.kind = static_cast<arg_kind>(data[at]);
    std::uint64_t len = 0;
    std::memcpy(&len, data + at + 1, sizeof len);
    at += 1 + sizeof len;
    if (len > n - at) throw usage_error("malformed task arguments (truncated value)");
    a.data = data + at;
    a.size = len;
    at += len;
    out.push_back(a);
  }
  return out;
}

void encode_artifact_ref(bytes& out, const artifact_ref& a) {
  std::vector<std::string> parts{a.name};
  if (a.from) {
    parts.push_back(a.from->experiment);
    parts.push_back(a.from->run);
  }
  encode(out, parts);
}

void throw_arg_mismatch(const task_def& d, std::size_t i, const std::string& given) {
  throw usage_error("task '" + d.name + "' argument " + std::to_string(i + 1) + " takes " + d.param_names[i] +
                    ", got " + given + ": pass a " + d.param_names[i] + " (or rankflow::artifact(\"name\"))");
}

void overrides::merge(const overrides& o) {
  if (o.need) need = o.need;
  labels.insert(labels.end(), o.labels.begin(), o.labels.end());
  if (o.retries) retries = o.retries;
  if (o.backoff_s) backoff_s = o.backoff_s;
  if (o.from) from = o.from;
}

// ------------------------------------------------------------ substitution

namespace {

struct cached_run {
  std::string key;  // file, run spec, size and mtime
  std::string id;
  tracking::run_record rec;
};

std::string describe_source(const source& s) {
  return (s.run.empty() ? std::string("the latest run") : "run '" + s.run + "'") + " of " + s.experiment;
}

// Looks up the run `s` names; reading a file is not free, so the last few
// runs read on this rank are kept while their file does not change.
// Entries are shared: a reader keeps its run even after another thread of
// this rank pushes it out of the cache.
std::shared_ptr<const cached_run> load_source(const source& s) {
  static std::mutex m;
  static std::list<std::shared_ptr<const cached_run>> cache;
  struct stat st {};
  if (::stat(s.experiment.c_str(), &st) != 0) {
    throw substitution_error("experiment file " + s.experiment +
                             " does not exist (as seen from this rank's directory)");
  }
  const std::string key = s.experiment + '\n' + s.run + '\n' + std::to_string(st.st_size) + '\n' +
                          std::to_string(st.st_mtim.tv_sec) + '.' + std::to_string(st.st_mtim.tv_nsec);
  std::lock_guard lk(m);
  for (auto it = cache.begin(); it != cache.end(); ++it) {
    if ((*it)->key == key) {
      cache.splice(cache.begin(), cache, it);
      return cache.front();
    }
  }
  std::vector<tracking::run_info> runs;
  try {
    runs = tracking::list_runs(s.experiment);
  } catch (const std::exception& e) {
    throw substitution_error("cannot read " + s.experiment + ": " + e.what());
  }
  const tracking::run_info* pick = nullptr;
  for (const auto& r : runs) {
    const bool match = s.run.empty() || r.id == s.run || r.name == s.run;
    if (match && (!pick || r.id == s.run || (pick->id != s.run && r.start_time >= pick->start_time))) pick = &r;
  }
  if (!pick) {
    std::string have;
    for (const auto& r : runs) have += (have.empty() ? "" : ", ") + r.id + " (" + r.name + ")";
    throw substitution_error("no " + (s.run.empty() ? std::string("run") : "run with id or name '" + s.run + "'") +
                             " in " + s.experiment + "; it has: " + (have.empty() ? "no runs" : have));
  }
  auto c = std::make_shared<cached_run>();
  c->key = key;
  c->id = pick->id;
  try {
    c->rec = tracking::load_run(s.experiment, pick->id, true);
  } catch (const std::exception& e) {
    throw substitution_error("cannot read run " + pick->id + " of " + s.experiment + ": " + e.what());
  }
  cache.push_front(std::move(c));
  if (cache.size() > 4) cache.pop_back();
  return cache.front();
}

}  // namespace

tracking::field_record load_artifact(const arg_view& a, const std::optional<source>& fallback, const std::string& task,
                                     std::size_t arg, std::string* where) {
  const auto parts = decode<std::vector<std::string>>(a.data, a.size);
  const std::string what = "argument " + std::to_string(arg + 1) + " of task '" + task + "'";
  std::optional<source> src = fallback;
  if (parts.size() == 3) src = source{parts[1], parts[2]};
  if (!src || src->experiment.empty()) {
    throw substitution_error(what + " is rankflow::artifact(\"" + parts.at(0) +
                             "\") but no source run was given: pass rankflow::source{file, run} to define(), "
                             "Submitter::from() or artifact()");
  }
  const auto held = load_source(*src);
  const cached_run& run = *held;
  const auto& fields = run.rec.fields;
  auto it = fields.find(parts.at(0));
  if (it == fields.end()) {
    std::string have;
    for (const auto& [path, f] : fields) {
      if (path.rfind(reserved_namespace, 0) == 0) continue;
      have += (have.empty() ? "" : ", ") + path;
    }
    throw substitution_error(what + ": artifact '" + parts[0] + "' not found in run " + run.id + " of " +
                             src->experiment + " (" + describe_source(*src) + "); it has: " + have);
  }
  *where = what + " (artifact '" + parts[0] + "' of run " + run.id + " in " + src->experiment + ")";
  tracking::field_record f = it->second;
  if (f.type == field_type::array) {
    try {
      f.series.f = tracking::read_array(src->experiment, f.array);
    } catch (const std::exception& e) {
      throw substitution_error(*where + ": cannot read the array: " + e.what());
    }
  }
  return f;
}

// ------------------------------------------------------------------- wire

namespace {

constexpr int tag_down = 40;  // rank 0 -> worker (segments on 41)
constexpr int tag_up = 42;    // worker -> rank 0 (segments on 43)

enum class msg : std::uint8_t { task = 1, stop = 2, result = 3, bye = 4 };

struct task_header {
  std::uint64_t id;
  std::int32_t attempt;
  std::int32_t cpu;
  std::int64_t memory_mb;
  std::int32_t gpu;
  std::uint32_t name_len;
  std::uint32_t from_len;  // "experiment\0run", 0 for none
  std::uint32_t pad;
};

struct result_header {
  std::uint64_t id;
  double start;
  double end;
  std::uint8_t ok;
  std::uint8_t final;  // a failure retries cannot fix
  std::uint8_t pad[6];
};

template <class T>
void put(bytes& out, const T& v) {
  const auto* p = reinterpret_cast<const char*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

// A task as a worker receives it; `args` point into `frame`.
struct incoming_task {
  task_header h{};
  std::string name;
  std::optional<source> from;
  bytes frame;
  std::vector<arg_view> args;
};

incoming_task parse_task(frame_in&& f) {
  incoming_task t;
  const char* p = f.payload() + 1;
  std::memcpy(&t.h, p, sizeof t.h);
  p += sizeof t.h;
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
  executor(const std::map<std::string, task_def, std::less<>>& defs, const worker_info& me, done_fn done)
      : defs_(defs), me_(me), done_(std::move(done)), free_gpus_(me.gpu_ids) {}
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

  void run(incoming_task& t, std::vector<int>& gpus, result_header& r, std::string& payload) {
    r.id = t.h.id;
    r.start = now_unix_seconds();
    bytes out;
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
      def->second.invoke(c, t.args, t.from, out);
      r.ok = 1;
      payload.assign(out.begin(), out.end());
    } catch (const substitution_error& e) {
      r.final = 1;
      payload = e.what();
    } catch (...) {
      payload = describe_current_exception();
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

[[noreturn]] void rethrow_stop(const stop_info& s) {
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

}  // namespace

// ------------------------------------------------------------ rank 0 state

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
};

struct group_state {
  enum class kind { sequence, parallel, mapreduce } k = kind::parallel;
  std::vector<std::shared_ptr<task_rec>> recs;  // mapreduce: the combiner is last
  std::vector<bytes> own;                       // each call's own arguments, encoded
};

// The error of a task that never ran, and why.
task_error::details not_run(const task_rec& rec, const std::string& why) {
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
    if (n.cpu < 1 || n.memory_mb < 0 || n.gpu < 0) {
      throw usage_error("task '" + d.name + "': resources need cpu >= 1, memory_mb >= 0 and gpu >= 0, got " +
                        std::to_string(n.cpu) + ", " + std::to_string(n.memory_mb) + ", " + std::to_string(n.gpu));
    }
    if (rec->retries < 0) throw usage_error("task '" + d.name + "': retries must be >= 0");
    check_labels(rec->labels);
    rec->candidates = candidates_for(d, rec->labels, n);
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
      const auto& c = wi.capacity;
      if (n.cpu <= c.cpu && n.memory_mb <= c.memory_mb && n.gpu <= c.gpu) list->push_back(static_cast<int>(w));
      if (!largest || std::tie(c.cpu, c.memory_mb, c.gpu) >
                          std::tie(largest->capacity.cpu, largest->capacity.memory_mb, largest->capacity.gpu)) {
        largest = &wi;
      }
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
    while (byes_ < static_cast<int>(workers_.size())) {
      progress_locked() ? bo.reset() : bo.wait();
    }
    for (auto& s : sends_) s.wait();
    sends_.clear();
  }

 private:
  void finish(const result_header& h, std::string&& payload) {
    auto it = in_flight_.find(h.id);
    if (it == in_flight_.end()) return;  // after a shutdown: nobody waits for it
    auto rec = it->second;
    in_flight_.erase(it);
    auto& f = free_[static_cast<std::size_t>(rec->worker)];
    if (f.cpu <= 0 && f.cpu + rec->need.cpu > 0) ++open_workers_;
    f.cpu += rec->need.cpu;
    f.memory_mb += rec->need.memory_mb;
    f.gpu += rec->need.gpu;
    const auto& w = workers_[static_cast<std::size_t>(rec->worker)];
    if (h.ok) {
      rec->status = task_status::SUCCESS;
      rec->result = std::move(payload);
    } else if (!h.final && rec->attempts <= rec->retries && !stopping_) {
      const double wait_s = std::min(60.0, rec->backoff_s * std::pow(2.0, rec->attempts - 1));
      log::warn() << "task '" << rec->def->name << "' (id " << rec->id << ") failed on rank " << w.rank << " (host "
                  << w.host << "), attempt " << rec->attempts << " of " << rec->retries + 1 << ": " << payload
                  << "; retrying in " << wait_s << " s";
      rec->status = task_status::RETRY;
      rec->not_before =
          std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(wait_s));
      queue_.push_back(rec);
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

  bool fits(const resources& free, const resources& need) const {
    return need.cpu <= free.cpu && need.memory_mb <= free.memory_mb && need.gpu <= free.gpu;
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
      // First fit from a rotating start (spreads tasks, and stops at the
      // first free worker instead of scanning them all); away from the
      // worker it just failed on when another fits.
      const auto& cand = *rec->candidates;
      const std::size_t m = cand.size();
      int best = -1, fallback = -1;
      for (std::size_t k = 0; k < m; ++k) {
        const int w = cand[(cursor_ + k) % m];
        const auto i = static_cast<std::size_t>(w);
        if (reserved_[i] || !fits(free_[i], rec->need)) continue;
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
      if (hold >= 0) {
        reserved_[static_cast<std::size_t>(hold)] = 1;
        if (free_[static_cast<std::size_t>(hold)].cpu > 0) --open_workers_;  // for this pass only
        held_.push_back(hold);
      }
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
    auto& f = free_[i];
    const bool was_open = f.cpu > 0;
    f.cpu -= rec->need.cpu;
    f.memory_mb -= rec->need.memory_mb;
    f.gpu -= rec->need.gpu;
    if (was_open && f.cpu <= 0) --open_workers_;
    rec->status = task_status::STARTED;
    rec->worker = w;
    rec->rank = workers_[i].rank;
    ++rec->attempts;
    in_flight_[rec->id] = rec;

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
    bytes frame = new_frame();
    frame.reserve(frame_header_bytes + 1 + sizeof h + h.name_len + from.size() + rec->args.size());
    frame.push_back(static_cast<char>(msg::task));
    put(frame, h);
    frame.insert(frame.end(), rec->def->name.begin(), rec->def->name.end());
    frame.insert(frame.end(), from.begin(), from.end());
    frame.insert(frame.end(), rec->args.begin(), rec->args.end());
    if (local_) {
      frame_in in;
      in.buf = std::move(frame);
      exec_->post(parse_task(std::move(in)));
    } else {
      sends_.push_back(isend_frame(comm_, workers_[i].rank, tag_down, std::move(frame), st_.cfg.segment_bytes));
    }
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
};

namespace {
bool has_ended(const task_rec& r) { return r.status == task_status::SUCCESS || r.status == task_status::FAILURE; }

// After drive() a future reads what its task left; one that never ran says so.
void check_after_drive(const task_rec& rec) {
  if (!has_ended(rec)) {
    throw usage_error("task '" + rec.def->name + "' never ran: the drive() it was submitted in has ended");
  }
}

const std::string& result_or_throw(const task_rec& rec) {
  if (rec.status == task_status::SUCCESS) return rec.result;
  if (rec.error) throw task_error(*rec.error);
  throw usage_error("task '" + rec.def->name + "' has not ended");
}
}  // namespace

bool wait_task(const engine_handle& h, const std::shared_ptr<task_rec>& rec,
               const std::chrono::steady_clock::time_point* deadline) {
  if (!h.engine) {
    check_after_drive(*rec);
    return true;
  }
  return h.engine->wait(rec.get(), deadline);
}

task_status status_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) return rec.status;
  std::lock_guard lk(h.engine->mutex());
  h.engine->progress_locked();
  return rec.status;
}

const std::string& result_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) {
    check_after_drive(rec);
    return result_or_throw(rec);
  }
  std::lock_guard lk(h.engine->mutex());
  return result_or_throw(rec);
}

int rank_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) return rec.rank;
  std::lock_guard lk(h.engine->mutex());
  return rec.rank;
}
int attempts_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) return rec.attempts;
  std::lock_guard lk(h.engine->mutex());
  return rec.attempts;
}
std::uint64_t id_of(const task_rec& rec) { return rec.id; }
const std::string& name_of(const task_rec& rec) { return rec.def->name; }

// ------------------------------------------------------------------ workers

namespace {

// A worker rank's side of drive(): receive tasks, run them, send results,
// until rank 0 says stop. Returns how the driver ended.
stop_info serve(runtime_state& st, MPI_Comm comm, const std::map<std::string, task_def, std::less<>>& defs,
                const worker_info& me) {
  std::mutex send_m;  // segments of two large results must not interleave
  executor exec(defs, me, [&](const result_header& h, const std::string& payload) {
    bytes f = new_frame();
    f.reserve(frame_header_bytes + 1 + sizeof h + payload.size());
    f.push_back(static_cast<char>(msg::result));
    put(f, h);
    f.insert(f.end(), payload.begin(), payload.end());
    std::lock_guard lk(send_m);
    isend_frame(comm, 0, tag_up, std::move(f), st.cfg.segment_bytes).wait();
  });
  backoff bo(1000, 200);  // a driver that waits on each result sends the next task within microseconds
  stop_info stop;
  for (;;) {
    frame_in f;
    if (!try_recv_frame(comm, 0, tag_down, st.cfg.segment_bytes, f)) {
      bo.wait();
      continue;
    }
    bo.reset();
    const auto kind = static_cast<msg>(f.payload()[0]);
    if (kind == msg::task) {
      exec.post_or_run(parse_task(std::move(f)), me.capacity.cpu);
    } else if (kind == msg::stop) {
      stop = decode<stop_info>(f.payload() + 1, f.payload_size() - 1);
      break;
    }
  }
  exec.join();  // every result is sent before the goodbye
  bytes bye = new_frame();
  bye.push_back(static_cast<char>(msg::bye));
  std::lock_guard lk(send_m);
  isend_frame(comm, 0, tag_up, std::move(bye), st.cfg.segment_bytes).wait();
  return stop;
}

// Every rank's worker_info, on rank 0 (empty elsewhere).
std::vector<worker_info> gather_workers(MPI_Comm comm, int rank, int size, const worker_info& me) {
  bytes mine;
  encode(mine, me);
  int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  check_mpi(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, comm), "MPI_Gather");
  int total = 0;
  for (int r = 0; r < size; ++r) {
    displs[static_cast<std::size_t>(r)] = total;
    total += sizes[static_cast<std::size_t>(r)];
  }
  bytes all(rank == 0 ? static_cast<std::size_t>(total) : 0);
  check_mpi(MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), sizes.data(), displs.data(), MPI_CHAR, 0, comm),
            "MPI_Gatherv");
  std::vector<worker_info> out;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      out.push_back(decode<worker_info>(all.data() + displs[static_cast<std::size_t>(r)],
                                        static_cast<std::size_t>(sizes[static_cast<std::size_t>(r)])));
    }
  }
  return out;
}

stop_info describe_failure(std::exception_ptr e) {
  stop_info s;
  try {
    std::rethrow_exception(e);
  } catch (const task_error& t) {
    s.kind = stop_kind::task_failed;
    s.task = t.info();
    s.message = t.what();
  } catch (const interrupted& i) {
    s.kind = stop_kind::interrupted;
    s.signal = i.signal();
    s.message = i.what();
  } catch (...) {
    s.kind = stop_kind::other_error;
    s.message = describe_current_exception();
  }
  return s;
}

}  // namespace
}  // namespace detail

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
  const worker_info me = detect_worker(comm, st_.rank, st_.host, st_.cfg.labels);
  auto all = detail::gather_workers(comm, st_.rank, st_.size, me);

  if (st_.rank != 0) {
    const auto stop = detail::serve(st_, comm, tasks_, me);
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
  if (failure) std::rethrow_exception(failure);
}

}  // namespace rankflow
