#include <rankflow/core/log.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace rankflow::log {

namespace {
std::atomic<log_level> g_level{log_level::info};
std::mutex g_identity_mutex;
std::string g_run = "rankflow";
int g_rank = 0;

struct context {
  std::string step = "main";
  std::int64_t partition = -1;
};
thread_local context t_ctx;

std::string timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(ms));
  return buf;
}
}  // namespace

void set_level(log_level level) { g_level.store(level, std::memory_order_relaxed); }
log_level level() noexcept { return g_level.load(std::memory_order_relaxed); }

void set_identity(std::string run, int rank) {
  std::lock_guard lock(g_identity_mutex);
  g_run = std::move(run);
  g_rank = rank;
}

scope::scope(std::string_view step, std::int64_t partition)
    : prev_step_(std::move(t_ctx.step)), prev_partition_(t_ctx.partition) {
  t_ctx.step = std::string(step);
  t_ctx.partition = partition;
}

scope::~scope() {
  t_ctx.step = std::move(prev_step_);
  t_ctx.partition = prev_partition_;
}

void set_partition(std::int64_t partition) noexcept { t_ctx.partition = partition; }

std::string prefix() {
  std::string run;
  int rank = 0;
  {
    std::lock_guard lock(g_identity_mutex);
    run = g_run;
    rank = g_rank;
  }
  std::string part = t_ctx.partition >= 0 ? std::to_string(t_ctx.partition) : std::string("-");
  return "[" + run + "/" + t_ctx.step + "/" + part + " (rank " + std::to_string(rank) + ", pid " +
         std::to_string(::getpid()) + ")]";
}

void write(log_level lvl, std::string_view message) {
  if (lvl > level()) return;
  std::string out = timestamp() + " " + prefix() + " ";
  if (lvl == log_level::error) out += "ERROR: ";
  if (lvl == log_level::warn) out += "WARNING: ";
  out.append(message);
  out += '\n';
  // One write(2) per line: atomic with respect to other processes' lines.
  const char* p = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace rankflow::log
