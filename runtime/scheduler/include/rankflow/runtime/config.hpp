// Every rankflow program's flags: core's, tracking's and the scheduler's,
// read from argv and from RANKFLOW_* environment variables (argv wins).
// Each layer declares the flags it reads (core/flags.hpp, tracking/flags.hpp,
// the scheduler_flags below); `config` is all three, so a program sees one set
// of settings (Runtime::settings()).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <rankflow/core/flags.hpp>
#include <rankflow/tracking/flags.hpp>

namespace rankflow {

enum class progress_mode { automatic, on, off };

/// --backups: backup copies of partitions on slow ranks (dynamic calls).
/// automatic: on for calls with retries > 0, whose partitions may already run
/// more than once; on: every dynamic call; off: never.
enum class backup_mode { automatic, on, off };

/// The flags the scheduler reads.
struct scheduler_flags {
  /// foreach: how many ranks may run splits at once (Metaflow's --max-workers).
  std::size_t max_workers = 16;
  /// foreach: refuse to start more splits than this (Metaflow's --max-num-splits).
  std::size_t max_num_splits = 100;
  progress_mode progress = progress_mode::automatic;
  /// Seconds between progress lines when stderr is not a terminal (Slurm logs).
  double progress_interval_s = 5.0;
  /// --labels: extra worker labels of this rank for tasks (Scheduler::require);
  /// every worker also has "default", its host name and "gpu" when it sees one.
  std::vector<std::string> labels;
  /// --peer-timeout: a rank not heard from for this long (its node down or cut
  /// off) ends the job with an error naming it, instead of a silent hang.
  /// 0 turns the watch off.
  double peer_timeout_s = 60.0;
  /// --small-call-us: a call whose work is known (from its last execution)
  /// to take at most this long per rank runs as a small call: a static split
  /// and one exchange instead of the scheduling protocol. 0: never.
  unsigned small_call_us = 50;
  /// --deadline: when the job's allocation ends: "auto" (ask Slurm in a
  /// Slurm job), "off", or a time (Unix seconds or ISO 8601). Rank 0 stops
  /// handing out work that could not finish before it (docs/usage.md).
  std::string deadline = "auto";
  /// --time-left: the allocation ends this many seconds after the start (0: not given).
  double time_left_s = 0;
  backup_mode backups = backup_mode::automatic;
  /// --deadline-margin: seconds before the end to stop (the checkpoint);
  /// < 0: a tenth of the time left at start, from 5 to 60 s.
  double deadline_margin_s = -1;
};

struct config : core_flags, tracking_flags, scheduler_flags {
  bool help = false;
};

namespace flags {
/// The scheduler's flags, bound to `f`.
table scheduler_table(scheduler_flags& f);
}  // namespace flags

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

}  // namespace rankflow
