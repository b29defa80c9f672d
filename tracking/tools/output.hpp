// Text, CSV and JSON output of the `rankflow` command.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rankflow::cli {

/// Appends `s` (valid UTF-8) to `o` with JSON's escapes.
void json_escape(std::string_view s, std::string& o);
/// A JSON string; bytes that are not UTF-8 become U+FFFD.
std::string json_str(const std::string& s);
/// A JSON number, or null when not finite.
std::string json_num(double v);
/// A CSV cell, quoted when it must be.
std::string csv_cell(const std::string& s);
std::string join(const std::vector<std::string>& v, const char* sep);

}  // namespace rankflow::cli
