#include "provenance.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include <boost/version.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <rankflow/core/detail/spawn.hpp>
#include <rankflow/core/detail/transport.hpp>
#include <rankflow/core/error.hpp>

#include "journal.hpp"
#include <rankflow/tracking/detail/store.hpp>

extern char** environ;

namespace rankflow::tracking {

namespace {

// A 64-bit multiply-xorshift hash over 8-byte words and the CRC-32C of the
// executable: 96 bits, enough to tell two builds apart (not a defence against
// someone crafting a collision), at several GB/s (start_run hashes on every rank).
std::string executable_hash(std::string& path_out) {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  path_out.assign(buf, static_cast<std::size_t>(n));
  const int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::uint64_t h = 0x9E3779B97F4A7C15ull;
  std::uint32_t crc = 0;
  std::uint64_t size = 0;
  std::vector<unsigned char> block(std::size_t{1} << 20);
  for (;;) {
    const ssize_t got = ::read(fd, block.data(), block.size());
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    const auto g = static_cast<std::size_t>(got);
    std::size_t k = 0;
    for (; k + 8 <= g; k += 8) {
      std::uint64_t w = 0;
      std::memcpy(&w, block.data() + k, 8);
      h = (h ^ w) * 0xFF51AFD7ED558CCDull;
      h ^= h >> 29;
    }
    for (; k < g; ++k) h = (h ^ block[k]) * 0xC4CEB9FE1A85EC53ull;
    crc = crc32c(block.data(), g, crc);
    size += g;
  }
  ::close(fd);
  char out[64];
  std::snprintf(out, sizeof out, "%016llx%08x-%llu", static_cast<unsigned long long>(h), crc,
                static_cast<unsigned long long>(size));
  return out;
}

// This host: "CPU model, N cores, M MB".
std::string host_hardware() {
  std::string model;
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      model = line.substr(line.find(':') == std::string::npos ? line.size() : line.find(':') + 1);
      while (!model.empty() && model.front() == ' ') model.erase(model.begin());
      break;
    }
  }
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  long long mem_kb = 0;
  std::ifstream mem("/proc/meminfo");
  for (std::string line; std::getline(mem, line);) {
    if (line.rfind("MemTotal:", 0) == 0) {
      mem_kb = std::atoll(line.c_str() + 9);
      break;
    }
  }
  return (model.empty() ? std::string("unknown CPU") : model) + ", " + std::to_string(cores) + " cores, " +
         std::to_string(mem_kb / 1024) + " MB";
}

std::string capture(const std::vector<std::string>& argv, std::size_t cap, bool* cut = nullptr) {
  return detail::capture_output(argv, cap, cut);  // core's: posix_spawn, never fork
}

// Text for a String field: rankflow stores UTF-8 without NUL, so other bytes
// (an environment variable in Latin-1) become '?' rather than a refused write.
std::string as_text(std::string s) {
  for (std::size_t at = invalid_utf8_at(s); at != std::string::npos; at = invalid_utf8_at(s)) s[at] = '?';
  for (auto& c : s) {
    if (c == '\0') c = '?';
  }
  return s;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string versions_mpi() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int n = 0;
  if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) return "";
  std::string s(v, ::strnlen(v, static_cast<std::size_t>(n)));  // n may count the NUL
  if (const auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return trimmed(s);
}

std::string versions_compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

// Gathers each rank's text to rank 0 (empty elsewhere).
std::vector<std::string> gather_text(MPI_Comm comm, int rank, int size, const std::string& mine) {
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  detail::check_mpi(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, comm), "MPI_Gather");
  std::string all;
  if (rank == 0) {
    int at = 0;
    for (int r = 0; r < size; ++r) {
      displs[static_cast<std::size_t>(r)] = at;
      at += lens[static_cast<std::size_t>(r)];
    }
    all.resize(static_cast<std::size_t>(at));
  }
  detail::check_mpi(MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, comm),
                    "MPI_Gatherv");
  std::vector<std::string> out;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      out.push_back(all.substr(static_cast<std::size_t>(displs[static_cast<std::size_t>(r)]),
                               static_cast<std::size_t>(lens[static_cast<std::size_t>(r)])));
    }
  }
  return out;
}

