// `rankflow`: look into experiment files from a login node or a laptop.
//
//   rankflow runs rankflow.h5 [--where EXPR] [--sort [-]COL] [--cols A,B] [--limit N] [--format text|csv|json]
//   rankflow runs rankflow.h5 --sweep ID       a sweep's parameters and metrics, failed runs with their reasons
//   rankflow sweeps rankflow.h5                the sweeps (Slurm arrays, --sweep) and how their runs ended
//   rankflow compare rankflow.h5 RUN-1 RUN-2   fields that differ, series side by side, where they part
//   rankflow upgrade rankflow.h5               convert a format 1 file to format 2 (writes)
//   rankflow show rankflow.h5 RUN-3 [FIELD]    a run's attributes, fields and partition ledger
//   rankflow show rankflow.h5 RUN-3 --ledger   ... with every ledger row
//   rankflow export rankflow.h5 RUN-3 --format csv|json [-o FILE]
//   rankflow recover rankflow.h5               merge killed runs' journals
//
// Every command but `recover` and `upgrade` opens files read-only.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string_view>

#include <CLI/CLI.hpp>

#include <rankflow/tracking/experiment.hpp>
#include "h5.hpp"  // tracking/src: HDF5 helpers private to rankflow (HDF5 is ours, not the user's)
#include "output.hpp"
#include "query.hpp"
#include "runs_commands.hpp"
#include "ui_commands.hpp"

namespace tr = rankflow::tracking;
using rankflow::field_type;

