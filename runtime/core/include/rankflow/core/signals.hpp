// Time-limit and cancellation signals (SIGTERM, SIGUSR1).
//
// Slurm sends SIGTERM at a job's time limit (and on scancel), and SIGUSR1 some
// time before when asked (`--signal=USR1@60`). rankflow::Runtime catches the
// first of either: the collective call in progress stops handing out work,
// every rank leaves it with rankflow::interrupted, and a tracked run is marked
// "killed" with the signal as its reason. A second signal gets the default
// action (the process ends at once).
//
// A job's own end works the same way without a signal: rank 0, told when the
// allocation ends (--deadline, --time-left, or Slurm itself), notes
// deadline_signal itself once the end minus a checkpoint margin is reached,
// or earlier when the next partition could not finish by then.
#pragma once

namespace rankflow {

/// What rankflow notes, as if it were a signal, when the job's time is nearly
/// up (--deadline): SIGALRM's number. rankflow::interrupted::signal() gives it.
inline constexpr int deadline_signal = 14;

/// The signal received and not yet acted upon, or 0. On the rank that knows
/// the job's deadline (rank 0), deadline_signal once its stop time is reached.
int pending_signal() noexcept;
/// "SIGTERM", "SIGUSR1", ..., and for deadline_signal "the job's time limit".
const char* signal_name(int sig) noexcept;

namespace detail {
/// Catches SIGTERM and SIGUSR1 once each (SA_RESETHAND).
void install_signal_handlers();
/// Records `sig` as received (if none was): a rank that learns of another
/// rank's signal through a collective call behaves as if it got it too.
void note_signal(int sig) noexcept;
/// For tests: forget a received signal.
void clear_pending_signal() noexcept;

/// This process knows that the job ends at `end` (Unix seconds) and must
/// stop handing out work `margin_s` before (its checkpoint): from then on
/// pending_signal() reports deadline_signal. 0 forgets it.
void set_deadline(double end, double margin_s) noexcept;
/// The job's end, 0 when unknown.
double deadline() noexcept;
/// Seconds until the stop time (the end minus the margin); +infinity when
/// no deadline is known. Negative once it passed.
double seconds_to_stop() noexcept;
}  // namespace detail

}  // namespace rankflow
