// Log lines in Metaflow's task style:
//   2026-11-23 10:41:07.123 [bigsum/mapreduce/17 (rank 3, pid 4242)] message
// Each line is written with a single write(2) so lines from ranks sharing a
// terminal or a Slurm log never interleave mid-line.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include <rankflow/core/flags.hpp>

namespace rankflow::log {

/// Process-wide settings, set by rankflow::Runtime.
void set_level(log_level level);
log_level level() noexcept;
void set_identity(std::string run, int rank);

/// The step and partition shown in the prefix of lines logged by this thread.
/// Scoped: the previous context comes back on destruction.
class scope {
 public:
  scope(std::string_view step, std::int64_t partition = -1);
  ~scope();
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;

 private:
  std::string prev_step_;
  std::int64_t prev_partition_;
};

/// Sets only the partition of the current scope (cheap; used per partition).
void set_partition(std::int64_t partition) noexcept;

/// The prefix "[run/step/partition (rank R, pid P)]" for this thread, now.
std::string prefix();

/// Writes one line if `lvl` is enabled.
void write(log_level lvl, std::string_view message);

/// Stream-style line: `log::line(log_level::info) << "x = " << x;`
class line {
 public:
  explicit line(log_level lvl) : lvl_(lvl), on_(lvl <= level()) {}
  ~line() {
    if (on_) write(lvl_, os_.str());
  }
  line(const line&) = delete;
  line& operator=(const line&) = delete;
  template <class T>
  line& operator<<(const T& v) {
    if (on_) os_ << v;
    return *this;
  }

 private:
  log_level lvl_;
  bool on_;
  std::ostringstream os_;
};

inline line error() { return line(log_level::error); }
inline line warn() { return line(log_level::warn); }
inline line info() { return line(log_level::info); }
inline line debug() { return line(log_level::debug); }

}  // namespace rankflow::log
