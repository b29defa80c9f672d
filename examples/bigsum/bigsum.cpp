#include "bigsum.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <limits>
#include <vector>

#include <cstdio>
#include <cstring>
#include <span>

namespace bigsum {

// ---- the row generator ----------------------------------------------------
//
// element_from_key() is one SplitMix64 finaliser per element: two 64-bit
// multiplies, a few shifts, and an int -> double conversion. Built for
// baseline x86-64 (SSE2, what a distribution's compiler targets) the loop
// stays scalar: SSE2 has neither a 64-bit multiply nor a 64-bit conversion.
// Measured on this project's 2-core AMD EPYC VM, 2e8 elements (one rank's
// share of 20000 x 20000 at -n 2): scalar 285 ms; AVX2 (multiplies emulated,
// the conversion below) 245 ms; AVX-512DQ (vpmullq, vcvtqq2pd) 70-78 ms. So
// the row loop is compiled three times and picked once per process by cpuid;
// all three give the bits of element(), which tests/unit/examples checks.
namespace {

constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ULL;

// 53 bits to double without a 64-bit conversion instruction: the high 52
// bits as the mantissa of 2^52 + h (exact), doubled, plus the low bit; every
// step is exact because every value stays below 2^53.
inline double exact_53_bits(std::uint64_t v) noexcept {
  const std::uint64_t hi = (v >> 1) | 0x4330000000000000ULL, lo = (v & 1) | 0x4330000000000000ULL;
  double h, l;
  std::memcpy(&h, &hi, sizeof h);
  std::memcpy(&l, &lo, sizeof l);
  return ((h - 0x1.0p52) * 2.0 + (l - 0x1.0p52)) * 0x1.0p-53;
}

// Signed conversion of a value below 2^53 (exact; vcvtqq2pd on AVX-512DQ).
inline double signed_53_bits(std::uint64_t v) noexcept {
  return static_cast<double>(static_cast<std::int64_t>(v)) * 0x1.0p-53;
}

void fill_scalar(std::uint64_t key, double* out, std::size_t cols) noexcept {
  for (std::size_t j = 0; j < cols; ++j) out[j] = signed_53_bits(mix64(key + j * golden) >> 11);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define BIGSUM_X86_PATHS 1
[[gnu::target("avx2")]] void fill_avx2(std::uint64_t key, double* out, std::size_t cols) noexcept {
  for (std::size_t j = 0; j < cols; ++j) out[j] = exact_53_bits(mix64(key + j * golden) >> 11);
}
[[gnu::target("avx512f,avx512dq,avx512vl")]] void fill_avx512(std::uint64_t key, double* out,
                                                               std::size_t cols) noexcept {
  for (std::size_t j = 0; j < cols; ++j) out[j] = signed_53_bits(mix64(key + j * golden) >> 11);
}
#endif

using fill_fn = void (*)(std::uint64_t, double*, std::size_t) noexcept;

fill_fn fill_for(isa v) noexcept {
#ifdef BIGSUM_X86_PATHS
  if (v == isa::avx512) return fill_avx512;
  if (v == isa::avx2) return fill_avx2;
#endif
  (void)v;
  return fill_scalar;
}

}  // namespace

bool supported(isa v) noexcept {
  switch (v) {
    case isa::scalar:
      return true;
#ifdef BIGSUM_X86_PATHS
    case isa::avx2:
      return __builtin_cpu_supports("avx2");
    case isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#else
    default:
      return false;
#endif
  }
  return false;
}

isa best_isa() noexcept {
  static const isa best = supported(isa::avx512) ? isa::avx512 : supported(isa::avx2) ? isa::avx2 : isa::scalar;
  return best;
}

const char* to_string(isa v) noexcept {
  switch (v) {
    case isa::scalar:
      return "scalar";
    case isa::avx2:
      return "avx2";
    case isa::avx512:
      return "avx512";
  }
  return "?";
}

bool parse_isa(std::string_view text, std::optional<isa>& out) noexcept {
  if (text == "auto") {
    out.reset();
    return true;
  }
  for (auto v : {isa::scalar, isa::avx2, isa::avx512}) {
    if (text == to_string(v)) {
      out = v;
      return true;
    }
  }
  return false;
}

void generate_row(std::uint64_t seed, std::uint64_t i, double* out, std::size_t cols, isa v) noexcept {
  fill_for(v)(row_key(seed, i), out, cols);
}

void generate_row(std::uint64_t seed, std::uint64_t i, double* out, std::size_t cols) noexcept {
  static const fill_fn fill = fill_for(best_isa());
  fill(row_key(seed, i), out, cols);
}

double row_sum(const double* x, std::size_t n) noexcept {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int k = 0; k < 8; ++k) a[k] += x[j + k];
  }
  double tail = 0;
  for (; j < n; ++j) tail += x[j];
  return (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))) + tail;
}

