// Helpers shared by the MPI tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include <rankflow/rankflow.hpp>

/// The process's Runtime (made by mpi_main.cpp).
rankflow::Runtime& test_runtime();

/// EXPECT that `stmt` throws `type` whose what() contains every given piece.
#define EXPECT_THROW_WITH(stmt, type, ...)                                            \
  do {                                                                                \
    bool rf_thrown_ = false;                                                          \
    try {                                                                             \
      stmt;                                                                           \
    } catch (const type& rf_e_) {                                                     \
      rf_thrown_ = true;                                                              \
      const std::string rf_what_ = rf_e_.what();                                      \
      for (const std::string& rf_piece_ : std::initializer_list<std::string>{__VA_ARGS__}) {                             \
        EXPECT_NE(rf_what_.find(rf_piece_), std::string::npos)                        \
            << "message lacks '" << rf_piece_ << "': " << rf_what_;                    \
      }                                                                               \
    }                                                                                 \
    EXPECT_TRUE(rf_thrown_) << #stmt " did not throw " #type;                         \
  } while (0)
