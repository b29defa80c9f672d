#include "deadline.hpp"

#include <cmath>
#include <cstdlib>
#include <ctime>

#include <rankflow/core/detail/spawn.hpp>
#include <rankflow/core/error.hpp>

namespace rankflow::detail {

namespace {

bool digits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "2026-12-07T12:00:00" (and an optional ".fraction") as local or UTC time.
bool iso_time(std::string_view v, double& out) {
  bool utc = false;
  if (!v.empty() && (v.back() == 'Z' || v.back() == 'z')) {
    utc = true;
    v.remove_suffix(1);
  }
  std::tm tm{};
  const std::string s(v);
  const char* end = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return false;
  double frac = 0;
  if (*end == '.') {
    char* after = nullptr;
    frac = std::strtod(end, &after);
    end = after;
  }
  if (*end != '\0') return false;
  tm.tm_isdst = -1;
  const std::time_t t = utc ? ::timegm(&tm) : std::mktime(&tm);
  if (t == static_cast<std::time_t>(-1)) return false;
  out = static_cast<double>(t) + frac;
  return true;
}

double positive_number(std::string_view flag, std::string_view v, std::string_view what) {
  char* end = nullptr;
  const std::string s(v);
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(d >= 0) || !std::isfinite(d)) {
    throw usage_error(std::string(flag) + " expects " + std::string(what) + ", got '" + s + "'");
  }
  return d;
}

}  // namespace

double parse_time_point(std::string_view flag, std::string_view v) {
  double t = 0;
  if (digits(v)) return positive_number(flag, v, "a time");
  if (iso_time(v, t)) return t;
  throw usage_error(std::string(flag) + " expects a time: Unix seconds, or ISO 8601 such as 2026-12-07T12:00:00Z "
                                        "(UTC) or 2026-12-07T13:00:00 (local time), got '" +
                    std::string(v) + "'");
}

double parse_duration(std::string_view flag, std::string_view v) {
  const std::string bad = std::string(flag) +
                          " expects a duration: seconds (3600, 90s), 15m, 2h, 1d, or Slurm's [D-]HH:MM:SS, got '" +
                          std::string(v) + "'";
  if (v.empty()) throw usage_error(bad);
  if (v.find(':') != std::string_view::npos) {
    // [D-]HH:MM:SS, HH:MM:SS, MM:SS (as --time and squeue write them).
    double days = 0;
    if (const auto dash = v.find('-'); dash != std::string_view::npos) {
      if (!digits(v.substr(0, dash))) throw usage_error(bad);
      days = std::strtod(std::string(v.substr(0, dash)).c_str(), nullptr);
      v.remove_prefix(dash + 1);
    }
    double parts[3] = {0, 0, 0};
    int n = 0;
    for (std::size_t at = 0; at <= v.size() && n < 4;) {
      const std::size_t colon = std::min(v.find(':', at), v.size());
      const auto part = v.substr(at, colon - at);
      if (!digits(part) || n == 3) throw usage_error(bad);
      parts[n++] = std::strtod(std::string(part).c_str(), nullptr);
      at = colon + 1;
    }
    const double s = n == 3 ? parts[0] * 3600 + parts[1] * 60 + parts[2] : parts[0] * 60 + parts[1];
    if (n < 2) throw usage_error(bad);
    return days * 86400 + s;
  }
  double unit = 1;
  switch (v.back()) {
    case 's': unit = 1; v.remove_suffix(1); break;
    case 'm': unit = 60; v.remove_suffix(1); break;
    case 'h': unit = 3600; v.remove_suffix(1); break;
    case 'd': unit = 86400; v.remove_suffix(1); break;
    default: break;
  }
  char* end = nullptr;
  const std::string s(v);
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(d >= 0) || !std::isfinite(d)) throw usage_error(bad);
  return d * unit;
}

job_end find_job_end(const config& c, double now) {
  job_end j;
  if (c.deadline == "off") return j;
  if (c.time_left_s > 0) {
    j.end = now + c.time_left_s;
    j.source = "--time-left";
  } else if (c.deadline != "auto") {
    j.end = parse_time_point("--deadline", c.deadline);
    j.source = "--deadline";
  } else if (const char* id = std::getenv("SLURM_JOB_ID"); id && *id) {
    // Slurm 23.02 and later say it in the environment; older ones, squeue.
    if (const char* e = std::getenv("SLURM_JOB_END_TIME"); e && digits(e)) {
      j.end = std::strtod(e, nullptr);
    } else {
      // Under coreutils' timeout: a slurmctld that does not answer must not
      // hold the program's start (no answer in 10 s: no deadline).
      std::string out = capture_output({"timeout", "10", "squeue", "-h", "-j", id, "-o", "%e"}, 256);
      while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
      double t = 0;
      if (iso_time(out, t)) j.end = t;  // "Unknown", "NONE", "N/A": no limit
    }
    if (j.end > 0) j.source = std::string("Slurm job ") + id;
  }
  if (j.end <= 0) return j;
  const double left = j.end - now;
  // The checkpoint: the run's stop and the program's exit. By default a
  // tenth of what is left, from 5 s to 60 s.
  j.margin = c.deadline_margin_s >= 0 ? c.deadline_margin_s : std::clamp(left / 10, 5.0, 60.0);
  return j;
}

}  // namespace rankflow::detail