const char* to_string(mode m) noexcept {
  switch (m) {
    case mode::automatic:
      return "auto";
    case mode::materialize:
      return "materialize";
    case mode::stream:
      return "stream";
  }
  return "?";
}

namespace {

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// Anonymous memory aligned to 2 MiB and marked for transparent huge pages:
// filling 25 GB through 4 KiB pages costs millions of page faults, which then
// dominate the generation time; with 2 MiB pages there are 512 times fewer.
class huge_buffer {
 public:
  explicit huge_buffer(std::size_t bytes) {
    constexpr std::size_t huge = std::size_t{2} << 20;
    len_ = bytes + huge;
    void* p = ::mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      throw rankflow::resource_error("bigsum: could not reserve " + rankflow::format_bytes(bytes) +
                                     " on this rank (mmap failed): add ranks or nodes, or use --mode stream");
    }
    base_ = p;
    auto addr = reinterpret_cast<std::uintptr_t>(p);
    data_ = reinterpret_cast<double*>((addr + huge - 1) & ~(huge - 1));
#ifdef MADV_HUGEPAGE
    ::madvise(data_, bytes, MADV_HUGEPAGE);  // advisory: fine if THP is off
#endif
  }
  ~huge_buffer() {
    if (base_) ::munmap(base_, len_);
  }
  huge_buffer(const huge_buffer&) = delete;
  huge_buffer& operator=(const huge_buffer&) = delete;
  double* data() const noexcept { return data_; }

 private:
  void* base_ = nullptr;
  std::size_t len_ = 0;
  double* data_ = nullptr;
};

void validate(const params& p) {
  if (p.rows <= 0 || p.cols <= 0) {
    throw rankflow::usage_error("bigsum: --rows and --cols must be positive, got " + std::to_string(p.rows) + " x " +
                                std::to_string(p.cols));
  }
  if (p.block_rows < 0) throw rankflow::usage_error("bigsum: --block-rows must be >= 0 (0 = automatic)");
  // One row is generated whole even when streaming; its bytes, and the
  // matrix's, are computed below without wrapping.
  if (static_cast<std::uint64_t>(p.cols) > std::numeric_limits<std::size_t>::max() / sizeof(double)) {
    throw rankflow::usage_error("bigsum: --cols " + std::to_string(p.cols) +
                                " makes one row larger than this machine can address (2^64 bytes)");
  }
  if (p.save && p.how == mode::stream) {
    throw rankflow::usage_error("bigsum: --save needs the matrix in memory; use --mode materialize (or auto)");
  }
}

}  // namespace

// Times each partition where it runs: items of a partition are mapped in
// order on one rank, so its first item starts the clock and its last stops it.
class partition_timer {
 public:
  partition_timer(bool on, const rankflow::partition_plan& plan) : on_(on), plan_(plan) {}
  void before(std::int64_t i) {
    if (on_ && i % plan_.chunk == 0) t0_ = clock_type::now();
  }
  void after(std::int64_t i) {
    if (on_ && (i % plan_.chunk == plan_.chunk - 1 || i == plan_.items - 1)) {
      done_.push_back(static_cast<double>(i / plan_.chunk));
      done_.push_back(ms_since(t0_));
    }
  }
  /// Every rank's (partition, ms) pairs on rank 0, in partition order.
  std::vector<std::pair<std::int64_t, double>> gather(MPI_Comm comm, int rank, int size) {
    std::vector<std::pair<std::int64_t, double>> out;
    if (!on_) return out;
    int n = static_cast<int>(done_.size());
    std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
    rankflow::detail::check_mpi(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm), "MPI_Gather");
    int total = 0;
    for (int r = 0; r < size; ++r) {
      displs[static_cast<std::size_t>(r)] = total;
      total += counts[static_cast<std::size_t>(r)];
    }
    std::vector<double> all(rank == 0 ? static_cast<std::size_t>(total) : 0);
    rankflow::detail::check_mpi(
        MPI_Gatherv(done_.data(), n, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE, 0, comm),
        "MPI_Gatherv");
    for (std::size_t k = 0; k + 1 < all.size(); k += 2) out.emplace_back(static_cast<std::int64_t>(all[k]), all[k + 1]);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  bool on_;
  rankflow::partition_plan plan_;
  clock_type::time_point t0_{};
  std::vector<double> done_;
};

