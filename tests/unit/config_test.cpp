#include <cstdlib>

#include "mpi_test.hpp"

using rankflow::parse_config;

TEST(Config, DefaultsMatchMetaflow) {
  unsetenv("RANKFLOW_PROGRESS");  // ctest sets it for the other tests
  std::vector<std::string> rest;
  auto c = parse_config({}, &rest);
  setenv("RANKFLOW_PROGRESS", "off", 1);
  EXPECT_EQ(c.max_workers, 16u);
  EXPECT_EQ(c.max_num_splits, 100u);
  EXPECT_EQ(c.level, rankflow::log_level::info);
  EXPECT_EQ(c.progress, rankflow::progress_mode::automatic);
}

TEST(Config, FlagsAreTakenAndTheProgramsOwnAreLeftInOrder) {
  std::vector<std::string> rest;
  auto c = parse_config({"--rows", "10", "--max-workers=4", "--max-num-splits", "300", "--cols", "7",
                         "--log-level=debug", "--progress", "off", "input.txt"},
                        &rest);
  EXPECT_EQ(c.max_workers, 4u);
  EXPECT_EQ(c.max_num_splits, 300u);
  EXPECT_EQ(c.level, rankflow::log_level::debug);
  EXPECT_EQ(c.progress, rankflow::progress_mode::off);
  EXPECT_EQ(rest, (std::vector<std::string>{"--rows", "10", "--cols", "7", "input.txt"}));
}

TEST(Config, EnvironmentIsReadAndArgvWins) {
  setenv("RANKFLOW_MAX_WORKERS", "8", 1);
  setenv("RANKFLOW_MAX_NUM_SPLITS", "250", 1);
  auto c = parse_config({"--max-workers", "3"}, nullptr);
  unsetenv("RANKFLOW_MAX_WORKERS");
  unsetenv("RANKFLOW_MAX_NUM_SPLITS");
  EXPECT_EQ(c.max_workers, 3u);
  EXPECT_EQ(c.max_num_splits, 250u);
}

TEST(Config, BadValuesNameTheFlagAndWhatIsAccepted) {
  EXPECT_THROW_WITH(parse_config({"--max-workers", "lots"}, nullptr), rankflow::usage_error, "--max-workers",
                    "whole number", "'lots'");
  EXPECT_THROW_WITH(parse_config({"--max-workers=0"}, nullptr), rankflow::usage_error, ">= 1");
  EXPECT_THROW_WITH(parse_config({"--progress=sometimes"}, nullptr), rankflow::usage_error, "auto|on|off");
  EXPECT_THROW_WITH(parse_config({"--log-level", "loud"}, nullptr), rankflow::usage_error, "error|warn|info|debug");
  EXPECT_THROW_WITH(parse_config({"--max-num-splits"}, nullptr), rankflow::usage_error, "needs a value");
  setenv("RANKFLOW_MAX_NUM_SPLITS", "-1", 1);
  EXPECT_THROW_WITH(parse_config({}, nullptr), rankflow::usage_error, "RANKFLOW_MAX_NUM_SPLITS");
  unsetenv("RANKFLOW_MAX_NUM_SPLITS");
}

TEST(Config, HelpIsFlaggedAndKeptForTheProgram) {
  std::vector<std::string> rest;
  auto c = parse_config({"--help"}, &rest);
  EXPECT_TRUE(c.help);
  EXPECT_EQ(rest, std::vector<std::string>{"--help"});
  const std::string h = rankflow::help_text();
  for (const char* f : {"--max-workers", "--max-num-splits", "--log-level", "--progress", "RANKFLOW_MAX_WORKERS"}) {
    EXPECT_NE(h.find(f), std::string::npos) << f;
  }
}

TEST(Config, ArgvIsCompactedInPlace) {
  std::string a0 = "prog", a1 = "--max-workers", a2 = "5", a3 = "--rows", a4 = "9";
  char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), a4.data(), nullptr};
  int argc = 5;
  auto c = parse_config(argc, argv);
  EXPECT_EQ(c.max_workers, 5u);
  EXPECT_EQ(c.run_name, "prog");
  ASSERT_EQ(argc, 3);
  EXPECT_STREQ(argv[1], "--rows");
  EXPECT_STREQ(argv[2], "9");
  EXPECT_EQ(argv[3], nullptr);
}
