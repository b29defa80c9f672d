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

TEST(WithSlurm, SizingFlagsAreReadOnlyWithSlurm) {
  std::vector<std::string> rest;
  auto s = rankflow::parse_submission({"--rows", "5", "--time", "10", "--wait"}, &rest);
  EXPECT_FALSE(s.requested);
  EXPECT_EQ(rest, (std::vector<std::string>{"--rows", "5", "--time", "10", "--wait"}));  // the program's own flags
  rest.clear();
  s = rankflow::parse_submission(
      {"--with", "slurm", "--ntasks=8", "--nodes", "2", "--cpus-per-task", "4", "--mem", "60G", "--time", "02:00:00",
       "--partition", "gpu", "--wait", "--rows", "5", "--experiment", "a b.h5"},
      &rest);
  EXPECT_TRUE(s.requested);
  EXPECT_EQ(s.ntasks, 8);
  EXPECT_EQ(s.nodes, 2);
  EXPECT_EQ(s.cpus_per_task, 4);
  EXPECT_EQ(s.mem, "60G");
  EXPECT_EQ(s.time, "02:00:00");
  EXPECT_EQ(s.partition, "gpu");
  EXPECT_TRUE(s.wait);
  EXPECT_EQ(rest, (std::vector<std::string>{"--rows", "5", "--experiment", "a b.h5"}));
  const auto script = rankflow::batch_script(s, "/opt/bin/bigsum", rest, "/home/u/w", "/home/u/w/jobs/bigsum-%j.out",
                                             "./bigsum --with slurm ...");
  for (const char* line : {"#SBATCH --ntasks=8\n", "#SBATCH --nodes=2\n", "#SBATCH --cpus-per-task=4\n",
                           "#SBATCH --mem=60G\n", "#SBATCH --time=02:00:00\n", "#SBATCH --partition=gpu\n",
                           "#SBATCH --output=/home/u/w/jobs/bigsum-%j.out\n", "#SBATCH --chdir=/home/u/w\n",
                           "export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-10}\n",
                           "exec mpirun --bind-to none /opt/bin/bigsum --rows 5 --experiment 'a b.h5'\n"}) {
    EXPECT_NE(script.find(line), std::string::npos) << "lacks " << line << " in:\n" << script;
  }
}

TEST(WithSlurm, BadValuesAreClearErrors) {
  EXPECT_THROW_WITH(rankflow::parse_submission({"--with", "batch"}, nullptr), rankflow::usage_error, "'slurm'",
                    "batch");
  EXPECT_THROW_WITH(rankflow::parse_submission({"--with", "slurm", "--ntasks", "0"}, nullptr), rankflow::usage_error,
                    "--ntasks", ">= 1");
  EXPECT_THROW_WITH(rankflow::parse_submission({"--with", "slurm", "--ntasks", "2", "--nodes", "3"}, nullptr),
                    rankflow::usage_error, "--nodes 3", "--ntasks 2");
  EXPECT_THROW_WITH(rankflow::parse_submission({"--with", "slurm", "--time"}, nullptr), rankflow::usage_error,
                    "--time needs a value");
}

TEST(Config, ResumeTakesAnOptionalRun) {
  std::vector<std::string> rest;
  EXPECT_EQ(parse_config({"--resume"}, &rest).resume, "last");
  EXPECT_EQ(parse_config({"--resume", "--rows", "3"}, &rest).resume, "last");
  rest.clear();
  EXPECT_EQ(parse_config({"--resume", "RUN-12", "x"}, &rest).resume, "RUN-12");
  EXPECT_EQ(rest, (std::vector<std::string>{"x"}));
  rest.clear();
  EXPECT_EQ(parse_config({"--resume", "input.csv"}, &rest).resume, "last");  // not a run: the program's argument
  EXPECT_EQ(rest, (std::vector<std::string>{"input.csv"}));
  EXPECT_EQ(parse_config({"--resume=no"}, nullptr).resume, "no");
  EXPECT_THROW_WITH(parse_config({"--resume=yesterday"}, nullptr), rankflow::usage_error, "--resume", "RUN-3",
                    "yesterday");
}

TEST(Config, LabelsAreACommaListOfSafeNames) {
  std::vector<std::string> rest;
  auto c = parse_config({"--labels", "gpu,bigmem,,node:a1"}, &rest);
  EXPECT_EQ(c.labels, (std::vector<std::string>{"gpu", "bigmem", "node:a1"}));
  setenv("RANKFLOW_LABELS", "fast", 1);
  EXPECT_EQ(parse_config({}, &rest).labels, std::vector<std::string>{"fast"});
  EXPECT_EQ(parse_config({"--labels=slow"}, &rest).labels, std::vector<std::string>{"slow"});  // argv wins
  unsetenv("RANKFLOW_LABELS");
  EXPECT_THROW_WITH(parse_config({"--labels", "a b"}, &rest), rankflow::usage_error, "--labels", "[A-Za-z0-9_.:-]",
                    "'a b'");
}

TEST(Config, SpinMicroseconds) {
  EXPECT_EQ(parse_config({}, nullptr).spin_us, 200u);
  EXPECT_EQ(parse_config({"--spin-us", "0"}, nullptr).spin_us, 0u);
  setenv("RANKFLOW_SPIN_US", "50", 1);
  EXPECT_EQ(parse_config({}, nullptr).spin_us, 50u);
  unsetenv("RANKFLOW_SPIN_US");
  EXPECT_THROW_WITH(parse_config({"--spin-us", "-3"}, nullptr), rankflow::usage_error, "--spin-us");
  EXPECT_THROW_WITH(parse_config({"--spin-us", "soon"}, nullptr), rankflow::usage_error, "--spin-us");
}

TEST(Config, SmallCallMicroseconds) {
  EXPECT_EQ(parse_config({}, nullptr).small_call_us, 50u);
  EXPECT_EQ(parse_config({"--small-call-us", "0"}, nullptr).small_call_us, 0u);
  setenv("RANKFLOW_SMALL_CALL_US", "400", 1);
  EXPECT_EQ(parse_config({}, nullptr).small_call_us, 400u);
  unsetenv("RANKFLOW_SMALL_CALL_US");
  EXPECT_THROW_WITH(parse_config({"--small-call-us", "-1"}, nullptr), rankflow::usage_error, "--small-call-us");
}

TEST(Config, OnChange) {
  EXPECT_EQ(parse_config({}, nullptr).on_change, "");
  EXPECT_EQ(parse_config({"--on-change", "restart"}, nullptr).on_change, "restart");
  EXPECT_EQ(parse_config({"--on-change=refuse"}, nullptr).on_change, "refuse");
  EXPECT_THROW_WITH(parse_config({"--on-change", "redo"}, nullptr), rankflow::usage_error, "--on-change",
                    "'refuse' or 'restart'", "'redo'");
}
