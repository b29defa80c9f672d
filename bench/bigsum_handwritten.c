/* bigsum as a user writes it by hand in plain MPI, the yardstick of issue #17
 * item 6: static rows per rank, one 2 MiB-aligned buffer marked for
 * transparent huge pages, a SplitMix64 counter generator, the row sums, and
 * MPI_Reduce. No rankflow, no tracking, no checks: the fastest honest program.
 *
 *   mpirun -n 2 bigsum_handwritten [ROWS COLS [SEED]]
 *
 * Prints the sum and "wall_ms gen_ms sum_ms" measured from before MPI_Init
 * to after MPI_Finalize on rank 0, so bench/bigsum-pairs.sh can set it beside
 * `bigsum --mode materialize` run for run. It uses the same element function
 * as rankflow's bigsum (bigsum.hpp), written out again here so that the
 * yardstick owes nothing to rankflow's code: the printed sums must match. */
#define _GNU_SOURCE
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static inline uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z;
}

int main(int argc, char** argv) {
  const double t_start = now_ms();
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int64_t rows = argc > 2 ? atoll(argv[1]) : 20000;
  const int64_t cols = argc > 2 ? atoll(argv[2]) : 20000;
  const uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
  const int64_t r0 = rows * rank / size, r1 = rows * (rank + 1) / size;

  const size_t huge = (size_t)2 << 20, bytes = (size_t)(r1 - r0) * (size_t)cols * sizeof(double);
  char* base = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) MPI_Abort(MPI_COMM_WORLD, 3);
  double* m = (double*)(((uintptr_t)base + huge - 1) & ~(uintptr_t)(huge - 1));
  madvise(m, bytes, MADV_HUGEPAGE);

  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = now_ms();
  const uint64_t seed_key = mix64(seed + 0x9e3779b97f4a7c15ULL);
  uint64_t lanes[8];
  for (int64_t i = r0; i < r1; ++i) {
    double* row = m + (size_t)(i - r0) * (size_t)cols;
    const uint64_t key = seed_key ^ ((uint64_t)i * 0xd1b54a32d192ed03ULL);
    int64_t j = 0;
    /* Eight counters a step, the usual way to let the compiler use vectors. */
    for (; j + 8 <= cols; j += 8) {
      for (int k = 0; k < 8; ++k) lanes[k] = mix64(key + (uint64_t)(j + k) * 0x9e3779b97f4a7c15ULL) >> 11;
      for (int k = 0; k < 8; ++k) row[j + k] = (double)(int64_t)lanes[k] * 0x1.0p-53;
    }
    for (; j < cols; ++j) row[j] = (double)(int64_t)(mix64(key + (uint64_t)j * 0x9e3779b97f4a7c15ULL) >> 11) * 0x1.0p-53;
  }
  const double t1 = now_ms();
  double local = 0;
  for (int64_t i = r0; i < r1; ++i) {
    const double* x = m + (size_t)(i - r0) * (size_t)cols;
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8)
      for (int k = 0; k < 8; ++k) a[k] += x[j + k];
    for (; j < cols; ++j) tail += x[j];
    local += (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))) + tail;
  }
  double sum = 0;
  MPI_Reduce(&local, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  const double t2 = now_ms();
  double times[2] = {t1 - t0, t2 - t1};
  MPI_Allreduce(MPI_IN_PLACE, times, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  munmap(base, bytes + huge);
  MPI_Finalize();
  if (rank == 0) printf("sum %.6f\nwall_ms %.1f gen_ms %.1f sum_ms %.1f\n", sum, now_ms() - t_start, times[0], times[1]);
  return 0;
}