namespace {

const auto plus = [](double a, double b) { return a + b; };

// materialize or stream: decided together, the largest block any rank must
// hold against the smallest budget any rank has.
mode choose_mode(rankflow::Runtime& rt, const params& p, const rankflow::range& mine, const result& r) {
  auto world = rt.world();
  MPI_Comm comm = world;
  const auto cols = static_cast<std::size_t>(p.cols);
  std::uint64_t need = 0;
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(mine.size()), cols * sizeof(double), &need)) {
    need = std::numeric_limits<std::uint64_t>::max();
  }
  const rankflow::memory_budget budget = rankflow::query_memory(comm);
  std::uint64_t avail = budget.per_rank_bytes / 10 * 9;  // leave 10% for everything else
  rankflow::detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &need, 1, MPI_UINT64_T, MPI_MAX, comm), "MPI_Allreduce");
  rankflow::detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &avail, 1, MPI_UINT64_T, MPI_MIN, comm), "MPI_Allreduce");
  if (need > avail) {
    const std::string why = "materialize needs " + rankflow::format_bytes(r.bytes) + " (" +
                            rankflow::format_bytes(need) + " on the busiest of " + std::to_string(rt.size()) +
                            " ranks), " + rankflow::format_bytes(avail) + " available on each of " +
                            std::to_string(rt.size()) + " ranks (" + budget.source + ", " +
                            std::to_string(budget.ranks_on_node) + " ranks per node, 10% kept free)";
    if (p.how == mode::materialize) {
      throw rankflow::resource_error("bigsum: " + why + ": add ranks or nodes, or use --mode stream");
    }
    if (rt.is_scheduler()) rankflow::log::info() << why << "; streaming instead";
    return mode::stream;
  }
  return mode::materialize;
}

// The whole block of rows in memory (generated first, timed apart), then summed.
void sum_materialized(rankflow::Runtime& rt, const params& p, const rankflow::range& rows,
                      const rankflow::range& mine, const rankflow::partition_plan& plan, partition_timer& timer,
                      rankflow::Run* tracked, result& r) {
  auto world = rt.world();
  MPI_Comm comm = world;
  const auto cols = static_cast<std::size_t>(p.cols);
  huge_buffer buf(static_cast<std::size_t>(mine.size()) * cols * sizeof(double));
  world.barrier();
  auto t0 = clock_type::now();
  // Generation is a blocked call of its own, so that rank 0 shows its
  // progress like the sum's and a signal or the job's end stops it between
  // partitions. Each rank fills the rows it owns, in place. Not recorded in
  // the run's ledger: a resumed job needs its matrix in memory again.
  const std::int64_t filled = rt.mapreduce(
      rows,
      [&](std::int64_t i) {
        generate_row(p.seed, static_cast<std::uint64_t>(i),
                     buf.data() + static_cast<std::size_t>(i - mine.first) * cols, cols, r.generator);
        return std::int64_t{1};
      },
      std::plus<std::int64_t>{},
      {.chunk_size = plan.chunk, .sched = rankflow::schedule::blocked, .step = "generate", .record = false});
  if (rt.is_scheduler() && filled != p.rows) {
    throw std::logic_error("bigsum: generation filled " + std::to_string(filled) + " of " + std::to_string(p.rows) +
                           " rows");
  }
  r.generate_ms = ms_since(t0);
  rankflow::detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &r.generate_ms, 1, MPI_DOUBLE, MPI_MAX, comm),
                              "MPI_Allreduce");
  world.barrier();
  t0 = clock_type::now();
  r.sum = rt.mapreduce(rows,
                       [&](std::int64_t i) {
                         timer.before(i);
                         const double s = row_sum(buf.data() + static_cast<std::size_t>(i - mine.first) * cols, cols);
                         timer.after(i);
                         return s;
                       },
                       plus, {.chunk_size = plan.chunk, .sched = rankflow::schedule::blocked, .step = "sum"});
  r.sum_ms = ms_since(t0);
  if (p.save && tracked) {
    t0 = clock_type::now();
    tracked->write_array("matrix", std::span<const double>(buf.data(), static_cast<std::size_t>(mine.size()) * cols),
                         {static_cast<std::uint64_t>(mine.size()), cols}, {static_cast<std::uint64_t>(p.rows), cols},
                         {static_cast<std::uint64_t>(mine.first), 0});
    r.save_ms = ms_since(t0);
  }
}