namespace {

using rankflow::cli::csv_cell;
using rankflow::cli::join;
using rankflow::cli::json_num;
using rankflow::cli::json_str;
using rankflow::query::number_text;

std::string num(double v) { return number_text(v); }

std::string shape_text(const std::vector<std::uint64_t>& s) {
  std::string o;
  for (auto d : s) o += (o.empty() ? "" : "x") + std::to_string(d);
  return o.empty() ? "?" : o;
}

std::string atom_text(const tr::field_record& f) {
  switch (f.type) {
    case field_type::int_:
      return std::to_string(f.atom.i);
    case field_type::float_:
      return num(f.atom.d);
    case field_type::bool_:
      return f.atom.i ? "true" : "false";
    case field_type::string:
      return f.atom.s;
    case field_type::datetime:
      return rankflow::format_time(f.atom.d);
    case field_type::string_set:
    case field_type::string_list:
      return "[" + join(f.atom.list, ", ") + "]";
    default:
      return "";
  }
}

std::string series_value(const tr::series_data& s, std::size_t k) {
  if (s.type == field_type::float_series) return num(s.f[k]);
  if (s.type == field_type::int_series) return std::to_string(s.i[k]);
  return s.s[k];
}

std::string summary(const tr::field_record& f) {
  if (rankflow::is_series(f.type)) {
    const auto n = f.series.size();
    if (!n) return "0 points";
    return std::to_string(n) + " points, steps " + num(f.series.steps.front()) + ".." + num(f.series.steps.back()) +
           ", last " + series_value(f.series, n - 1);
  }
  if (f.type == field_type::file) return f.file.filename + " (" + std::to_string(f.file.size) + " bytes)";
  if (f.type == field_type::array) return f.array.dtype + " " + shape_text(f.array.shape) + " in " + f.array.file;
  return atom_text(f);
}


void print_info(const tr::run_info& i) {
  std::cout << "run " << i.id << " (" << i.name << ")\n"
            << "  status:       " << i.status << (i.reason.empty() ? "" : " (" + i.reason + ")") << "\n"
            << "  start:        " << rankflow::format_time(i.start_time) << "\n"
            << "  end:          " << rankflow::format_time(i.end_time) << "\n"
            << "  ranks:        " << i.ranks << "\n"
            << "  hosts:        " << join(i.hosts, ", ") << "\n"
            << "  command line: " << i.command_line << "\n"
            << "  rankflow:     " << i.version << " (" << i.mode << " mode)\n";
  for (const auto& [k, v] : i.context) std::cout << "  " << k << ": " << v << "\n";
}

std::string host_of(const tr::run_info& i, int rank) {
  return rank >= 0 && static_cast<std::size_t>(rank) < i.hosts.size() ? i.hosts[static_cast<std::size_t>(rank)] : "?";
}

// The partition ledger: one line per call, then every failure (and whether a
// later attempt, e.g. a resume, redid that partition); all rows with --ledger.
void print_ledger(const tr::run_record& rec, bool all_rows) {
  if (rec.calls.empty()) return;
  std::map<std::pair<std::int64_t, std::int64_t>, bool> ok;  // (call, partition) -> finished
  struct call_stats {
    std::int64_t done = 0, failed = 0, lost = 0;
    double first = 0, last = 0;
    std::set<int> ranks;
  };
  std::map<std::int64_t, call_stats> stats;
  for (const auto& e : rec.ledger) {
    auto& st = stats[e.call];
    if (e.ok && !ok[{e.call, e.partition}]) ++st.done;
    if (e.ok) ok[{e.call, e.partition}] = true;
    if (tr::lost_copy(e)) {
      ++st.lost;  // a backup's loser: another copy of the partition was kept
    } else if (!e.ok) {
      ++st.failed;
    }
    st.first = st.first == 0 ? e.start : std::min(st.first, e.start);
    st.last = std::max(st.last, e.end);
    st.ranks.insert(e.rank);
  }
  std::cout << "ledger (collective calls and their partitions):\n";
  std::printf("  %-5s %-20s %10s %10s %8s %8s %6s %6s %9s\n", "CALL", "STEP", "ITEMS", "PARTITIONS", "DONE", "FAILED",
              "LOST", "RANKS", "SECONDS");
  for (const auto& [k, c] : rec.calls) {
    const auto& st = stats[k];
    std::printf("  %-5lld %-20s %10lld %10lld %8lld %8lld %6lld %6zu %9.3f\n", static_cast<long long>(k), c.step.c_str(),
                static_cast<long long>(c.items), static_cast<long long>(c.partitions), static_cast<long long>(st.done),
                static_cast<long long>(st.failed), static_cast<long long>(st.lost), st.ranks.size(),
                st.last > st.first ? st.last - st.first : 0.0);
  }
  bool any_failed = false;
  for (const auto& e : rec.ledger) {
    if (e.ok || tr::lost_copy(e)) continue;
    if (!any_failed) std::cout << "failed partitions:\n";
    any_failed = true;
    const auto& c = rec.calls.count(e.call) ? rec.calls.at(e.call).step : std::string("?");
    std::cout << "  call " << e.call << " (" << c << ") "
              << (e.call < 0 ? "task '" + e.result + "' id " + std::to_string(e.partition)
                             : "partition " + std::to_string(e.partition) + ", items [" + std::to_string(e.first) +
                                   ", " + std::to_string(e.last) + ")")
              << " on rank " << e.rank << " (" << host_of(rec.info, e.rank) << ") at "
              << rankflow::format_time(e.end) << " after " << e.attempts << " attempt(s): " << e.error
              << (ok[{e.call, e.partition}] ? "  [finished later]" : "") << "\n";
  }
  if (!all_rows) return;
  std::printf("  %-5s %10s %-23s %5s %-12s %-27s %9s %8s %-9s %s\n", "CALL", "PARTITION", "ITEMS", "RANK", "HOST",
              "START (UTC)", "SECONDS", "ATTEMPTS", "STATUS", "ERROR");
  for (const auto& e : rec.ledger) {
    // A negative call holds the tasks of a drive(): the task's name, not items.
    const std::string items = e.call < 0 ? "task " + e.result.substr(0, 18)
                                         : "[" + std::to_string(e.first) + ", " + std::to_string(e.last) + ")";
    std::printf("  %-5lld %10lld %-23s %5d %-12s %-27s %9.6f %8d %-9s %s\n", static_cast<long long>(e.call),
                static_cast<long long>(e.partition), items.c_str(), e.rank, host_of(rec.info, e.rank).c_str(),
                rankflow::format_time(e.start).c_str(), e.end - e.start, e.attempts,
                e.ok ? "succeeded" : tr::lost_copy(e) ? "lost" : "failed",
                e.error.c_str());
  }
}

int cmd_show(const std::string& file, const std::string& id, const std::string& field, bool ledger_rows) {
  const auto rec = tr::load_run(file, id, !field.empty());
  if (field.empty()) {
    print_info(rec.info);
    std::cout << "fields:\n";
    for (const auto& [path, f] : rec.fields) {
      std::printf("  %-32s %-13s %s\n", path.c_str(), rankflow::type_name(f.type), summary(f).c_str());
    }
    print_ledger(rec, ledger_rows);
    return 0;
  }
  const auto* f = rec.find(field);
  if (!f) {
    std::cerr << "error: run " << id << " has no field '" << field << "'; `rankflow show " << file << " " << id
              << "` lists them\n";
    return 2;
  }
  std::cout << field << " (" << rankflow::type_name(f->type) << ", written by rank " << f->rank << ")\n";
  if (rankflow::is_series(f->type)) {
    std::printf("%14s  %-24s  %s\n", "STEP", "VALUE", "TIMESTAMP (UTC)");
    for (std::size_t k = 0; k < f->series.size(); ++k) {
      std::printf("%14s  %-24s  %s\n", num(f->series.steps[k]).c_str(), series_value(f->series, k).c_str(),
                  rankflow::format_time(f->series.timestamps[k]).c_str());
    }
  } else if (f->type == field_type::file) {
    std::cout << summary(*f) << "\n";
  } else if (f->type == field_type::array) {
    std::vector<std::uint64_t> shape;
    const auto data = tr::read_array(file, f->array, &shape);
    std::cout << f->array.dtype << " " << shape_text(shape) << " in " << f->array.file << "\nfirst values:";
    for (std::size_t k = 0; k < std::min<std::size_t>(8, data.size()); ++k) std::cout << " " << num(data[k]);
    std::cout << "\n";
  } else {
    std::cout << atom_text(*f) << "\n";
  }
  return 0;
}

void export_json(const tr::run_record& rec, std::ostream& out) {
  const auto& i = rec.info;
  out << "{\n  \"id\": " << json_str(i.id) << ",\n  \"name\": " << json_str(i.name)
      << ",\n  \"status\": " << json_str(i.status) << ",\n  \"reason\": " << json_str(i.reason)
      << ",\n  \"start_time\": " << json_str(rankflow::format_time(i.start_time))
      << ",\n  \"end_time\": " << json_str(rankflow::format_time(i.end_time)) << ",\n  \"ranks\": " << i.ranks
      << ",\n  \"hosts\": [";
  for (std::size_t k = 0; k < i.hosts.size(); ++k) out << (k ? ", " : "") << json_str(i.hosts[k]);
  out << "],\n  \"command_line\": " << json_str(i.command_line) << ",\n  \"rankflow_version\": " << json_str(i.version);
  for (const auto& [k, v] : i.context) out << ",\n  " << json_str(k) << ": " << json_str(v);
  out << ",\n  \"fields\": {";
  bool first = true;
  for (const auto& [path, f] : rec.fields) {
    out << (first ? "\n" : ",\n") << "    " << json_str(path)
        << ": {\"type\": " << json_str(rankflow::type_name(f.type));
    first = false;
    switch (f.type) {
      case field_type::int_:
        out << ", \"value\": " << f.atom.i;
        break;
      case field_type::float_:
        out << ", \"value\": " << json_num(f.atom.d);
        break;
      case field_type::bool_:
        out << ", \"value\": " << (f.atom.i ? "true" : "false");
        break;
      case field_type::string:
        out << ", \"value\": " << json_str(f.atom.s);
        break;
      case field_type::datetime:
        out << ", \"value\": " << json_str(rankflow::format_time(f.atom.d));
        break;
      case field_type::string_set:
      case field_type::string_list:
        out << ", \"value\": [";
        for (std::size_t k = 0; k < f.atom.list.size(); ++k) out << (k ? ", " : "") << json_str(f.atom.list[k]);
        out << "]";
        break;
      case field_type::float_series:
      case field_type::int_series:
      case field_type::string_series: {
        const auto& s = f.series;
        out << ", \"steps\": [";
        for (std::size_t k = 0; k < s.size(); ++k) out << (k ? ", " : "") << json_num(s.steps[k]);
        out << "], \"values\": [";
        for (std::size_t k = 0; k < s.size(); ++k) {
          out << (k ? ", " : "");
          if (s.type == field_type::float_series) out << json_num(s.f[k]);
          if (s.type == field_type::int_series) out << s.i[k];
          if (s.type == field_type::string_series) out << json_str(s.s[k]);
        }
        out << "], \"timestamps\": [";
        for (std::size_t k = 0; k < s.size(); ++k) out << (k ? ", " : "") << json_num(s.timestamps[k]);
        out << "]";
        break;
      }
      case field_type::file:
        out << ", \"filename\": " << json_str(f.file.filename) << ", \"size\": " << f.file.size;
        break;
      case field_type::array: {
        out << ", \"dtype\": " << json_str(f.array.dtype) << ", \"file\": " << json_str(f.array.file)
            << ", \"shape\": [";
        for (std::size_t k = 0; k < f.array.shape.size(); ++k) out << (k ? ", " : "") << f.array.shape[k];
        out << "]";
        break;
      }
      default:
        break;
    }
    out << "}";
  }
  out << "\n  }\n}\n";
}

// Long format: one row per atom field and per series point, so that
// pandas.read_csv(...).pivot(...) gets any shape back.
void export_csv(const tr::run_record& rec, std::ostream& out) {
  out << "path,type,step,value,timestamp\n";
  for (const auto& [path, f] : rec.fields) {
    const std::string head = csv_cell(path) + "," + rankflow::type_name(f.type) + ",";
    if (rankflow::is_series(f.type)) {
      for (std::size_t k = 0; k < f.series.size(); ++k) {
        out << head << num(f.series.steps[k]) << "," << csv_cell(series_value(f.series, k)) << ","
            << rankflow::format_time(f.series.timestamps[k]) << "\n";
      }
    } else {
      out << head << "," << csv_cell(summary(f)) << "," << rankflow::format_time(f.updated) << "\n";
    }
  }
}

// Output is checked, never assumed: a full disk, /dev/full or a closed
// stdout must end the command with an error, not exit 0 with a cut file.
std::string errno_text() { return errno ? std::string(": ") + std::strerror(errno) : std::string(); }

// errno after a failed write of buffered output, when it still says why:
// other calls between the write and the check may have changed it.
std::string write_errno_text() {
  for (int e : {ENOSPC, EDQUOT, EFBIG, EIO, EPIPE, EBADF, EROFS}) {
    if (errno == e) return errno_text();
  }
  return " (a full disk, or an output that was closed?)";
}

void finish_stdout() {
  std::cout.flush();
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
    throw rankflow::storage_error("cannot write to standard output" + write_errno_text());
  }
}

