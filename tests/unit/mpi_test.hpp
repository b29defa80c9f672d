// Helpers shared by the MPI tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <rankflow/rankflow.hpp>

/// The process's Runtime (made by mpi_main.cpp).
rankflow::Runtime& test_runtime();

/// A fresh experiment file for this test and rank count (collective).
inline std::string fresh_experiment(const std::string& stem) {
  auto& rt = test_runtime();
  const auto file = stem + "_np" + std::to_string(rt.size()) + ".h5";
  if (rt.is_scheduler()) {
    std::remove(file.c_str());
    std::system(("rm -rf '" + file + ".d'").c_str());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return file;
}

/// Run options that track into `file`.
inline rankflow::run_options tracked_in(const std::string& file,
                                        rankflow::tracking_mode m = rankflow::tracking_mode::async) {
  rankflow::run_options o;
  o.experiment = file;
  o.mode = m;
  return o;
}

/// EXPECT that `stmt` throws `type` whose what() contains every given piece.
#define EXPECT_THROW_WITH(stmt, type, ...)                                                                             \
  do {                                                                                                                 \
    bool rf_thrown_ = false;                                                                                           \
    try {                                                                                                              \
      stmt;                                                                                                            \
    } catch (const type& rf_e_) {                                                                                      \
      rf_thrown_ = true;                                                                                               \
      const std::string rf_what_ = rf_e_.what();                                                                       \
      for (const std::string& rf_piece_ : std::initializer_list<std::string>{__VA_ARGS__}) {                           \
        EXPECT_NE(rf_what_.find(rf_piece_), std::string::npos) << "message lacks '" << rf_piece_ << "': " << rf_what_; \
      }                                                                                                                \
    }                                                                                                                  \
    EXPECT_TRUE(rf_thrown_) << #stmt " did not throw " #type;                                                          \
  } while (0)
