#include <rankflow/core/detail/transport.hpp>
#include <rankflow/runtime/resources.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace rankflow {

namespace {

bool read_u64(const char* path, std::uint64_t& out) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return false;
  char* end = nullptr;
  out = std::strtoull(s.c_str(), &end, 10);
  return end && *end == '\0';
}

std::uint64_t mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

void tighten(memory_budget& b, std::uint64_t bytes, const char* source) {
  if (bytes > 0 && (b.node_bytes == 0 || bytes < b.node_bytes)) {
    b.node_bytes = bytes;
    b.source = source;
  }
}

std::uint64_t env_mb(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  return std::strtoull(v, nullptr, 10) * 1024 * 1024;
}

}  // namespace

memory_budget query_memory(MPI_Comm comm) {
  memory_budget b;
  tighten(b, mem_available(), "MemAvailable");
  std::uint64_t limit = 0, usage = 0;
  if (read_u64("/sys/fs/cgroup/memory.max", limit) && read_u64("/sys/fs/cgroup/memory.current", usage)) {
    tighten(b, limit > usage ? limit - usage : 1, "cgroup memory.max");
  } else if (read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
             read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes", usage) && limit < (std::uint64_t{1} << 60)) {
    tighten(b, limit > usage ? limit - usage : 1, "cgroup memory.limit_in_bytes");
  }
  tighten(b, env_mb("SLURM_MEM_PER_NODE"), "SLURM_MEM_PER_NODE");
  if (std::uint64_t per_cpu = env_mb("SLURM_MEM_PER_CPU")) {
    const char* cpus = std::getenv("SLURM_CPUS_ON_NODE");
    tighten(b, per_cpu * (cpus ? std::strtoull(cpus, nullptr, 10) : 1), "SLURM_MEM_PER_CPU");
  }
  MPI_Comm node = MPI_COMM_NULL;
  detail::check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  detail::check_mpi(MPI_Comm_size(node, &b.ranks_on_node), "MPI_Comm_size");
  MPI_Comm_free(&node);
  b.per_rank_bytes = b.node_bytes / static_cast<std::uint64_t>(b.ranks_on_node);
  return b;
}

std::string format_bytes(std::uint64_t n) {
  char buf[32];
  const double v = static_cast<double>(n);
  if (v >= 1e12) {
    std::snprintf(buf, sizeof buf, "%.1f TB", v / 1e12);
  } else if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.1f GB", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f MB", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
  }
  return buf;
}

}  // namespace rankflow
