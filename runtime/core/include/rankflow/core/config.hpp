// Common flags every rankflow program understands, read from argv and from
// RANKFLOW_* environment variables (argv wins). Parsing is pure (no MPI) so it
// can be tested and used to print help before MPI starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rankflow {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };
enum class progress_mode { automatic, on, off };

struct config {
  /// foreach: how many ranks may run splits at once (Metaflow's --max-workers).
  std::size_t max_workers = 16;
  /// foreach: refuse to start more splits than this (Metaflow's --max-num-splits).
  std::size_t max_num_splits = 100;
  log_level level = log_level::info;
  progress_mode progress = progress_mode::automatic;
  /// Seconds between progress lines when stderr is not a terminal (Slurm logs).
  double progress_interval_s = 5.0;
  /// Largest single MPI message; bigger payloads are sent in segments. MPI counts
  /// are `int`, so anything near 2 GiB must be split. Tunable for tests.
  std::size_t segment_bytes = std::size_t{1} << 30;
  /// Experiment file that Runtime::start_run tracks into.
  std::string experiment = "rankflow.h5";
  /// async | sync | read-only | debug (see rankflow::tracking_mode).
  std::string tracking_mode = "async";
  /// --resume: "" (not given), "last", "no" or a run id such as "RUN-3".
  /// Runtime::start_run continues that run; see run_options::resume.
  std::string resume;
  /// --on-change: "" (not given), "refuse" or "restart"; see run_options::on_change.
  std::string on_change;
  /// --labels: extra worker labels of this rank for tasks (Scheduler::require);
  /// every worker also has "default", its host name and "gpu" when it sees one.
  std::vector<std::string> labels;
  /// --peer-timeout: a rank not heard from for this long (its node down or cut
  /// off) ends the job with an error naming it, instead of a silent hang.
  /// 0 turns the watch off.
  double peer_timeout_s = 60.0;
  /// --spin-us: how long an idle rank keeps polling (yielding the CPU between
  /// polls) after its last message before it starts to sleep between polls.
  /// Short waits inside a call (a result, the end of the call) then cost
  /// what MPI costs instead of a sleep (~50 us at least); a rank idle for
  /// longer sleeps (backing off to 1 ms) and leaves the core to others.
  unsigned spin_us = 200;
  /// --small-call-us: a call whose work is known (from its last execution)
  /// to take at most this long per rank runs as a small call: a static split
  /// and one exchange instead of the scheduling protocol. 0: never.
  unsigned small_call_us = 50;
  /// Name shown in log prefixes; defaults to the program name.
  std::string run_name;
  bool help = false;
};

/// Parses and removes rankflow's own flags from argv (like MPI_Init removes its
/// own); everything else is left in place, in order, for the program's parser.
/// `--help`/`-h` sets config::help and stays in argv so the program can print
/// its own help too. Throws usage_error naming the flag and the accepted values.
config parse_config(int& argc, char** argv);

/// Same, from an explicit list of arguments and with environment variables
/// taken from `getenv`. Returns the arguments that were not rankflow's.
config parse_config(const std::vector<std::string>& args, std::vector<std::string>* rest);

/// The text `--help` prints for rankflow's own flags.
std::string help_text();

const char* to_string(log_level l) noexcept;

}  // namespace rankflow
