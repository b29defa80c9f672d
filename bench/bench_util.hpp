// Helpers for MPI benchmarks: every rank runs each benchmark in lockstep with a
// fixed iteration count; the reported time is the slowest rank's.
#pragma once

#include <benchmark/benchmark.h>
#include <mpi.h>

#include <chrono>

#include <rankflow/rankflow.hpp>

rankflow::Runtime& bench_runtime();

/// Times `body` on every rank between barriers; reports the maximum.
template <class Body>
double timed_max(Body&& body) {
  MPI_Barrier(MPI_COMM_WORLD);
  const auto t0 = std::chrono::steady_clock::now();
  body();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return s;
}
