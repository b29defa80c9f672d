// The `rankflow` commands over many runs: runs (query), sweeps, compare, upgrade.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rankflow::cli {

struct runs_request {
  std::string where;            ///< --where expression ("" = every run)
  std::string sort;             ///< --sort keys ("" = by run number)
  std::string cols;             ///< --cols ("" = the defaults)
  std::string format = "text";  ///< text | csv | json
  std::string sweep;            ///< --sweep ID: only its runs, parameters and metrics as columns
  std::int64_t limit = -1;      ///< --limit N (-1: all)
};

int cmd_runs(const std::string& file, const runs_request& q);
int cmd_sweeps(const std::string& file, const std::string& format);
int cmd_compare(const std::string& file, const std::vector<std::string>& ids);
int cmd_upgrade(const std::string& file);

}  // namespace rankflow::cli
