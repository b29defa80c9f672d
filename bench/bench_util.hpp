// Helpers for MPI benchmarks: every rank runs each benchmark in lockstep with a
// fixed iteration count; the reported time is the slowest rank's.
#pragma once

#include <benchmark/benchmark.h>
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

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

/// A size from the environment (RANKFLOW_BENCH_*), or `fallback`.
inline std::int64_t env_int(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : fallback;
}

/// Removes an experiment file and its sidecar (rank 0), then a barrier.
inline void remove_experiment(const std::string& file) {
  if (bench_runtime().is_scheduler()) {
    std::remove(file.c_str());
    std::system(("rm -rf '" + file + ".d'").c_str());
  }
  MPI_Barrier(MPI_COMM_WORLD);
}