// One row per thread at a time, generated where it is summed.
void sum_streamed(rankflow::Runtime& rt, const params& p, const rankflow::range& rows,
                  const rankflow::partition_plan& plan, partition_timer& timer, result& r) {
  auto world = rt.world();
  MPI_Comm comm = world;
  const auto cols = static_cast<std::size_t>(p.cols);
  // Streaming holds one row per thread: it must fit too.
  const rankflow::memory_budget budget = rankflow::query_memory(comm);
  std::uint64_t avail = budget.per_rank_bytes / 10 * 9;
  rankflow::detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &avail, 1, MPI_UINT64_T, MPI_MIN, comm), "MPI_Allreduce");
  if (cols * sizeof(double) > avail) {
    throw rankflow::resource_error("bigsum: one row of " + std::to_string(p.cols) + " columns needs " +
                                   rankflow::format_bytes(cols * sizeof(double)) + ", " +
                                   rankflow::format_bytes(avail) + " available on each rank (" + budget.source +
                                   "): use fewer columns");
  }
  world.barrier();
  const auto t0 = clock_type::now();
  r.sum = rt.mapreduce(rows,
                       [&](std::int64_t i) {
                         thread_local std::vector<double> row;
                         timer.before(i);
                         row.resize(cols);
                         generate_row(p.seed, static_cast<std::uint64_t>(i), row.data(), cols, r.generator);
                         const double s = row_sum(row.data(), cols);
                         timer.after(i);
                         return s;
                       },
                       plus, {.chunk_size = plan.chunk, .step = "stream"});
  r.sum_ms = ms_since(t0);
}

}  // namespace

// The path each rank generates with. A pinned path must exist on every rank
// (nodes may differ): agreed on by all ranks, so that all of them refuse it.
isa choose_isa(rankflow::Runtime& rt, const params& p) {
  if (!p.generator) return best_isa();
  int ok = supported(*p.generator) ? 1 : 0;
  rankflow::detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, rt.world()), "MPI_Allreduce");
  if (!ok) {
    std::string here;
    for (auto v : {isa::scalar, isa::avx2, isa::avx512}) {
      if (supported(v)) here += std::string(here.empty() ? "" : ", ") + to_string(v);
    }
    throw rankflow::usage_error(std::string("bigsum: --isa ") + to_string(*p.generator) +
                                ": not every rank's CPU has it (rank " + std::to_string(rt.rank()) + " has " + here +
                                "); use --isa auto, which picks each rank's best and gives the same matrix");
  }
  return *p.generator;
}

result run(rankflow::Runtime& rt, const params& p, rankflow::Run* tracked) {
  validate(p);
  const rankflow::range rows(0, p.rows);
  const auto plan = rankflow::make_plan(rows.size(), p.block_rows);
  const auto cols = static_cast<std::size_t>(p.cols);

  result r;
  r.partitions = plan.count;
  r.generator = choose_isa(rt, p);
  // rows * cols * 8 wrapped to 0 for --rows 1 --cols 2^61, which passed the
  // memory check and wrote a 2 MiB buffer far past its end. Saturate: a
  // matrix over 2^64 bytes never fits.
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(p.rows), cols * sizeof(double), &r.bytes)) {
    r.bytes = std::numeric_limits<std::uint64_t>::max();
  }
  const rankflow::range mine = rt.owned_items(rows, plan.chunk);
  partition_timer timer(tracked != nullptr, plan);
  r.used = p.how == mode::stream ? mode::stream : choose_mode(rt, p, mine, r);
  if (r.used == mode::materialize) {
    sum_materialized(rt, p, rows, mine, plan, timer, tracked, r);
  } else {
    sum_streamed(rt, p, rows, plan, timer, r);
  }
  r.partition_ms = timer.gather(rt.world(), rt.rank(), rt.size());
  return r;
}

void track_params(rankflow::Runtime& rt, rankflow::Run& run, const params& p) {
  if (!rt.is_scheduler()) return;
  run["params/rows"] = p.rows;
  run["params/cols"] = p.cols;
  run["params/seed"] = static_cast<std::int64_t>(p.seed);
  run["params/mode"] = to_string(p.how);
  run["params/block_rows"] = p.block_rows;
  run["params/save"] = p.save;
  run["params/isa"] = p.generator ? to_string(*p.generator) : "auto";
  run["sys/ranks"] = rt.size();
}

void track(rankflow::Runtime& rt, rankflow::Run& run, const params& p, const result& r) {
  if (!rt.is_scheduler()) return;
  run["result/mode"] = to_string(r.used);
  run["result/isa"] = to_string(r.generator);
  run["result/partitions"] = r.partitions;
  run["result/bytes"] = static_cast<std::int64_t>(r.bytes);
  run["result/sum"] = r.sum;
  char hex[64];
  std::snprintf(hex, sizeof hex, "%a", r.sum);
  run["result/sum_hex"] = std::string(hex);  // the exact bits, as printed
  run["timing/sum_ms"] = r.sum_ms;
  if (r.used == mode::materialize) run["timing/generate_ms"] = r.generate_ms;
  if (p.save) run["timing/save_ms"] = r.save_ms;
  for (const auto& [partition, ms] : r.partition_ms) {
    run["timing/partition_ms"].append(ms, {.step = static_cast<double>(partition)});
  }
}

}  // namespace bigsum
