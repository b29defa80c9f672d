// Private to run tracking: a run's inputs as compared on --resume, and the
// changes of them that ranks report to each other.
#pragma once

#include "run_wire.hpp"

namespace rankflow::tracking {


/// An atom as compared on resume and shown in the refusal: the type and the
/// exact value (floats with 17 digits, so that different bits differ).
inline std::string input_text(const atom_value& a) {
  char buf[40];
  switch (a.type) {
    case field_type::int_:
      return std::to_string(a.i);
    case field_type::bool_:
      return a.i ? "true" : "false";
    case field_type::float_:
    case field_type::datetime:
      std::snprintf(buf, sizeof buf, "%.17g", a.d);
      return buf;
    case field_type::string:
      return "\"" + a.s + "\"";
    default: {
      std::string out = "[";
      for (std::size_t k = 0; k < a.list.size(); ++k) out += (k ? ", \"" : "\"") + a.list[k] + "\"";
      return out + "]";
    }
  }
}

/// What resume compares: the type as well as the text (Int 7 and Float 7
/// are different inputs). input_shown() gives the text alone.
inline std::string input_key(const atom_value& a) { return std::string(type_name(a.type)) + ' ' + input_text(a); }
inline std::string input_shown(const std::string& key) { return key.substr(std::min(key.find(' ') + 1, key.size())); }

// Texts that travel between ranks (inputs in start_run's outcome message,
// changed inputs gathered at a call) as "<length>:<bytes>" each, so that a
// value may hold any character.
inline void put_text(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}
inline std::string take_text(std::string_view& s) {
  const auto colon = s.find(':');
  std::size_t n = 0;
  if (colon == std::string_view::npos || colon == 0 || colon > 19) throw error("rankflow: damaged input message");
  for (char ch : s.substr(0, colon)) {
    if (ch < '0' || ch > '9') throw error("rankflow: damaged input message");
    n = n * 10 + static_cast<std::size_t>(ch - '0');
  }
  if (n > s.size() - colon - 1) throw error("rankflow: damaged input message");
  std::string out(s.substr(colon + 1, n));
  s.remove_prefix(colon + 1 + n);
  return out;
}

inline std::string encode_inputs(const std::map<std::string, std::string>& in) {
  std::string out;
  for (const auto& [k, v] : in) {
    put_text(out, k);
    put_text(out, v);
  }
  return out;
}
inline std::map<std::string, std::string> decode_inputs(std::string_view s) {
  std::map<std::string, std::string> out;
  while (!s.empty()) {
    auto k = take_text(s);
    out[std::move(k)] = take_text(s);
  }
  return out;
}

/// An input of a resumed run assigned another value than the run recorded.
struct input_change {
  std::string path, was, now;  ///< was, now: input_key()s
  int rank = 0;
  /// With change_policy::restart, before the run's first call: the encoded
  /// assignment, held back until the ranks agree to restart (then it is
  /// journaled in the same record as the restart). Empty: refused.
  std::string held;

  std::string describe(const std::string& run_id) const {
    std::string out = path + " was " + input_shown(was) + " in run " + run_id + ", now " + input_shown(now);
    const auto type_was = was.substr(0, was.find(' ')), type_now = now.substr(0, now.find(' '));
    if (type_was != type_now) out += " (a " + type_now + ", not a " + type_was + ")";
    return out + " (rank " + std::to_string(rank) + ")";
  }
  void encode(std::string& out) const {
    put_text(out, path);
    put_text(out, was);
    put_text(out, now);
    put_text(out, std::to_string(rank));
    put_text(out, held);
  }
  static std::vector<input_change> decode_all(std::string_view s) {
    std::vector<input_change> out;
    while (!s.empty()) {
      input_change c;
      c.path = take_text(s);
      c.was = take_text(s);
      c.now = take_text(s);
      c.rank = std::atoi(take_text(s).c_str());
      c.held = take_text(s);
      out.push_back(std::move(c));
    }
    return out;
  }
};


}  // namespace rankflow::tracking
