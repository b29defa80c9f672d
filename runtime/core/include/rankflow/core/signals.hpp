// Time-limit and cancellation signals (SIGTERM, SIGUSR1).
//
// Slurm sends SIGTERM at a job's time limit (and on scancel), and SIGUSR1 some
// time before when asked (`--signal=USR1@60`). rankflow::Runtime catches the
// first of either: the collective call in progress stops handing out work,
// every rank leaves it with rankflow::interrupted, and a tracked run is marked
// "killed" with the signal as its reason. A second signal gets the default
// action (the process ends at once).
#pragma once

namespace rankflow {

/// The signal received and not yet acted upon, or 0.
int pending_signal() noexcept;
/// "SIGTERM", "SIGUSR1", ...
const char* signal_name(int sig) noexcept;

namespace detail {
/// Catches SIGTERM and SIGUSR1 once each (SA_RESETHAND).
void install_signal_handlers();
/// Records `sig` as received (if none was): a rank that learns of another
/// rank's signal through a collective call behaves as if it got it too.
void note_signal(int sig) noexcept;
/// For tests: forget a received signal.
void clear_pending_signal() noexcept;
}  // namespace detail

}  // namespace rankflow
