#include <rankflow/core/signals.hpp>

#include <csignal>

#include <atomic>

namespace rankflow {

namespace {
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be safe to set in a handler");

extern "C" void on_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }
}  // namespace

int pending_signal() noexcept { return g_signal.load(std::memory_order_relaxed); }

const char* signal_name(int sig) noexcept {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGINT:
      return "SIGINT";
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
}  // namespace detail

}  // namespace rankflow
