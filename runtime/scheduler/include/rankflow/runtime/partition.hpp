// Index ranges and how they are cut into partitions.
//
// Partition boundaries depend only on the number of items and the chunk size,
// never on the number of ranks: that is what makes mapreduce bit-identical for
// any -n (see docs/determinism.md).
#pragma once

#include <algorithm>
#include <cstdint>

namespace rankflow {

/// The half-open index range [first, last), as in Python's range(first, last).
struct range {
  std::int64_t first = 0;
  std::int64_t last = 0;

  constexpr range() = default;
  constexpr range(std::int64_t first_, std::int64_t last_) : first(first_), last(last_ > first_ ? last_ : first_) {}
  constexpr std::int64_t size() const noexcept { return last - first; }
  constexpr bool empty() const noexcept { return last == first; }
};

/// How partitions are handed to ranks.
enum class schedule {
  /// Rank 0 hands out partitions as ranks become free (load balancing).
  dynamic,
  /// Rank r runs the contiguous block of partitions owned_partitions() gives
  /// it, for data that already lives on that rank (bigsum's materialised rows).
  blocked,
};

/// The partitions of n items: partition p covers items [p*chunk, min(n, (p+1)*chunk)).
struct partition_plan {
  std::int64_t items = 0;
  std::int64_t chunk = 1;
  std::int64_t count = 0;

  constexpr std::int64_t begin(std::int64_t p) const noexcept { return p * chunk; }
  // begin(p) + chunk may pass INT64_MAX for the last partition of a huge
  // range: compare with what is left instead of adding.
  constexpr std::int64_t end(std::int64_t p) const noexcept {
    const std::int64_t b = begin(p);
    return items - b <= chunk ? items : b + chunk;
  }
};

/// The automatic chunk size: about 2048 partitions, enough for dynamic load
/// balancing on hundreds of ranks while keeping per-partition messages rare.
/// A function of `items` only.
constexpr std::int64_t auto_chunk(std::int64_t items) noexcept {
  constexpr std::int64_t target_partitions = 2048;
  // items / t + (items % t != 0): the ceiling without items + t - 1, which
  // overflows for ranges near INT64_MAX.
  return items <= target_partitions ? 1 : items / target_partitions + (items % target_partitions != 0);
}

/// chunk <= 0 selects auto_chunk(items).
constexpr partition_plan make_plan(std::int64_t items, std::int64_t chunk) noexcept {
  partition_plan p;
  p.items = items < 0 ? 0 : items;
  p.chunk = chunk > 0 ? chunk : auto_chunk(p.items);
  p.count = p.items / p.chunk + (p.items % p.chunk != 0);  // no p.items + p.chunk - 1: it overflows
  return p;
}

/// Partitions [first, last) owned by `rank` of `ranks` under schedule::blocked:
/// contiguous blocks whose sizes differ by at most one.
struct partition_block {
  std::int64_t first = 0;
  std::int64_t last = 0;
};
constexpr partition_block blocked_partitions(std::int64_t partitions, int rank, int ranks) noexcept {
  // partitions * rank overflows int64 for huge partition counts: split it
  // into quotient and remainder (q*ranks + r) * rank / ranks = q*rank + r*rank/ranks.
  const std::int64_t q = partitions / ranks, r = partitions % ranks;
  return {q * rank + r * rank / ranks, q * (rank + 1) + r * (rank + 1) / ranks};
}

}  // namespace rankflow
