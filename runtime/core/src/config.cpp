#include <rankflow/core/config.hpp>
#include <rankflow/core/error.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

namespace rankflow {

namespace {

std::size_t parse_count(std::string_view flag, std::string_view v, std::size_t min) {
  std::size_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size() || out < min) {
    throw usage_error(std::string(flag) + " expects a whole number >= " + std::to_string(min) + ", got '" +
                      std::string(v) + "'");
  }
  return out;
}

double parse_seconds(std::string_view flag, std::string_view v) {
  char* end = nullptr;
  std::string s(v);
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(d > 0)) {
    throw usage_error(std::string(flag) + " expects a positive number of seconds, got '" + s + "'");
  }
  return d;
}

log_level parse_level(std::string_view flag, std::string_view v) {
  if (v == "error") return log_level::error;
  if (v == "warn" || v == "warning") return log_level::warn;
  if (v == "info") return log_level::info;
  if (v == "debug") return log_level::debug;
  throw usage_error(std::string(flag) + " expects one of error|warn|info|debug, got '" + std::string(v) + "'");
}

progress_mode parse_progress(std::string_view flag, std::string_view v) {
  if (v == "auto") return progress_mode::automatic;
  if (v == "on") return progress_mode::on;
  if (v == "off") return progress_mode::off;
  throw usage_error(std::string(flag) + " expects one of auto|on|off, got '" + std::string(v) + "'");
}

bool is_run_id(std::string_view v) {
  if (v.size() <= 4 || v.substr(0, 4) != "RUN-") return false;
  for (char ch : v.substr(4)) {
    if (ch < '0' || ch > '9') return false;
  }
  return true;
}

std::string parse_resume(std::string_view flag, std::string_view v) {
  if (v == "last" || v == "no" || is_run_id(v)) return std::string(v);
  throw usage_error(std::string(flag) + " expects a run id such as RUN-3, 'last' or 'no', got '" + std::string(v) +
                    "'");
}

std::string parse_on_change(std::string_view flag, std::string_view v) {
  if (v == "refuse" || v == "restart") return std::string(v);
  throw usage_error(std::string(flag) + " expects 'refuse' or 'restart', got '" + std::string(v) + "'");
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

// One table drives argv, the environment and the help text, so they cannot drift.
struct flag_spec {
  const char* name;  // without leading dashes
  const char* env;
  const char* value;
  const char* help;
  void (*apply)(config&, std::string_view flag, std::string_view value);
  /// Flags whose value may be left out ("--resume"): the value used then, and
  /// which next arguments are taken as the value.
  const char* implicit = nullptr;
  bool (*takes)(std::string_view next) = nullptr;
};

const flag_spec flags[] = {
    {"max-workers", "RANKFLOW_MAX_WORKERS", "N", "foreach: at most N ranks run splits at once (default 16)",
     [](config& c, std::string_view f, std::string_view v) { c.max_workers = parse_count(f, v, 1); }},
    {"max-num-splits", "RANKFLOW_MAX_NUM_SPLITS", "N", "foreach: refuse more than N splits (default 100)",
     [](config& c, std::string_view f, std::string_view v) { c.max_num_splits = parse_count(f, v, 1); }},
    {"log-level", "RANKFLOW_LOG_LEVEL", "LEVEL", "error|warn|info|debug (default info)",
     [](config& c, std::string_view f, std::string_view v) { c.level = parse_level(f, v); }},
    {"progress", "RANKFLOW_PROGRESS", "MODE",
     "auto|on|off: a bar on a terminal, a line every few seconds otherwise (default auto)",
     [](config& c, std::string_view f, std::string_view v) { c.progress = parse_progress(f, v); }},
    {"progress-interval", "RANKFLOW_PROGRESS_INTERVAL", "SECONDS",
     "seconds between progress lines when not on a terminal (default 5)",
     [](config& c, std::string_view f, std::string_view v) { c.progress_interval_s = parse_seconds(f, v); }},
    {"segment-bytes", "RANKFLOW_SEGMENT_BYTES", "BYTES",
     "largest single MPI message; larger ones are split (default 1 GiB)",
     [](config& c, std::string_view f, std::string_view v) { c.segment_bytes = parse_count(f, v, 64); }},
    {"experiment", "RANKFLOW_EXPERIMENT", "PATH", "experiment file runs are tracked in (default rankflow.h5)",
     [](config& c, std::string_view f, std::string_view v) {
       if (v.empty()) throw usage_error(std::string(f) + " expects a file path, got ''");
       c.experiment = std::string(v);
     }},
    {"tracking-mode", "RANKFLOW_TRACKING_MODE", "MODE",
     "async|sync|read-only|debug: how runs are tracked (default async)",
     [](config& c, std::string_view f, std::string_view v) {
       if (v != "async" && v != "sync" && v != "read-only" && v != "debug") {
         throw usage_error(std::string(f) + " expects one of async|sync|read-only|debug, got '" + std::string(v) + "'");
       }
       c.tracking_mode = std::string(v);
     }},
    {"labels", "RANKFLOW_LABELS", "A,B",
     "tasks: extra labels of this rank's worker (besides default, its host name and gpu), for require()",
     [](config& c, std::string_view f, std::string_view v) { c.labels = parse_labels(f, v); }},
    {"peer-timeout", "RANKFLOW_PEER_TIMEOUT", "SECONDS",
     "end the job with an error naming a rank not heard from for this long (node down, network cut); 0: "
     "never (default 60)",
     [](config& c, std::string_view f, std::string_view v) {
       c.peer_timeout_s = v == "0" ? 0.0 : parse_seconds(f, v);
     }},
    {"spin-us", "RANKFLOW_SPIN_US", "MICROSECONDS",
     "an idle rank polls (yielding the CPU) this long before it sleeps between polls; 0: sleep at once (default "
     "200)",
     [](config& c, std::string_view f, std::string_view v) {
       c.spin_us = static_cast<unsigned>(std::min<std::size_t>(parse_count(f, v, 0), 10'000'000));
     }},
    {"small-call-us", "RANKFLOW_SMALL_CALL_US", "MICROSECONDS",
     "a call measured (at its last execution) to take at most this much work per rank runs as one static split "
     "and one exchange, without the scheduling protocol; 0: never (default 50)",
     [](config& c, std::string_view f, std::string_view v) {
       c.small_call_us = static_cast<unsigned>(std::min<std::size_t>(parse_count(f, v, 0), 10'000'000));
     }},
    {"run-name", "RANKFLOW_RUN_NAME", "NAME", "name shown in log lines (default: the program name)",
     [](config& c, std::string_view, std::string_view v) { c.run_name = std::string(v); }},
    {"resume", "RANKFLOW_RESUME", "[RUN]",
     "continue run RUN (default: the last killed or failed run of the same name), reusing the partitions it "
     "finished; 'no' starts a new run even in a requeued Slurm job",
     [](config& c, std::string_view f, std::string_view v) { c.resume = parse_resume(f, v); }, "last",
     [](std::string_view next) { return next == "last" || next == "no" || is_run_id(next); }},
    {"on-change", "RANKFLOW_ON_CHANGE", "refuse|restart",
     "with --resume, when a call or an input (a params/ field) differs from the resumed run: refuse (default), "
     "or restart the affected calls afresh",
     [](config& c, std::string_view f, std::string_view v) { c.on_change = parse_on_change(f, v); }},
};

const flag_spec* find_flag(std::string_view name) {
  for (const auto& f : flags)
    if (name == f.name) return &f;
  return nullptr;
}

}  // namespace

