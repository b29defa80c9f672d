#include <rankflow/runtime/threads.hpp>

#include <sched.h>

#include <cstdlib>

#include <rankflow/core/error.hpp>

namespace rankflow {

namespace {
unsigned parse_positive(const char* v) {
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n > 0 && n < 1 << 20) ? static_cast<unsigned>(n) : 0;
}
}  // namespace

std::pair<unsigned, std::string> core_pool::detect_capacity() {
  if (const char* v = std::getenv("RANKFLOW_MAX_THREADS"); v && *v) {
    const unsigned n = parse_positive(v);
    if (n == 0) {
      throw usage_error(std::string("RANKFLOW_MAX_THREADS must be a whole number >= 1, got '") + v + "'");
    }
    return {n, "RANKFLOW_MAX_THREADS"};
  }
  if (const unsigned n = parse_positive(std::getenv("SLURM_CPUS_PER_TASK")); n) return {n, "SLURM_CPUS_PER_TASK"};
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
    return {static_cast<unsigned>(CPU_COUNT(&set)), "the CPU affinity mask"};
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return {hw ? hw : 1, "std::thread::hardware_concurrency"};
}

core_pool& core_pool::instance() {
  static core_pool pool(detect_capacity().first);
  return pool;
}

core_pool::core_pool(unsigned capacity) : capacity_(capacity) {
  if (capacity == 0) throw usage_error("core_pool: the capacity must be at least 1 core");
}

void core_pool::check_request(unsigned n) const {
  if (n == 0) throw usage_error("core_pool: a request must ask for at least 1 core");
  if (n > capacity_) {
    throw resource_error("a task asks for " + std::to_string(n) + " cores but this rank has " +
                         std::to_string(capacity_) + " (" + detect_capacity().second +
                         " or a scoped override): ask for fewer, or give the rank more CPUs "
                         "(--cpus-per-task, RANKFLOW_MAX_THREADS)");
  }
}

void core_pool::check(unsigned n) const {
  std::lock_guard lk(m_);
  check_request(n);
}

core_pool::lease core_pool::acquire(unsigned n) {
  std::unique_lock lk(m_);
  check_request(n);
  const std::uint64_t ticket = next_ticket_++;
  // Strict arrival order: a request waits for its turn, then for its cores.
  // Later requests wait behind it, so no request waits forever.
  cv_.wait(lk, [&] { return serving_ == ticket && (in_use_ + n <= capacity_ || n > capacity_); });
  if (n > capacity_) {  // the capacity shrank while it waited
    ++serving_;
    cv_.notify_all();
    check_request(n);
  }
  in_use_ += n;
  ++serving_;
  cv_.notify_all();
  return lease(this, n);
}

std::optional<core_pool::lease> core_pool::try_acquire(unsigned n) {
  std::lock_guard lk(m_);
  check_request(n);
  if (serving_ != next_ticket_ || in_use_ + n > capacity_) return std::nullopt;
  ++next_ticket_;
  ++serving_;
  in_use_ += n;
  return lease(this, n);
}

void core_pool::give_back(unsigned n) noexcept {
  {
    std::lock_guard lk(m_);
    in_use_ -= n;
  }
  cv_.notify_all();
}

unsigned core_pool::capacity() const {
  std::lock_guard lk(m_);
  return capacity_;
}
unsigned core_pool::in_use() const {
  std::lock_guard lk(m_);
  return in_use_;
}
unsigned core_pool::waiting() const {
  std::lock_guard lk(m_);
  return static_cast<unsigned>(next_ticket_ - serving_);
}

void core_pool::set_capacity(unsigned capacity) {
  if (capacity == 0) throw usage_error("core_pool: the capacity must be at least 1 core");
  {
    std::lock_guard lk(m_);
    capacity_ = capacity;
  }
  cv_.notify_all();
}

core_pool::scoped_capacity::scoped_capacity(unsigned capacity, core_pool& pool)
    : pool_(pool), previous_(pool.capacity()) {
  pool_.set_capacity(capacity);
}
core_pool::scoped_capacity::~scoped_capacity() { pool_.set_capacity(previous_); }

core_pool::lease& core_pool::lease::operator=(lease&& o) noexcept {
  if (this != &o) {
    release();
    pool_ = std::exchange(o.pool_, nullptr);
    n_ = std::exchange(o.n_, 0);
  }
  return *this;
}

void core_pool::lease::release() noexcept {
  if (pool_ && n_) pool_->give_back(n_);
  pool_ = nullptr;
  n_ = 0;
}

}  // namespace rankflow
