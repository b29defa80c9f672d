// Private to run tracking: the messages between every rank and rank 0's
// service (tags, kinds, flush limits, frames, refusals, outcomes), shared by
// service.hpp, run_impl.hpp and the Run, ledger and field_ref sources.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <numeric>
#include <sstream>
#include <thread>

#include <rankflow/core/bytes.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/core/detail/transport.hpp>
#include <rankflow/tracking/experiment.hpp>
#include "h5.hpp"

#include "journal.hpp"

#ifndef RANKFLOW_VERSION_STRING
#define RANKFLOW_VERSION_STRING "unknown"
#endif

namespace rankflow::tracking {


constexpr int tag_ops = 300;    // every rank -> rank 0's service (301: segments)
constexpr int tag_reply = 310;  // rank 0 -> a rank, answering its request (311: segments)

// Message kinds, first byte of every frame payload.
constexpr char msg_batch = 'B';  // encoded operations
constexpr char msg_wait = 'W';   // make my operations durable, tell me what was refused
constexpr char msg_fetch = 'F';  // a field's value
constexpr char msg_sync = 'S';   // wait + the run's structure
constexpr char msg_check = 'A';  // may this path become an Array? (rank 0 only)
constexpr char msg_stop = 'X';   // no more operations from me

// First byte of a fetch answer that failed on rank 0 (otherwise a field_type).
constexpr std::uint8_t fetch_failed = 255;

// A batch is built in place as a frame: length slot, kind byte, operations.
constexpr std::size_t batch_head = detail::frame_header_bytes + 1;

// Flush a rank's batch when it holds this many points or bytes, or is this old.
constexpr std::size_t flush_points = std::size_t{1} << 16;
constexpr std::size_t flush_bytes = std::size_t{4} << 20;
constexpr double flush_age_s = 1.0;
constexpr std::size_t max_in_flight = 8;

using detail::put;
using detail::put_str;

// A reply from rank 0, read with bounds checks (a damaged reply is an error,
// never a read past its end).
struct cursor_pos {
  std::size_t pos = 0;
};
struct cursor : cursor_pos, detail::byte_reader<error> {
  explicit cursor(std::string_view d) : byte_reader(d, pos, "rankflow tracking: malformed reply") {}
};

inline void put_rejections(std::string& out, const std::vector<rejection>& v) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(v.size()));
  for (const auto& r : v) {
    put<std::uint8_t>(out, r.type ? 1 : 0);
    put_str(out, r.message);
  }
}

inline std::vector<rejection> get_rejections(cursor& c) {
  std::vector<rejection> v(c.count(5));  // a rejection takes at least 5 bytes
  for (auto& r : v) {
    r.type = c.get<std::uint8_t>() != 0;
    r.message = c.str();
  }
  return v;
}

// Throws the first refusal, saying how many more there were.
inline void throw_rejections(const std::vector<rejection>& v) {
  if (v.empty()) return;
  std::string msg = v.front().message;
  if (v.size() > 1) msg += " (and " + std::to_string(v.size() - 1) + " more refused operations on this rank)";
  if (v.front().type) throw type_error(msg);
  throw tracking_error(msg);
}

// Errors that rank 0 finds while opening a run are thrown on every rank.
enum class err_kind : std::uint8_t { none, usage, format, storage, tracking, other };
inline std::pair<err_kind, std::string> classify(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const usage_error& x) {
    return {err_kind::usage, x.what()};
  } catch (const format_error& x) {
    return {err_kind::format, x.what()};
  } catch (const storage_error& x) {
    return {err_kind::storage, x.what()};
  } catch (const tracking_error& x) {
    return {err_kind::tracking, x.what()};
  } catch (const std::exception& x) {
    return {err_kind::other, x.what()};
  }
}
[[noreturn]] inline void raise(err_kind k, const std::string& m) {
  switch (k) {
    case err_kind::usage:
      throw usage_error(m);
    case err_kind::format:
      throw format_error(m);
    case err_kind::storage:
      throw storage_error(m);
    case err_kind::tracking:
      throw tracking_error(m);
    default:
      throw error(m);
  }
}

// Broadcasts rank 0's outcome (and a string payload) from rank 0; throws the
// same error on every rank when there was one.
inline std::string share_outcome(MPI_Comm comm, int rank, err_kind k, std::string msg) {
  bytes b;
  if (rank == 0) {
    b.push_back(static_cast<char>(k));
    b.insert(b.end(), msg.begin(), msg.end());
  }
  detail::bcast_frame(comm, 0, b, std::size_t{1} << 30);
  const auto kind = static_cast<err_kind>(b.at(0));
  std::string text(b.begin() + 1, b.end());
  if (kind != err_kind::none) raise(kind, text);
  return text;
}

inline bytes make_frame(char kind, std::string_view payload) {
  bytes fr = detail::new_frame();
  fr.reserve(fr.size() + 1 + payload.size());
  fr.push_back(kind);
  fr.insert(fr.end(), payload.begin(), payload.end());
  return fr;
}

inline std::string encode_field(const field_record& f, const std::string& path, const std::string& bytes_data) {
  std::string out;
  put<std::uint8_t>(out, static_cast<std::uint8_t>(f.type));
  put<std::int32_t>(out, f.rank);
  op o;
  o.path = path;
  o.rank = f.rank;
  o.time = f.updated;
  switch (f.type) {
    case field_type::float_series:
    case field_type::int_series:
    case field_type::string_series:
      o.kind = op_kind::append;
      o.points = f.series;
      break;
    case field_type::file:
      o.kind = op_kind::file;
      o.file.filename = f.file.filename;
      o.file.data = bytes_data;
      break;
    case field_type::array:
      o.kind = op_kind::array;
      o.array = f.array;
      break;
    default:
      o.kind = op_kind::assign;
      o.atom = f.atom;
      break;
  }
  encode(o, out);
  return out;
}

/// A run being resumed, as the operations that recreate it in its new journal
/// (fields as they were, then its ledger). Consumes `old`.
inline std::vector<op> carried_ops(run_record&& old) {
  std::vector<op> out;
  for (auto& [path, f] : old.fields) {
    op o;
    o.rank = f.rank;
    o.time = f.updated;
    o.path = path;
    if (is_series(f.type)) {
      o.kind = op_kind::append;
      o.points = std::move(f.series);
      o.points.type = f.type;
    } else if (f.type == field_type::file) {
      o.kind = op_kind::file;
      o.file = std::move(f.file);
    } else if (f.type == field_type::array) {
      o.kind = op_kind::array;
      o.array = std::move(f.array);
    } else if (f.type != field_type::none) {
      o.kind = op_kind::assign;
      o.atom = std::move(f.atom);
      o.atom.type = f.type;
    } else {
      continue;
    }
    out.push_back(std::move(o));
  }
  for (const auto& [k, c] : old.calls) {  // every call, even one with no entries yet
    op o;
    o.kind = op_kind::ledger;
    o.time = old.info.start_time;
    o.ledger.call = c;
    out.push_back(std::move(o));
  }
  for (auto& e : old.ledger) {
    if (out.empty() || out.back().kind != op_kind::ledger || out.back().ledger.call.call != e.call ||
        out.back().ledger.entries.size() >= 4096) {
      op o;
      o.kind = op_kind::ledger;
      o.time = e.end;
      auto c = old.calls.find(e.call);
      o.ledger.call = c != old.calls.end() ? c->second : call_info{e.call, "?", 0, 0, 0};
      out.push_back(std::move(o));
    }
    out.back().ledger.entries.push_back(std::move(e));
  }
  return out;
}


}  // namespace rankflow::tracking
