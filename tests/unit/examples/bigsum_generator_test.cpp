// bigsum's row generator on every vector path this CPU has: each must give
// element()'s bits exactly, or the printed sum would depend on the machine.
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "bigsum.hpp"
#include "mpi_test.hpp"

namespace {

std::vector<bigsum::isa> paths() {
  std::vector<bigsum::isa> out;
  for (auto v : {bigsum::isa::scalar, bigsum::isa::avx2, bigsum::isa::avx512}) {
    if (bigsum::supported(v)) out.push_back(v);
  }
  return out;
}

}  // namespace

TEST(BigsumGenerator, EveryPathGivesElementsBitsForEveryRowLength) {
  // Lengths around the vector widths (2, 4, 8 doubles, unrolled) and a long row.
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n <= 67; ++n) lengths.push_back(n);
  lengths.push_back(20000);
  lengths.push_back(20001);
  for (auto v : paths()) {
    for (std::uint64_t seed : {0ULL, 42ULL, ~0ULL}) {
      for (std::uint64_t i : {0ULL, 1ULL, 12345ULL, (1ULL << 62) + 7}) {
        for (auto n : lengths) {
          std::vector<double> row(n + 1, -1.0);
          bigsum::generate_row(seed, i, row.data(), n, v);
          for (std::size_t j = 0; j < n; ++j) {
            const double want = bigsum::element(seed, i, j);
            ASSERT_EQ(std::bit_cast<std::uint64_t>(row[j]), std::bit_cast<std::uint64_t>(want))
                << bigsum::to_string(v) << " seed " << seed << " row " << i << " col " << j << " of " << n;
          }
          ASSERT_EQ(row[n], -1.0) << bigsum::to_string(v) << " wrote past the row's end (" << n << ")";
        }
      }
    }
  }
}

TEST(BigsumGenerator, ElementsAreUniformOnTheUnitIntervalWithAllBitsUsed) {
  // The conversion keeps all 53 bits: the lowest mantissa bit is set about
  // half the time (a 52-bit shortcut would never set it), and values stay in [0, 1).
  std::vector<double> row(100000);
  bigsum::generate_row(42, 3, row.data(), row.size());
  std::size_t odd = 0;
  double sum = 0;
  for (double x : row) {
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
    odd += static_cast<std::uint64_t>(std::ldexp(x, 53)) & 1;
    sum += x;
  }
  EXPECT_NEAR(static_cast<double>(odd) / row.size(), 0.5, 0.01);
  EXPECT_NEAR(sum / row.size(), 0.5, 0.005);
}

TEST(BigsumGenerator, TheDefaultPathIsTheBestThisCpuHas) {
  const auto best = bigsum::best_isa();
  EXPECT_TRUE(bigsum::supported(best));
  if (bigsum::supported(bigsum::isa::avx512)) {
    EXPECT_EQ(best, bigsum::isa::avx512);
  }
  std::printf("bigsum generator paths here:");
  for (auto v : paths()) std::printf(" %s", bigsum::to_string(v));
  std::printf(" (default %s)\n", bigsum::to_string(best));
}
