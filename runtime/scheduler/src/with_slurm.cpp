#include <rankflow/runtime/with_slurm.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <thread>

#include <rankflow/core/error.hpp>

namespace rankflow {

namespace {

int parse_positive(const std::string& flag, const std::string& v) {
  int out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size() || out < 1) {
    throw usage_error(flag + " expects a whole number >= 1, got '" + v + "'");
  }
  return out;
}

// Single quotes for bash, so any argument reaches the program unchanged.
std::string quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:@%") ==
                        std::string::npos) {
    return s;
  }
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string basename_of(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }

// Values end up on #SBATCH lines of a bash script: a line break in one would
// start a shell command of the job (found by tests/fuzz/flags_fuzz.cpp).
const std::string& one_line(const std::string& flag, const std::string& v) {
  if (v.find_first_of("\n\r") != std::string::npos)
    throw usage_error(flag + " takes a value without line breaks, got '" + v + "'");
  return v;
}

// The command line quoted in a comment: control characters are escaped.
std::string comment_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string self_exe() {
  char buf[4096];
  const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw error("--with slurm: cannot find this program's path (/proc/self/exe)");
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string current_dir() {
  char buf[4096];
  if (!::getcwd(buf, sizeof buf)) throw error("--with slurm: cannot read the current directory");
  return buf;
}

bool on_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::string p = path;
  for (std::size_t start = 0; start <= p.size();) {
    auto end = std::min(p.find(':', start), p.size());
    const auto candidate = (end > start ? p.substr(start, end - start) : std::string(".")) + "/" + prog;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// Copies what `file` gained since `offset` to stdout.
void follow(const std::string& file, std::uint64_t& offset) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return;
  in.seekg(static_cast<std::streamoff>(offset));
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    std::cout.write(buf, in.gcount());
    offset += static_cast<std::uint64_t>(in.gcount());
  }
  std::cout.flush();
}

}  // namespace

slurm_submission parse_submission(const std::vector<std::string>& args, std::vector<std::string>* rest) {
  slurm_submission s;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--with=slurm" || (args[i] == "--with" && i + 1 < args.size() && args[i + 1] == "slurm")) {
      s.requested = true;
    }
  }
  if (const char* w = std::getenv("RANKFLOW_WITH"); w && std::string(w) == "slurm") s.requested = true;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string name = a, value;
    bool inline_value = false;
    if (auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    auto take = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= args.size()) throw usage_error(name + " needs a value");
      return args[++i];
    };
    if (name == "--with") {
      const auto v = take();
      if (v != "slurm") throw usage_error("--with expects 'slurm' (the only backend), got '" + v + "'");
      continue;
    }
    if (s.requested) {
      if (name == "--ntasks" || name == "-n") {
        s.ntasks = parse_positive("--ntasks", take());
        continue;
      }
      if (name == "--nodes") {
        s.nodes = parse_positive(name, take());
        continue;
      }
      if (name == "--cpus-per-task") {
        s.cpus_per_task = parse_positive(name, take());
        continue;
      }
      if (name == "--mem") {
        s.mem = one_line(name, take());
        continue;
      }
      if (name == "--time") {
        s.time = one_line(name, take());
        continue;
      }
      if (name == "--partition") {
        s.partition = one_line(name, take());
        continue;
      }
      if (name == "--job-dir") {
        s.job_dir = one_line(name, take());
        if (s.job_dir.empty()) throw usage_error("--job-dir expects a directory");
        continue;
      }
      if (name == "--wait" && !inline_value) {
        s.wait = true;
        continue;
      }
    }
    if (rest) rest->push_back(a);
  }
  if (s.nodes > s.ntasks) {
    throw usage_error("--nodes " + std::to_string(s.nodes) + " is more than --ntasks " + std::to_string(s.ntasks) +
                      ": every node needs at least one rank");
  }
  return s;
}

