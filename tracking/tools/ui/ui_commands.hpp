// The `rankflow` commands that show experiments as a web page: `ui` (a local
// server) and `report` (one self-contained HTML file). docs/ui.md.
#pragma once

#include <string>
#include <vector>

namespace rankflow::ui {

/// Serves `files` read-only at http://bind:port/ until SIGINT or SIGTERM.
/// Port 0 picks a free port; the first line on stdout says which.
int cmd_ui(const std::vector<std::string>& files, int port, const std::string& bind);

/// Writes the page with the data of `file` (its runs; the details of `ids`,
/// or of its latest run) inline to `out`.
int cmd_report(const std::string& file, const std::vector<std::string>& ids, const std::string& out);

}  // namespace rankflow::ui