bool is_regular(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void export_run(const tr::run_record& r, const std::string& format, std::ostream& out) {
  if (format == "csv") {
    export_csv(r, out);
  } else {
    export_json(r, out);
  }
}

// Writes the export to `output`; on any failure the partial file is removed
// (a regular file only: -o /dev/full must not unlink a device).
void export_to_file(const tr::run_record& r, const std::string& format, const std::string& output) {
  std::ofstream f(output, std::ios::trunc);
  if (!f) throw rankflow::storage_error("cannot write '" + output + "'" + errno_text());
  export_run(r, format, f);
  f.flush();
  std::string why = f ? "" : write_errno_text();
  f.close();
  if (why.empty() && !f) why = write_errno_text();
  if (!why.empty()) {
    const bool remove = is_regular(output);
    if (remove) ::unlink(output.c_str());
    throw rankflow::storage_error("cannot write '" + output + "'" + why +
                                  (remove ? "; the partial file was removed" : ""));
  }
}

const char* const commands[] = {"runs", "sweeps", "compare", "show", "export", "recover", "upgrade", "ui", "report"};

}  // namespace

namespace {

// libhdf5 1.10 itself crashes on some damaged files (fuzzing found heap
// overflows in H5Aexists and H5HG_read, a bad free in
// H5G__link_release_table) before rankflow's checks can see anything wrong.
// The command therefore does its work in a child process: a crash there
// becomes a clear error and exit code 1 here, not a core dump. Nothing is
// initialised before the fork; the child writes to the same stdout/stderr.
// RANKFLOW_NO_FORK=1 runs in-process (for a debugger).
volatile sig_atomic_t guarded_child = 0;

// A stop asked of the command (kill, Ctrl-C, a job's end) is the child's to
// act on: `rankflow ui` stops its server, the others end.
extern "C" void forward_to_child(int sig) {
  if (guarded_child > 0) ::kill(static_cast<pid_t>(guarded_child), sig);
}

int run_guarded(int (*body)(int, char**), int argc, char** argv) {
  if (const char* e = std::getenv("RANKFLOW_NO_FORK"); e && std::string_view(e) == "1") return body(argc, argv);
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return body(argc, argv);  // no process to spare: run unguarded
  if (child == 0) {
    const int rc = body(argc, argv);
    std::fflush(nullptr);  // _Exit flushes nothing: `rankflow --help | cat` would print nothing
    std::_Exit(rc);
  }
  guarded_child = child;
  for (const int s : {SIGINT, SIGTERM, SIGHUP}) std::signal(s, forward_to_child);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return body(argc, argv);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  const int sig = WTERMSIG(status);
  if (sig == SIGPIPE || sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
    // `rankflow export f RUN | head`, or a stop asked of it: end as the child did.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
  std::string what;
  for (int k = 1; k < argc; ++k) what += std::string(k > 1 ? " " : "") + argv[k];
  std::fprintf(stderr,
               "error: reading the file crashed inside the HDF5 library (%s) during 'rankflow %s': the file is "
               "damaged in a way HDF5 itself does not survive; restore it from a copy, or read the runs it still "
               "holds one by one\n",
               strsignal(sig), what.c_str());
  return 1;
}

int command_main(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) { return run_guarded(command_main, argc, argv); }

namespace {

// Every command's arguments, and the CLI11 subcommands that fill them.
struct command_line {
  std::string file, id, field, format = "json", output, sweeps_format = "text";
  rankflow::cli::runs_request rq;
  std::vector<std::string> cmp_ids;
  bool ledger_rows = false;
  std::vector<std::string> ui_files, report_ids;
  int ui_port = 8080;
  std::string ui_bind = "127.0.0.1", report_out;
  CLI::App *runs = nullptr, *sweeps = nullptr, *cmp = nullptr, *upg = nullptr, *show = nullptr, *exp = nullptr,
           *rec = nullptr, *ui = nullptr, *report = nullptr;

  void declare(CLI::App& app) {
    runs = app.add_subcommand("runs", "list, filter and sort the runs of an experiment file (from its run index)");
    runs->add_option("FILE", file, "experiment file")->required();
    runs->add_option("--where", rq.where,
                     "only runs where EXPR holds, e.g. 'params/lr<1e-3 and status=succeeded' (and, or, not, "
                     "parentheses; = != < <= > >= ~; a series by its last value or path:min, :max, :count, :step)");
    runs->add_option("--sort", rq.sort, "sort by these columns, '-' for descending, e.g. -eval/acc,params/lr");
    runs->add_option("--cols", rq.cols, "show these columns, e.g. id,params/lr,eval/acc:max");
    runs->add_option("--limit", rq.limit, "show at most N runs")->check(CLI::NonNegativeNumber);
    runs->add_option("--format", rq.format, "text, csv or json")->check(CLI::IsMember({"text", "csv", "json"}));
    runs->add_option("--sweep", rq.sweep, "only the runs of this sweep, with its parameters and metrics as columns");

    sweeps = app.add_subcommand("sweeps", "list the sweeps (Slurm arrays, --sweep) and how their runs ended");
    sweeps->add_option("FILE", file, "experiment file")->required();
    sweeps->add_option("--format", sweeps_format, "text, csv or json")->check(CLI::IsMember({"text", "csv", "json"}));

    cmp = app.add_subcommand("compare", "fields that differ, series side by side, and where the series part");
    cmp->add_option("FILE", file, "experiment file")->required();
    cmp->add_option("RUNS", cmp_ids, "two or more run ids")->required()->expected(2, 1000);

    upg = app.add_subcommand("upgrade", "convert a format 1 experiment file to format 2 (writes)");
    upg->add_option("FILE", file, "experiment file")->required();

    show = app.add_subcommand("show", "print a run's attributes and fields, or one field in full");
    show->add_option("FILE", file, "experiment file")->required();
    show->add_option("RUN", id, "run id, e.g. RUN-3")->required();
    show->add_option("FIELD", field, "field path, e.g. train/loss");
    show->add_flag("--ledger", ledger_rows, "also print every row of the partition ledger");

    exp = app.add_subcommand("export", "write a run as JSON or CSV");
    exp->add_option("FILE", file, "experiment file")->required();
    exp->add_option("RUN", id, "run id")->required();
    exp->add_option("--format", format, "json or csv")->check(CLI::IsMember({"json", "csv"}));
    exp->add_option("-o,--output", output, "write here instead of stdout");

    rec = app.add_subcommand("recover", "merge the journals of killed runs into the file (writes)");
    rec->add_option("FILE", file, "experiment file")->required();

    ui = app.add_subcommand("ui", "serve a live web view of experiment files (read-only; docs/ui.md)");
    ui->add_option("FILE", ui_files, "experiment files")->required()->expected(1, 1000);
    ui->add_option("--port", ui_port, "port to listen on (0: any free port; the first line printed says which)")
        ->check(CLI::Range(0, 65535));
    ui->add_option("--bind", ui_bind,
                   "address to listen on (default 127.0.0.1: this machine only; reach it with ssh -L, docs/ui.md)");

    report = app.add_subcommand("report", "write the web view of runs as one self-contained HTML file");
    report->add_option("FILE", file, "experiment file")->required();
    report->add_option("RUNS", report_ids, "runs shown in detail (default: the latest; two or more are also compared)");
    report->add_option("-o,--output", report_out, "the HTML file to write")->required();
  }

  // Runs the parsed command; errors propagate.
  int execute() const {
    if (ui->parsed()) return rankflow::ui::cmd_ui(ui_files, ui_port, ui_bind);
    // A file that is not there is a mistake in FILE, not an empty experiment
    // (a first job's sidecar may exist before the file does).
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0 && ::stat((file + ".d").c_str(), &st) != 0) {
      throw rankflow::usage_error("'" + file + "' does not exist: pass the path of a rankflow experiment file as FILE");
    }
    if (runs->parsed()) return rankflow::cli::cmd_runs(file, rq);
    if (sweeps->parsed()) return rankflow::cli::cmd_sweeps(file, sweeps_format);
    if (cmp->parsed()) return rankflow::cli::cmd_compare(file, cmp_ids);
    if (upg->parsed()) return rankflow::cli::cmd_upgrade(file);
    if (report->parsed()) return rankflow::ui::cmd_report(file, report_ids, report_out);
    if (show->parsed()) return cmd_show(file, id, field, ledger_rows);
    if (exp->parsed()) {
      const auto r = tr::load_run(file, id, false);
      if (output.empty()) {
        export_run(r, format, std::cout);
      } else {
        export_to_file(r, format, output);
      }
      return 0;
    }
    const auto ids = tr::recover(file);
    if (ids.empty()) std::cout << "nothing to recover in " << file << "\n";
    // recover() keeps the status a run recorded (a run that ended but was
    // not merged stays succeeded or failed): print what it restored.
    std::map<std::string, std::string> status;
    if (!ids.empty()) {
      for (const auto& i : tr::list_runs(file)) status[i.id] = i.status;
    }
    for (const auto& i : ids) {
      std::cout << "recovered " << i << " (status " << (status.count(i) ? status.at(i) : "unknown") << ")\n";
    }
    return 0;
  }
};

int command_main(int argc, char** argv) {
  // Format errors tell the user to name another file; here that is FILE.
  tr::set_other_file_advice("pass the path of a rankflow experiment file as FILE");
  CLI::App app{
      "rankflow: read rankflow experiment files (HDF5). Every command but `recover` and `upgrade` opens files "
      "read-only."};
  app.require_subcommand(1);
  command_line cl;
  cl.declare(app);
  // CLI11 would answer "A subcommand is required" to a misspelt one: name
  // it and the commands there are instead.
  if (argc > 1 && argv[1][0] != '-' && std::none_of(std::begin(commands), std::end(commands), [&](const char* c) {
        return std::string(c) == argv[1];
      })) {
    std::cerr << "error: unknown command '" << argv[1]
              << "'; the commands are: " << join({std::begin(commands), std::end(commands)}, ", ")
              << " (see rankflow --help)\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    const int rc = cl.execute();
    finish_stdout();
    return rc;
  } catch (const rankflow::usage_error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace
