#include "output.hpp"

#include <cmath>
#include <cstdio>

#include <rankflow/tracking/detail/store.hpp>

#include "query.hpp"

namespace rankflow::cli {

namespace tr = rankflow::tracking;

// Appends `s` (valid UTF-8) to `o` with JSON's escapes.
void json_escape(std::string_view s, std::string& o) {
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\t':
        o += "\\t";
        break;
      case '\r':
        o += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
}

// A JSON string. JSON text is UTF-8, so bytes that are not (a file written
// before rankflow refused them, or by another program) become U+FFFD, one
// per byte that does not start a valid sequence.
std::string json_str(const std::string& s) {
  std::string o = "\"";
  std::string_view rest = s;
  while (!rest.empty()) {
    const auto bad = tr::invalid_utf8_at(rest);
    const std::string_view good = rest.substr(0, bad);
    rest.remove_prefix(good.size());
    json_escape(good, o);
    if (!rest.empty()) {
      o += "\\ufffd";
      rest.remove_prefix(1);
    }
  }
  return o + "\"";
}

std::string json_num(double v) { return std::isfinite(v) ? query::number_text(v) : "null"; }

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string o;
  for (const auto& s : v) o += (o.empty() ? "" : sep) + s;
  return o;
}


}  // namespace rankflow::cli
