// Core's flag machinery on core's own table: the layers above add theirs
// (tests/unit/runtime/config_test.cpp tests all three through parse_config).
#include <cstdlib>

#include <gtest/gtest.h>

#include <rankflow/core/error.hpp>
#include <rankflow/core/flags.hpp>

#include "mpi_test.hpp"

using namespace rankflow;

TEST(CoreFlags, CoreTableTakesOnlyCoresFlags) {
  core_flags c;
  std::vector<std::string> rest;
  const bool help = flags::parse(flags::core_table(c),
                                 {"--log-level=debug", "--experiment", "x.h5", "--spin-us", "0", "--rows", "3"}, &rest);
  EXPECT_FALSE(help);
  EXPECT_EQ(c.level, log_level::debug);
  EXPECT_EQ(c.spin_us, 0u);
  // --experiment is tracking's: core leaves it, with its value, to the layers above.
  EXPECT_EQ(rest, (std::vector<std::string>{"--experiment", "x.h5", "--rows", "3"}));
}

TEST(CoreFlags, BadValuesNameTheFlagOrVariable) {
  core_flags c;
  EXPECT_THROW_WITH(flags::parse(flags::core_table(c), {"--segment-bytes", "12"}, nullptr), usage_error,
                    "--segment-bytes", ">= 64");
  EXPECT_THROW_WITH(flags::parse(flags::core_table(c), {"--log-level"}, nullptr), usage_error, "needs a value");
  ::setenv("RANKFLOW_SPIN_US", "-3", 1);
  EXPECT_THROW_WITH(flags::parse(flags::core_table(c), {}, nullptr), usage_error, "RANKFLOW_SPIN_US");
  ::unsetenv("RANKFLOW_SPIN_US");
  // Microseconds of a wait are capped, not wrapped.
  flags::parse(flags::core_table(c), {"--spin-us=99999999999"}, nullptr);
  EXPECT_EQ(c.spin_us, 10'000'000u);
}

TEST(CoreFlags, HelpListsEveryFlagWithItsVariable) {
  core_flags c;
  const std::string h = flags::help_lines(flags::core_table(c));
  for (const char* f : {"--log-level", "RANKFLOW_LOG_LEVEL", "--segment-bytes", "--spin-us", "--run-name"}) {
    EXPECT_NE(h.find(f), std::string::npos) << f;
  }
  EXPECT_EQ(h.find("--experiment"), std::string::npos);
}
