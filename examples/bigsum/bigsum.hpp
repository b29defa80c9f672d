// Metaflow's BigSum as an MPI program: the sum of a rows x cols matrix of
// uniform [0, 1) doubles, identical for any number of ranks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <rankflow/rankflow.hpp>

namespace bigsum {

/// Element (i, j) of the matrix for `seed`: a counter-based generator (a
/// SplitMix64 finaliser over a key mixed from seed, i and j), so any rank can
/// produce any element without state and the matrix is the same for any N.
inline std::uint64_t mix64(std::uint64_t z) noexcept {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z;
}
inline std::uint64_t row_key(std::uint64_t seed, std::uint64_t i) noexcept {
  return mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (i * 0xd1b54a32d192ed03ULL);
}
inline double element_from_key(std::uint64_t key, std::uint64_t j) noexcept {
  // 53 random bits scaled by 2^-53: exact, uniform on [0, 1).
  return static_cast<double>(mix64(key + j * 0x9e3779b97f4a7c15ULL) >> 11) * 0x1.0p-53;
}
inline double element(std::uint64_t seed, std::uint64_t i, std::uint64_t j) noexcept {
  return element_from_key(row_key(seed, i), j);
}

/// Vector instructions the row generator can use. Every path computes the
/// same bits as element(): the conversion to double is exact (53 bits), and
/// the only floating-point operations are exact ones, so the matrix and the
/// sums do not depend on the CPU.
enum class isa { scalar, avx2, avx512 };

/// The best path this CPU runs (checked once, with cpuid).
isa best_isa() noexcept;
bool supported(isa v) noexcept;
const char* to_string(isa v) noexcept;

/// Fills out[0, cols) with row i, on the best path this CPU has. At -n 2 on
/// an AVX-512 machine a 20000 x 20000 matrix fills about 4x faster than the
/// scalar loop a compiler makes of element() for baseline x86-64.
void generate_row(std::uint64_t seed, std::uint64_t i, double* out, std::size_t cols) noexcept;
/// The same on a given path (tests and benchmarks); v must be supported(v).
void generate_row(std::uint64_t seed, std::uint64_t i, double* out, std::size_t cols, isa v) noexcept;

/// Sum of one row in a fixed order (eight interleaved partial sums, then a
/// fixed combination), the same whether the row is in memory or was just
/// generated. No -ffast-math: the compiler may not reorder these additions.
double row_sum(const double* x, std::size_t n) noexcept;

enum class mode { automatic, materialize, stream };

struct params {
  std::int64_t rows = 80000;
  std::int64_t cols = 80000;
  std::uint64_t seed = 42;
  mode how = mode::automatic;
  std::int64_t block_rows = 0;  ///< rows per partition; 0 = rankflow::auto_chunk(rows)
  bool save = false;            ///< store the materialised matrix in the run (Run::write_array)
  /// Generator path; nullopt: the best each rank's CPU has. The bits are the
  /// same on every path: pinning one (--isa scalar) changes only the speed.
  std::optional<isa> generator;
};

struct result {
  double sum = 0;
  mode used = mode::stream;
  double generate_ms = 0;  ///< materialize only: slowest rank's fill time
  double sum_ms = 0;       ///< the mapreduce (for stream: generation and sum together)
  double save_ms = 0;
  isa generator = isa::scalar;  ///< the path rank 0 used
  std::int64_t partitions = 0;
  std::uint64_t bytes = 0;  ///< size of the whole matrix
  /// On rank 0 when tracked: (partition, milliseconds) of every partition, in partition order.
  std::vector<std::pair<std::int64_t, double>> partition_ms;
};

/// Runs bigsum on every rank of rt (collective). Throws rankflow::resource_error
/// when materialize was asked for and does not fit, before allocating. With a
/// run, per-partition times are collected and --save writes the matrix into it.
result run(rankflow::Runtime& rt, const params& p, rankflow::Run* tracked = nullptr);

/// Records the parameters and rank count (before computing, so that an
/// interrupted run has them too).
void track_params(rankflow::Runtime& rt, rankflow::Run& tracked, const params& p);

/// Records the mode used, the sum (and its exact bits), the times and the
/// per-partition times in `tracked` (rank 0 writes; safe to call on every rank).
void track(rankflow::Runtime& rt, rankflow::Run& tracked, const params& p, const result& r);

const char* to_string(mode m) noexcept;
/// "auto" (out = nullopt), "scalar", "avx2" or "avx512" (--isa); false for anything else.
bool parse_isa(std::string_view text, std::optional<isa>& out) noexcept;

}  // namespace bigsum