// Rank 0: the executable, and whether every rank ran the same one.
void check_executables(const std::vector<std::string>& hashes, const std::string& exe_path, int size,
                       const std::vector<std::string>& hosts, provenance& p) {
  std::map<std::string, std::vector<int>> by_hash;
  for (int r = 0; r < size; ++r) by_hash[hashes[static_cast<std::size_t>(r)]].push_back(r);
  const auto first = hashes[0].substr(0, hashes[0].find('\n'));
  p.strings.emplace_back("sys/provenance/executable/path", exe_path);
  p.strings.emplace_back("sys/provenance/executable/hash", first);
  if (by_hash.size() > 1) {
    std::string w = "ranks ran " + std::to_string(by_hash.size()) + " different executables:";
    for (const auto& [h, ranks] : by_hash) {
      w += " {" + h.substr(h.find('\n') + 1) + " " + h.substr(0, h.find('\n')) + ": rank";
      for (std::size_t k = 0; k < ranks.size() && k < 8; ++k) {
        const auto r = static_cast<std::size_t>(ranks[k]);
        w += (k ? ", " : " ") + std::to_string(ranks[k]) + (r < hosts.size() ? " (" + hosts[r] + ")" : "");
      }
      if (ranks.size() > 8) w += " and " + std::to_string(ranks.size() - 8) + " more";
      w += "}";
    }
    p.warning = w + "; results may not be reproducible: install one build on every node";
    p.strings.emplace_back("sys/provenance/warning", p.warning);
  }

}

void record_versions(provenance& p) {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  p.strings.emplace_back("sys/provenance/versions/compiler", versions_compiler());
  p.strings.emplace_back("sys/provenance/versions/mpi", versions_mpi());
  p.strings.emplace_back("sys/provenance/versions/boost", std::to_string(BOOST_VERSION / 100000) + "." +
                                                               std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                                                               std::to_string(BOOST_VERSION % 100));
  p.strings.emplace_back("sys/provenance/versions/hdf5",
                         std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel));

}

// The git checkout the program runs in, if any.
void record_source(provenance& p) {
  // One git process for the checkout and its revision, one for the diff.
  const auto where = trimmed(capture({"git", "rev-parse", "--show-toplevel", "HEAD"}, 8192));
  if (const auto nl = where.rfind('\n'); nl != std::string::npos) {
    p.strings.emplace_back("sys/provenance/source/repository", where.substr(0, nl));
    p.strings.emplace_back("sys/provenance/source/revision", where.substr(nl + 1));
    bool cut = false;
    p.diff = capture({"git", "diff", "HEAD", "--no-color", "--no-ext-diff"}, provenance_diff_cap, &cut);
    if (cut) p.diff += "\n[rankflow: the diff was cut at " + std::to_string(provenance_diff_cap) + " bytes]\n";
    p.strings.emplace_back("sys/provenance/source/dirty", p.diff.empty() ? "no" : "yes");
  }

}

// The job's environment (allow-listed) and its loaded modules.
void record_environment(provenance& p) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos && recorded_variable(kv.substr(0, eq))) env.push_back(kv);
  }
  std::sort(env.begin(), env.end());
  p.lists.emplace_back("sys/provenance/environment", env);
  if (const char* m = std::getenv("LOADEDMODULES"); m && *m) {  // Lmod and Environment Modules both set it
    std::vector<std::string> mods;
    std::string s = m;
    for (std::size_t start = 0; start <= s.size();) {
      const auto colon = std::min(s.find(':', start), s.size());
      if (colon > start) mods.push_back(s.substr(start, colon - start));
      start = colon + 1;
    }
    p.lists.emplace_back("sys/provenance/modules", mods);
  }
}

void record_hosts(const std::vector<std::string>& hardware, int size, const std::vector<std::string>& hosts,
                  provenance& p) {
  std::map<std::string, std::string> per_host;
  for (int r = 0; r < size; ++r) {
    const auto host = static_cast<std::size_t>(r) < hosts.size() ? hosts[static_cast<std::size_t>(r)] : "?";
    per_host.emplace(host, hardware[static_cast<std::size_t>(r)]);
  }
  std::vector<std::string> hw;
  for (const auto& [h, text] : per_host) hw.push_back(h + ": " + text);
  p.lists.emplace_back("sys/provenance/hosts", hw);
}

}  // namespace

bool recorded_variable(const std::string& name) {
  return name.rfind("SLURM_", 0) == 0 || name.rfind("OMP_", 0) == 0 || name.rfind("RANKFLOW_", 0) == 0 ||
         name == "CUDA_VISIBLE_DEVICES";
}

provenance collect_provenance(MPI_Comm comm, int rank, int size, const std::vector<std::string>& hosts) {
  // Every rank: its executable's hash, and its host's hardware.
  std::string exe_path;
  const std::string hash = executable_hash(exe_path);
  const auto hashes = gather_text(comm, rank, size, hash + '\n' + exe_path);
  const auto hardware = gather_text(comm, rank, size, host_hardware());
  provenance p;
  if (rank != 0) return p;
  check_executables(hashes, exe_path, size, hosts, p);
  record_versions(p);
  record_source(p);
  record_environment(p);
  record_hosts(hardware, size, hosts, p);
  for (auto& [path, v] : p.strings) v = as_text(std::move(v));
  for (auto& [path, v] : p.lists) {
    for (auto& x : v) x = as_text(std::move(x));
  }
  return p;
}

}  // namespace rankflow::tracking
