#include <rankflow/core/error.hpp>
#include <rankflow/tracking/flags.hpp>

namespace rankflow::flags {

namespace {

bool is_run_id(std::string_view v) {
  if (v.size() <= 4 || v.substr(0, 4) != "RUN-") return false;
  for (char ch : v.substr(4)) {
    if (ch < '0' || ch > '9') return false;
  }
  return true;
}

}  // namespace

table tracking_table(tracking_flags& c) {
  return {
      {"experiment", "RANKFLOW_EXPERIMENT", "PATH", "experiment file runs are tracked in (default rankflow.h5)",
       [&c](std::string_view f, std::string_view v) {
         if (v.empty()) throw usage_error(std::string(f) + " expects a file path, got ''");
         c.experiment = std::string(v);
       }},
      {"tracking-mode", "RANKFLOW_TRACKING_MODE", "MODE",
       "async|sync|read-only|debug: how runs are tracked (default async)",
       [&c](std::string_view f, std::string_view v) {
         if (v != "async" && v != "sync" && v != "read-only" && v != "debug") {
           throw usage_error(std::string(f) + " expects one of async|sync|read-only|debug, got '" + std::string(v) +
                             "'");
         }
         c.tracking_mode = std::string(v);
       }},
      {"resume", "RANKFLOW_RESUME", "[RUN]",
       "continue run RUN (default: the last killed or failed run of the same name), reusing the partitions it "
       "finished; 'no' starts a new run even in a requeued Slurm job",
       [&c](std::string_view f, std::string_view v) {
         if (v != "last" && v != "no" && !is_run_id(v)) {
           throw usage_error(std::string(f) + " expects a run id such as RUN-3, 'last' or 'no', got '" +
                             std::string(v) + "'");
         }
         c.resume = std::string(v);
       },
       "last", [](std::string_view next) { return next == "last" || next == "no" || is_run_id(next); }},
      {"on-change", "RANKFLOW_ON_CHANGE", "refuse|restart",
       "with --resume, when a call or an input (a params/ field) differs from the resumed run: refuse (default), "
       "or restart the affected calls afresh",
       [&c](std::string_view f, std::string_view v) {
         if (v != "refuse" && v != "restart") {
           throw usage_error(std::string(f) + " expects 'refuse' or 'restart', got '" + std::string(v) + "'");
         }
         c.on_change = std::string(v);
       }},
      {"sweep", "RANKFLOW_SWEEP", "NAME",
       "the sweep this job's runs belong to, for `rankflow sweeps` (default: the Slurm array job, if any)",
       [&c](std::string_view f, std::string_view v) {
         if (v.empty() || v.size() > 256) {
           throw usage_error(std::string(f) + " expects a name of 1 to 256 characters, got '" + std::string(v) + "'");
         }
         c.sweep = std::string(v);
       }},
      {"provenance", "RANKFLOW_PROVENANCE", "on|off",
       "record what produced each run: git revision and diff, executable hash per rank, library versions, "
       "job environment, modules, hosts (default on)",
       [&c](std::string_view f, std::string_view v) {
         if (v != "on" && v != "off") throw usage_error(std::string(f) + " expects 'on' or 'off', got '" + std::string(v) + "'");
         c.provenance = v == "on";
       }},
  };
}

}  // namespace rankflow::flags
