// Value types, modes and errors of rankflow's run tracking.
//
// Field types follow Neptune's: atoms (Int, Float, Bool, String, Datetime,
// StringSet, StringList), series (FloatSeries, IntSeries, StringSeries) and
// artifacts (File for uploaded bytes, Array for collectively written N-d data).
// A field's type is fixed by its first write; rank 0 rejects later writes of
// another type instead of coercing them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rankflow/tracking/errors.hpp>

namespace rankflow {

enum class field_type : std::uint8_t {
  none = 0,
  int_ = 1,
  float_ = 2,
  bool_ = 3,
  string = 4,
  datetime = 5,
  string_set = 6,
  string_list = 7,
  float_series = 8,
  int_series = 9,
  string_series = 10,
  file = 11,
  array = 12,
};

/// Neptune's name of the type: "Float", "StringSeries", ...
const char* type_name(field_type t) noexcept;
/// Inverse of type_name; field_type::none when unknown.
field_type type_from_name(std::string_view name) noexcept;
inline bool is_series(field_type t) noexcept {
  return t == field_type::float_series || t == field_type::int_series || t == field_type::string_series;
}

/// How a run talks to its experiment file (Neptune's connection modes).
enum class tracking_mode {
  async,      ///< default: calls return at once; errors and durability at wait()
  sync,       ///< every call waits until rank 0 has accepted and stored it
  read_only,  ///< open an earlier run to fetch; writes are usage errors
  debug,      ///< validate everything, write nothing
};
const char* to_string(tracking_mode m) noexcept;
/// "async" | "sync" | "read-only" | "debug"; throws usage_error otherwise.
tracking_mode parse_tracking_mode(std::string_view s);

/// What a resumed run does when the program differs from the run it resumes:
/// a call with another signature, or an input with another value.
enum class change_policy {
  refuse,   ///< default: usage_error on every rank, nothing reused or changed
  restart,  ///< the affected calls run afresh; the new inputs are recorded
};
const char* to_string(change_policy p) noexcept;
/// "refuse" | "restart"; throws usage_error otherwise.
change_policy parse_change_policy(std::string_view s);

/// Wall-clock time of a point or a Datetime field.
using timestamp = std::chrono::system_clock::time_point;

/// Optional step and timestamp of a series point. A point without a step gets
/// the series' last step + 1, assigned by rank 0 in arrival order.
struct point_options {
  double step = -1.0;       ///< < 0: assign
  double timestamp = -1.0;  ///< Unix seconds; < 0: now
  bool has_step() const noexcept { return step >= 0.0; }
};

/// What fetch_values() returns: one entry per point, in step order.
template <class T>
struct series_values {
  std::vector<double> steps;
  std::vector<T> values;
  std::vector<double> timestamps;  ///< Unix seconds
  std::size_t size() const noexcept { return values.size(); }
};

/// Checks a field path ("train/loss"): parts of [A-Za-z0-9_.-], separated by
/// '/', none empty, "." or "..", at most 255 characters per part and 1024 in
/// all. Throws usage_error saying what is wrong. Paths name objects inside
/// their run's group only; they cannot point anywhere else in the file.
/// The top-level name `_rankflow` is reserved (the partition ledger).
void validate_path(std::string_view path);

/// The namespace of a run that holds rankflow's own records.
inline constexpr const char* reserved_namespace = "_rankflow";

/// ISO 8601 UTC with microseconds, e.g. "2026-11-23T10:15:00.123456Z".
std::string format_time(double unix_seconds);
double to_unix_seconds(timestamp t) noexcept;
timestamp from_unix_seconds(double s) noexcept;
double now_unix_seconds() noexcept;

}  // namespace rankflow
