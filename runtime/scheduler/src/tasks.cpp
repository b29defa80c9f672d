// Driver mode: rank 0 places tasks on worker ranks, workers run them on
// threads that hold the cores the task asked for.
//
// Wire protocol, on a communicator drive() duplicates (so nothing else can
// match these tags): rank 0 -> worker on tag_down, worker -> rank 0 on
// tag_up. Every message is one frame whose first byte says what it is. One
// tag per direction keeps MPI's non-overtaking order: a worker sees every
// task sent to it before the stop that follows them.
#include <rankflow/core/detail/agreement.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/core/detail/transport.hpp>
#include <rankflow/runtime/resources.hpp>
#include <rankflow/runtime/runtime.hpp>
#include <rankflow/runtime/tasks.hpp>
#include <rankflow/runtime/threads.hpp>
#include <rankflow/tracking/experiment.hpp>

#include <chrono>
#include <thread>

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
  if (r.ranks != 1) s += " on each of " + std::to_string(r.ranks) + " ranks";
  return s;
}

void task_context::wait(MPI_Request& request) const {
  // MPI_Wait would never return if another member failed before joining the
  // operation: poll, and give up once rank 0 says the task was abandoned.
  for (int spins = 0;; ++spins) {
    int done = 0;
    detail::check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return;
    if (abandoned()) {
      throw error("task '" + name() + "' (id " + std::to_string(id_) + "): member " + std::to_string(member_) +
                  " stopped waiting on the task's communicator: another member failed");
    }
    if (spins > 100) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void task_context::barrier() const {
  MPI_Request r = MPI_REQUEST_NULL;
  detail::check_mpi(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier");
  wait(r);
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
}  // namespace detail
}  // namespace rankflow
