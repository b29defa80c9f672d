#include <rankflow/core/signals.hpp>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <limits>

#include <rankflow/core/clock.hpp>

namespace rankflow {

namespace {
std::atomic<int> g_signal{0};
// The job's end and the time to stop handing out work (Unix seconds; 0: none).
std::atomic<double> g_deadline{0.0};
std::atomic<double> g_stop_at{0.0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be safe to set in a handler");
static_assert(deadline_signal == SIGALRM, "deadline_signal is SIGALRM's number");

extern "C" void on_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }
}  // namespace

int pending_signal() noexcept {
  const int s = g_signal.load(std::memory_order_relaxed);
  if (s != 0) return s;
  const double stop_at = g_stop_at.load(std::memory_order_relaxed);
  if (stop_at > 0 && detail::unix_now() >= stop_at) {
    detail::note_signal(deadline_signal);
    return g_signal.load(std::memory_order_relaxed);
  }
  return 0;
}

const char* signal_name(int sig) noexcept {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGINT:
      return "SIGINT";
    case deadline_signal:
      return "the job's time limit (rankflow's deadline)";
    case 0:
      return "no signal";
    default:
      return "a signal";
  }
}

namespace detail {
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;  // once: a second signal ends the process
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}
void note_signal(int sig) noexcept {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig, std::memory_order_relaxed);
}
void clear_pending_signal() noexcept { g_signal.store(0, std::memory_order_relaxed); }

void set_deadline(double end, double margin_s) noexcept {
  g_deadline.store(end, std::memory_order_relaxed);
  g_stop_at.store(end > 0 ? end - std::max(0.0, margin_s) : 0.0, std::memory_order_relaxed);
}

double deadline() noexcept { return g_deadline.load(std::memory_order_relaxed); }

double seconds_to_stop() noexcept {
  const double stop_at = g_stop_at.load(std::memory_order_relaxed);
  if (stop_at <= 0) return std::numeric_limits<double>::infinity();
  return stop_at - unix_now();
}
}  // namespace detail

}  // namespace rankflow