std::string batch_script(const slurm_submission& s, const std::string& program, const std::vector<std::string>& args,
                         const std::string& cwd, const std::string& log_pattern, const std::string& origin) {
  std::string out = "#!/bin/bash\n";
  out += "# Written by rankflow --with slurm for:\n#   " + comment_text(origin) + "\n";
  out += "# Resubmit it with `sbatch THIS_FILE`, after editing the #SBATCH lines if you like.\n";
  out += "#SBATCH --job-name=" + comment_text(basename_of(program)) + "\n";
  out += "#SBATCH --ntasks=" + std::to_string(s.ntasks) + "\n";
  if (s.nodes) out += "#SBATCH --nodes=" + std::to_string(s.nodes) + "\n";
  if (s.cpus_per_task) out += "#SBATCH --cpus-per-task=" + std::to_string(s.cpus_per_task) + "\n";
  if (!s.mem.empty()) out += "#SBATCH --mem=" + one_line("--mem", s.mem) + "\n";
  if (!s.time.empty()) out += "#SBATCH --time=" + one_line("--time", s.time) + "\n";
  if (!s.partition.empty()) out += "#SBATCH --partition=" + one_line("--partition", s.partition) + "\n";
  out += "#SBATCH --output=" + one_line("--job-dir", log_pattern) + "\n";
  out += "#SBATCH --chdir=" + one_line("the current directory", cwd) + "\n";
  out += "set -euo pipefail\n";
  if (::geteuid() == 0)
    out += "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # submitted as root\n";
  // Open MPI's daemons notice a node cut off only after 8 minutes of TCP
  // keepalive by default; below --peer-timeout they end such a job in ~25 s.
  out += "# A node cut off mid-job ends the job in about 25 s, not 8 minutes (docs/multinode.md).\n";
  out += "export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-10}\n";
  out += "export OMPI_MCA_oob_tcp_keepalive_intvl=${OMPI_MCA_oob_tcp_keepalive_intvl:-5}\n";
  out += "export OMPI_MCA_oob_tcp_keepalive_probes=${OMPI_MCA_oob_tcp_keepalive_probes:-3}\n";
  out += "# mpirun takes the ranks and nodes from the allocation";
  std::string launch = "exec mpirun";
  if (s.cpus_per_task > 1) {
    // Each rank owns several CPUs: no binding to one core, so that its
    // threads (rankflow::core_pool reads SLURM_CPUS_PER_TASK) can use them.
    out += "; each rank may use its " + std::to_string(s.cpus_per_task) + " CPUs";
    launch += " --bind-to none";
  }
  out += ".\n" + launch + " " + quote(program);
  for (const auto& a : args) out += " " + quote(a);
  return out + "\n";
}

int submit_with_slurm(const slurm_submission& s, const std::vector<std::string>& args, const std::string& origin) {
  if (!on_path("sbatch")) {
    std::fprintf(stderr,
                 "rankflow --with slurm: sbatch is not on PATH. Run this on a Slurm login node, or leave out "
                 "--with slurm to run here (mpirun -n N ...).\n");
    return 2;
  }
  const auto cwd = current_dir();
  const auto program = self_exe();
  const auto name = basename_of(program);
  std::string dir = s.job_dir[0] == '/' ? s.job_dir : cwd + "/" + s.job_dir;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "rankflow --with slurm: cannot create %s: %s\n", dir.c_str(), std::strerror(errno));
    return 4;
  }
  const auto draft = dir + "/" + name + "-submitting-" + std::to_string(::getpid()) + ".sbatch";
  {
    std::ofstream f(draft);
    f << batch_script(s, program, args, cwd, dir + "/" + name + "-%j.out", origin);
    if (!f.flush()) {
      std::fprintf(stderr, "rankflow --with slurm: cannot write %s\n", draft.c_str());
      return 4;
    }
  }
  int out_pipe[2];
  if (::pipe(out_pipe) != 0) return 4;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    if (s.wait) {
      ::execlp("sbatch", "sbatch", "--parsable", "--wait", draft.c_str(), static_cast<char*>(nullptr));
    } else {
      ::execlp("sbatch", "sbatch", "--parsable", draft.c_str(), static_cast<char*>(nullptr));
    }
    std::perror("rankflow --with slurm: sbatch");
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  // sbatch --parsable prints "JOBID[;CLUSTER]" as soon as the job is queued.
  std::string line;
  char c = 0;
  while (::read(out_pipe[0], &c, 1) == 1 && c != '\n') line += c;
  const std::string job = line.substr(0, line.find(';'));
  if (job.empty() || job.find_first_not_of("0123456789") != std::string::npos) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    ::close(out_pipe[0]);
    std::fprintf(stderr, "rankflow --with slurm: sbatch did not submit the job (exit %d); the script is %s\n",
                 WIFEXITED(st) ? WEXITSTATUS(st) : 1, draft.c_str());
    return WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1;
  }
  const auto script = dir + "/" + name + "-" + job + ".sbatch";
  const auto log = dir + "/" + name + "-" + job + ".out";
  if (::rename(draft.c_str(), script.c_str()) != 0) std::perror("rankflow --with slurm: renaming the script");
  std::printf("rankflow: submitted batch job %s (%d task%s)\n  log:    %s\n  script: %s\n", job.c_str(), s.ntasks,
              s.ntasks == 1 ? "" : "s", log.c_str(), script.c_str());
  std::fflush(stdout);
  if (!s.wait) {
    ::close(out_pipe[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    std::printf("Follow it with: tail -f %s   (squeue -j %s shows its state)\n", log.c_str(), job.c_str());
    return 0;
  }
  // --wait: sbatch returns when the job ends, with its exit code; meanwhile
  // the log is copied to our stdout as it grows.
  std::uint64_t offset = 0;
  int st = 0;
  for (;;) {
    follow(log, offset);
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the last lines of a shared file system
  follow(log, offset);
  ::close(out_pipe[0]);
  const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
  std::printf("rankflow: batch job %s ended with exit code %d (log: %s)\n", job.c_str(), code, log.c_str());
  return code;
}

}  // namespace rankflow
