// The flags tracking reads: which experiment file, how runs are tracked, and
// resuming. Runtime turns them into run_options for start_run.
#pragma once

#include <string>

#include <rankflow/core/flags.hpp>

namespace rankflow {

struct tracking_flags {
  /// Experiment file that Runtime::start_run tracks into.
  std::string experiment = "rankflow.h5";
  /// async | sync | read-only | debug (see rankflow::tracking_mode).
  std::string tracking_mode = "async";
  /// --resume: "" (not given), "last", "no" or a run id such as "RUN-3".
  /// Runtime::start_run continues that run; see run_options::resume.
  std::string resume;
  /// --on-change: "" (not given), "refuse" or "restart"; see run_options::on_change.
  std::string on_change;
  /// --sweep: the sweep runs of this job belong to; see run_options::sweep.
  std::string sweep;
  /// --provenance on|off: record what produced each run (sys/provenance/).
  bool provenance = true;
};

namespace flags {
/// Tracking's flags, bound to `f`.
table tracking_table(tracking_flags& f);
}  // namespace flags

}  // namespace rankflow
