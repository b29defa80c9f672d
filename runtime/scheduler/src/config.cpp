#include <rankflow/core/error.hpp>
#include <rankflow/runtime/config.hpp>

#include <algorithm>

#include "deadline.hpp"

namespace rankflow {

namespace {

progress_mode parse_progress(std::string_view flag, std::string_view v) {
  if (v == "auto") return progress_mode::automatic;
  if (v == "on") return progress_mode::on;
  if (v == "off") return progress_mode::off;
  throw usage_error(std::string(flag) + " expects one of auto|on|off, got '" + std::string(v) + "'");
}

backup_mode parse_backups(std::string_view flag, std::string_view v) {
  if (v == "auto") return backup_mode::automatic;
  if (v == "on") return backup_mode::on;
  if (v == "off") return backup_mode::off;
  throw usage_error(std::string(flag) + " expects one of auto|on|off, got '" + std::string(v) + "'");
}

std::vector<std::string> parse_labels(std::string_view flag, std::string_view v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= v.size()) {
    const std::size_t comma = std::min(v.find(',', start), v.size());
    std::string_view label = v.substr(start, comma - start);
    start = comma + 1;
    if (label.empty()) continue;
    for (char ch : label) {
      const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                      ch == '-' || ch == '.' || ch == ':';
      if (!ok) {
        throw usage_error(std::string(flag) + " expects labels of [A-Za-z0-9_.:-] separated by commas, got '" +
                          std::string(v) + "' ('" + std::string(label) + "')");
      }
    }
    out.emplace_back(label);
  }
  return out;
}

// All three layers' flags, bound to one config: core's, the scheduler's, then
// tracking's, the order --help lists them in.
flags::table all_flags(config& c) {
  flags::table t = flags::core_table(c);
  for (auto& f : flags::scheduler_table(c)) t.push_back(std::move(f));
  for (auto& f : flags::tracking_table(c)) t.push_back(std::move(f));
  return t;
}

}  // namespace

namespace flags {

table scheduler_table(scheduler_flags& c) {
  return {
      {"max-workers", "RANKFLOW_MAX_WORKERS", "N", "foreach: at most N ranks run splits at once (default 16)",
       [&c](std::string_view f, std::string_view v) { c.max_workers = count(f, v, 1); }},
      {"max-num-splits", "RANKFLOW_MAX_NUM_SPLITS", "N", "foreach: refuse more than N splits (default 100)",
       [&c](std::string_view f, std::string_view v) { c.max_num_splits = count(f, v, 1); }},
      {"progress", "RANKFLOW_PROGRESS", "MODE",
       "auto|on|off: a bar on a terminal, a line every few seconds otherwise (default auto)",
       [&c](std::string_view f, std::string_view v) { c.progress = parse_progress(f, v); }},
      {"progress-interval", "RANKFLOW_PROGRESS_INTERVAL", "SECONDS",
       "seconds between progress lines when not on a terminal (default 5)",
       [&c](std::string_view f, std::string_view v) { c.progress_interval_s = seconds(f, v); }},
      {"backups", "RANKFLOW_BACKUPS", "MODE",
       "auto|on|off: near a dynamic call's end, give partitions running far longer than usual also to an idle "
       "rank; the first copy to finish wins (default auto: on for calls with retries)",
       [&c](std::string_view f, std::string_view v) { c.backups = parse_backups(f, v); }},
      {"labels", "RANKFLOW_LABELS", "A,B",
       "tasks: extra labels of this rank's worker (besides default, its host name and gpu), for require()",
       [&c](std::string_view f, std::string_view v) { c.labels = parse_labels(f, v); }},
      {"peer-timeout", "RANKFLOW_PEER_TIMEOUT", "SECONDS",
       "end the job with an error naming a rank not heard from for this long (node down, network cut); 0: "
       "never (default 60)",
       [&c](std::string_view f, std::string_view v) { c.peer_timeout_s = v == "0" ? 0.0 : seconds(f, v); }},
      {"small-call-us", "RANKFLOW_SMALL_CALL_US", "MICROSECONDS",
       "a call measured (at its last execution) to take at most this much work per rank runs as one static "
       "split and one exchange, without the scheduling protocol; 0: never (default 50)",
       [&c](std::string_view f, std::string_view v) { c.small_call_us = micros(f, v); }},
      {"deadline", "RANKFLOW_DEADLINE", "WHEN",
       "when the job's allocation ends: auto (ask Slurm), off, or a time (Unix seconds, ISO 8601); no partition "
       "that could not finish before it is started, and the call ends as at a time-limit signal (default auto)",
       [&c](std::string_view f, std::string_view v) {
         if (v != "auto" && v != "off") (void)detail::parse_time_point(f, v);
         c.deadline = std::string(v);
       }},
      {"time-left", "RANKFLOW_TIME_LEFT", "DURATION",
       "the allocation ends this long after the start (3600, 90m, 2h, 01:30:00), instead of --deadline",
       [&c](std::string_view f, std::string_view v) { c.time_left_s = detail::parse_duration(f, v); }},
      {"deadline-margin", "RANKFLOW_DEADLINE_MARGIN", "DURATION",
       "stop handing out work this long before the deadline, for the checkpoint (default: a tenth of the time "
       "left at start, 5 to 60 s)",
       [&c](std::string_view f, std::string_view v) { c.deadline_margin_s = detail::parse_duration(f, v); }},
  };
}

}  // namespace flags

config parse_config(const std::vector<std::string>& args, std::vector<std::string>* rest) {
  config c;
  c.help = flags::parse(all_flags(c), args, rest);
  return c;
}

config parse_config(int& argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc), rest;
  config c = parse_config(args, &rest);
  if (c.run_name.empty() && argc > 0) {
    std::string_view prog = argv[0];
    c.run_name = std::string(prog.substr(prog.find_last_of('/') + 1));
  }
  flags::keep_only(argc, argv, rest);
  return c;
}

std::string help_text() {
  config c;
  std::string s = "rankflow options (every rankflow program; also from the environment):\n";
  s += flags::help_lines(all_flags(c));
  s += "  --help                      this help\n";
  s += "\nSubmitting the program as a Slurm batch job instead of running it here:\n"
       "  --with slurm                write a batch script, sbatch it, print the job id and log  [RANKFLOW_WITH]\n"
       "    --ntasks N                MPI ranks (default 1)\n"
       "    --nodes N  --cpus-per-task N  --mem SIZE  --time LIMIT  --partition NAME\n"
       "                              passed to sbatch as #SBATCH lines\n"
       "    --job-dir DIR             where the script and log go (default rankflow-jobs)\n"
       "    --wait                    follow the log and exit with the job's exit code\n";
  return s;
}

}  // namespace rankflow
