// Command-line flags, the ground floor: one table per layer drives argv, the
// environment and the help text, so they cannot drift. Core declares only the
// flags core itself reads (log level, message size, idle polling, the run's
// name); tracking and the scheduler declare theirs next to the code that reads
// them (rankflow/tracking/flags.hpp, rankflow/runtime/config.hpp), and
// rankflow::parse_config parses all three tables at once. Parsing is pure (no
// MPI) so it can be tested and print help before MPI starts.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace rankflow {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };

const char* to_string(log_level l) noexcept;

/// The flags core reads.
struct core_flags {
  log_level level = log_level::info;
  /// Largest single MPI message; bigger payloads are sent in segments. MPI counts
  /// are `int`, so anything near 2 GiB must be split. Tunable for tests.
  std::size_t segment_bytes = std::size_t{1} << 30;
  /// --spin-us: how long an idle rank keeps polling (yielding the CPU between
  /// polls) after its last message before it starts to sleep between polls.
  /// Short waits inside a call (a result, the end of the call) then cost
  /// what MPI costs instead of a sleep (~50 us at least); a rank idle for
  /// longer sleeps (backing off to 1 ms) and leaves the core to others.
  unsigned spin_us = 200;
  /// Name shown in log prefixes; defaults to the program name.
  std::string run_name;
};

namespace flags {

/// One flag of a layer's table, bound to the struct it fills.
struct flag {
  const char* name;  // without leading dashes
  const char* env;
  const char* value;  // the value's name in the help text
  const char* help;
  /// Checks and stores a value; throws usage_error naming `flag` (the flag or
  /// the environment variable it came from) and the accepted values.
  std::function<void(std::string_view flag, std::string_view value)> apply;
  /// Flags whose value may be left out ("--resume"): the value used then, and
  /// which next arguments are taken as the value.
  const char* implicit = nullptr;
  bool (*takes)(std::string_view next) = nullptr;
};
using table = std::vector<flag>;

/// Core's own flags, bound to `f`.
table core_table(core_flags& f);

/// Applies the environment, then `args` (argv wins), to the flags of `t`.
/// Arguments that are not in `t` are appended to `rest` in order; so is
/// `--help`/`-h`, which also returns true (the program prints its own help too).
bool parse(const table& t, const std::vector<std::string>& args, std::vector<std::string>* rest);

/// Compacts argv in place to the arguments in `rest` (the program's own,
/// in order); the pointers are reused, so nothing needs freeing.
void keep_only(int& argc, char** argv, const std::vector<std::string>& rest);

/// "  --name VALUE      help  [ENV]" lines, one per flag.
std::string help_lines(const table& t);

// Value checkers for the tables, each throwing usage_error naming the flag.
std::size_t count(std::string_view flag, std::string_view v, std::size_t min);
double seconds(std::string_view flag, std::string_view v);
/// A count capped at 10^7 (microseconds of a wait: never worth more).
unsigned micros(std::string_view flag, std::string_view v);

}  // namespace flags
}  // namespace rankflow
