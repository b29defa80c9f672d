// The job's end (issue 17, "wall-clock-aware dispatch"): when the allocation
// ends, from --deadline or --time-left, or from Slurm itself (asked once, at
// start). Rank 0 then stops handing out partitions that could not finish
// before the end minus a checkpoint margin (core's set_deadline), and the
// call in progress ends with rankflow::interrupted as at a time-limit signal,
// whether or not one ever comes. docs/usage.md, "The job's end".
#pragma once

#include <string>
#include <string_view>

#include <rankflow/runtime/config.hpp>

namespace rankflow::detail {

/// A point in time given on the command line: Unix seconds ("1796640000"),
/// or ISO 8601 in UTC ("2026-12-07T12:00:00Z") or local time (no "Z", as
/// Slurm prints it). Throws usage_error naming `flag`.
double parse_time_point(std::string_view flag, std::string_view v);

/// A duration: seconds ("3600", "90s"), minutes ("15m"), hours ("2h"),
/// days ("1d"), or Slurm's [D-]HH:MM:SS, HH:MM:SS and MM:SS. Throws
/// usage_error naming `flag`.
double parse_duration(std::string_view flag, std::string_view v);

/// When the job ends, and where that was learnt ("--deadline", "Slurm job
/// 812"); end 0 when unknown (no flag, not in a Slurm job, or no limit).
struct job_end {
  double end = 0;
  double margin = 0;  ///< seconds before `end` to stop handing out work
  std::string source;
};

/// Rank 0, at start: the flags first, then Slurm (SLURM_JOB_END_TIME, or
/// one `squeue` for SLURM_JOB_ID). `now` in Unix seconds.
job_end find_job_end(const config& c, double now);

}  // namespace rankflow::detail