config parse_config(const std::vector<std::string>& args, std::vector<std::string>* rest) {
  config c;
  for (const auto& f : flags) {
    if (const char* v = std::getenv(f.env); v && *v) f.apply(c, f.env, v);
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      c.help = true;
      if (rest) rest->push_back(args[i]);  // the program may print its own help too
      continue;
    }
    if (a.size() > 2 && a.substr(0, 2) == "--") {
      std::string_view body = a.substr(2);
      std::string_view name = body.substr(0, body.find('='));
      if (const flag_spec* f = find_flag(name)) {
        std::string flag = "--" + std::string(name);
        if (body.size() > name.size()) {
          f->apply(c, flag, body.substr(name.size() + 1));
        } else if (f->implicit && !(i + 1 < args.size() && f->takes(args[i + 1]))) {
          f->apply(c, flag, f->implicit);
        } else if (i + 1 < args.size()) {
          f->apply(c, flag, args[++i]);
        } else {
          throw usage_error(flag + " needs a value (" + f->value + ")");
        }
        continue;
      }
    }
    if (rest) rest->push_back(args[i]);
  }
  return c;
}

config parse_config(int& argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc), rest;
  config c = parse_config(args, &rest);
  if (c.run_name.empty() && argc > 0) {
    std::string_view prog = argv[0];
    c.run_name = std::string(prog.substr(prog.find_last_of('/') + 1));
  }
  // Compact argv in place: the program's own arguments keep their order. The
  // pointers are reused, so nothing is allocated that the caller must free.
  int out = 1;
  std::size_t next = 0;
  for (int i = 1; i < argc && next < rest.size(); ++i) {
    if (rest[next] == argv[i]) {
      argv[out++] = argv[i];
      ++next;
    }
  }
  for (int i = out; i < argc; ++i) argv[i] = nullptr;
  argc = out;
  return c;
}

std::string help_text() {
  std::string s = "rankflow options (every rankflow program; also from the environment):\n";
  for (const auto& f : flags) {
    std::string left = std::string("  --") + f.name + " " + f.value;
    left.resize(std::max<std::size_t>(left.size() + 2, 30), ' ');
    s += left + f.help + "  [" + f.env + "]\n";
  }
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

const char* to_string(log_level l) noexcept {
  switch (l) {
    case log_level::error:
      return "error";
    case log_level::warn:
      return "warn";
    case log_level::info:
      return "info";
    case log_level::debug:
      return "debug";
  }
  return "?";
}

}  // namespace rankflow
