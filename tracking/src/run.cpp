#include <rankflow/tracking/run.hpp>

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
#include <numeric>
#include <sstream>
#include <thread>

#include <rankflow/core/log.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/core/transport.hpp>
#include <rankflow/tracking/experiment.hpp>
#include <rankflow/tracking/h5.hpp>

#include "journal.hpp"

#ifndef RANKFLOW_VERSION_STRING
#define RANKFLOW_VERSION_STRING "unknown"
#endif

namespace rankflow::tracking {

namespace {

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

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_str(std::string& out, std::string_view s) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}
struct cursor {
  std::string_view d;
  std::size_t pos = 0;
  template <class T>
  T get() {
    if (pos + sizeof(T) > d.size()) throw error("rankflow tracking: malformed reply");
    T v;
    std::memcpy(&v, d.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = get<std::uint32_t>();
    if (pos + n > d.size()) throw error("rankflow tracking: malformed reply");
    std::string s(d.data() + pos, n);
    pos += n;
    return s;
  }
};

void put_rejections(std::string& out, const std::vector<rejection>& v) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(v.size()));
  for (const auto& r : v) {
    put<std::uint8_t>(out, r.type ? 1 : 0);
    put_str(out, r.message);
  }
}

std::vector<rejection> get_rejections(cursor& c) {
  std::vector<rejection> v(c.get<std::uint32_t>());
  for (auto& r : v) {
    r.type = c.get<std::uint8_t>() != 0;
    r.message = c.str();
  }
  return v;
}

// Throws the first refusal, saying how many more there were.
void throw_rejections(const std::vector<rejection>& v) {
  if (v.empty()) return;
  std::string msg = v.front().message;
  if (v.size() > 1) msg += " (and " + std::to_string(v.size() - 1) + " more refused operations on this rank)";
  if (v.front().type) throw type_error(msg);
  throw tracking_error(msg);
}

// Errors that rank 0 finds while opening a run are thrown on every rank.
enum class err_kind : std::uint8_t { none, usage, format, storage, tracking, other };
std::pair<err_kind, std::string> classify(const std::exception_ptr& e) {
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
[[noreturn]] void raise(err_kind k, const std::string& m) {
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
std::string share_outcome(MPI_Comm comm, int rank, err_kind k, std::string msg) {
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

bytes make_frame(char kind, std::string_view payload) {
  bytes fr = detail::new_frame();
  fr.reserve(fr.size() + 1 + payload.size());
  fr.push_back(kind);
  fr.insert(fr.end(), payload.begin(), payload.end());
  return fr;
}

std::string encode_field(const field_record& f, const std::string& path, const std::string& bytes_data) {
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
std::vector<op> carried_ops(run_record&& old) {
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

}  // namespace

// ------------------------------------------------------------- rank 0 side --

/// Rank 0's service thread: receives every rank's operations and requests,
/// applies them to the run in order per rank, journals and answers. It makes
/// no HDF5 call (Debian's HDF5 is not thread-safe); the experiment file is
/// written by rank 0's main thread when the run stops.
class service {
 public:
  service(MPI_Comm ops, int size, std::size_t seg, run_record initial, journal_writer j, bool journaling)
      : rec(std::move(initial)),
        journal(std::move(j)),
        errors(static_cast<std::size_t>(size)),
        ops_(ops),
        size_(size),
        seg_(seg),
        journaling_(journaling) {
    // A live run's points are in its journal; rank 0 keeps only what checks
    // need (type, last step), so its memory does not grow with the points.
    if (journaling_) rec.keep_points = false;
  }

  run_record rec;
  journal_writer journal;
  std::vector<std::vector<rejection>> errors;  ///< refusals not yet reported, per rank

  /// From rank 0's main thread: a frame of operations to apply (built like a
  /// worker's, see run_impl::batch), no answer.
  void post(bytes frame) {
    {
      std::lock_guard lk(m_);
      q_.push_back({msg_batch, {}, std::move(frame), nullptr});
    }
    cv_.notify_one();
  }
  void post_stop() {
    {
      std::lock_guard lk(m_);
      q_.push_back({msg_stop, {}, {}, nullptr});
    }
    cv_.notify_one();
  }
  /// Batches rank 0 has posted and the service has not yet taken.
  std::size_t queued() {
    std::lock_guard lk(m_);
    return q_.size();
  }
  /// A used frame buffer for rank 0's next batch, if one is free.
  bool take_spare(bytes& out) {
    std::lock_guard lk(m_);
    if (spare_.empty()) return false;
    out = std::move(spare_.back());
    spare_.pop_back();
    return true;
  }
  /// From rank 0's main thread: a request, answered like a remote one.
  std::string call(char kind, std::string payload) {
    std::promise<std::string> p;
    auto f = p.get_future();
    {
      std::lock_guard lk(m_);
      q_.push_back({kind, std::move(payload), {}, &p});
    }
    cv_.notify_one();
    return f.get();
  }
  void abort() {
    aborted_ = true;
    cv_.notify_one();
  }

  void loop() {
    detail::frame_in f;
    unsigned idle = 0;
    for (;;) {
      // Checked before draining: what rank 0 posted before abort() is still
      // applied (an abandoned run keeps what rank 0 tracked).
      const bool stopping = aborted_.load();
      bool did = false;
      std::deque<item> items;
      {
        std::lock_guard lk(m_);
        items.swap(q_);
      }
      for (auto& it : items) {
        did = true;
        try {
          const std::string_view body =
              it.kind == msg_batch ? std::string_view(it.frame.data() + batch_head, it.frame.size() - batch_head)
                                   : std::string_view(it.payload);
          auto rep = handle(0, it.kind, body);
          if (it.reply) it.reply->set_value(std::move(rep));
        } catch (...) {
          if (it.reply) {
            it.reply->set_exception(std::current_exception());
          } else {
            try {
              throw;
            } catch (const std::exception& e) {
              errors[0].push_back({false, std::string("rank 0 could not store its operations: ") + e.what()});
            }
          }
        }
        if (it.kind == msg_batch) {
          std::lock_guard lk(m_);
          if (spare_.size() < max_in_flight + 2) spare_.push_back(std::move(it.frame));
        }
      }
      if (stopping) {
        // What the workers already sent is applied; their requests are not
        // answered (they are leaving too).
        while (detail::try_recv_frame(ops_, MPI_ANY_SOURCE, tag_ops, seg_, f)) {
          if (f.payload()[0] != msg_batch) continue;
          try {
            handle(f.source, msg_batch, std::string_view(f.payload() + 1, f.payload_size() - 1));
          } catch (const std::exception&) {
          }
        }
        break;
      }
      for (int k = 0; k < 64 && detail::try_recv_frame(ops_, MPI_ANY_SOURCE, tag_ops, seg_, f); ++k) {
        did = true;
        const char kind = f.payload()[0];
        std::string rep;
        try {
          rep = handle(f.source, kind, std::string_view(f.payload() + 1, f.payload_size() - 1));
        } catch (const std::exception& e) {
          // A storage failure (disk full) is reported to the rank that asked:
          // in the answer to its request, or at its next wait() for a batch.
          auto& errs = errors[static_cast<std::size_t>(f.source)];
          rep.clear();
          if (kind == msg_fetch) {
            put<std::uint8_t>(rep, fetch_failed);
            put_str(rep, std::string("rank 0 could not read it: ") + e.what());
          } else {
            errs.push_back({false, std::string("rank 0 could not store this rank's operations: ") + e.what()});
            if (kind == msg_wait || kind == msg_sync) {
              put_rejections(rep, errs);
              errs.clear();
              if (kind == msg_sync) put<std::uint32_t>(rep, 0);
            }
          }
        }
        if (kind != msg_batch && kind != msg_stop) {
          out_.push_back(detail::isend_frame(ops_, f.source, tag_reply, make_frame(kind, rep), seg_));
        }
      }
      while (!out_.empty() && out_.front().test()) out_.pop_front();
      // Buffered records reach the kernel within ~200 ms even without a
      // wait(): a kill -9 then loses at most that much (the ledger's resume
      // point, a worker's last points). fsync stays with wait() and stop().
      if (journaling_ && journal.buffered()) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_kernel_flush_ >= kernel_flush_every) {
          try {
            journal.flush();
          } catch (const std::exception& e) {
            errors[0].push_back({false, std::string("rank 0 could not write the run's journal: ") + e.what()});
          }
          last_kernel_flush_ = now;
        }
      }
      if (stops_ == size_) {
        std::lock_guard lk(m_);
        if (q_.empty()) break;
      }
      if (did) {
        idle = 0;
        continue;
      }
      // Nothing to do: sleep (woken at once by rank 0's own calls) for a
      // growing while, so an idle run costs no CPU beside the computation:
      // up to 1 ms while traffic is recent, then up to 20 ms once the ranks
      // have been quiet for a while (a worker's wait() after a long compute
      // is answered within that). Each wake-up is a context switch that a
      // fully busy node pays for.
      if (++idle < 16) continue;
      std::unique_lock lk(m_);
      const unsigned cap = idle < 16 + 10 + 200 ? 1000u : 20000u;
      const auto us = std::min(cap, 1u << std::min(idle - 16, 15u));
      cv_.wait_for(lk, std::chrono::microseconds(us), [&] { return !q_.empty() || aborted_.load(); });
    }
    for (auto& s : out_) s.wait();
    out_.clear();
  }

 private:
  struct item {
    char kind;
    std::string payload;  ///< requests
    bytes frame;          ///< batches: frame header, kind, operations
    std::promise<std::string>* reply;
  };
  std::vector<bytes> spare_;

  void make_durable() {
    if (journaling_) journal.sync();
  }

  std::string handle(int rank, char kind, std::string_view payload) {
    std::string rep;
    auto& errs = errors[static_cast<std::size_t>(rank)];
    switch (kind) {
      case msg_batch: {
        std::size_t pos = 0;
        auto& o = scratch_;
        auto& enc = enc_;
        while (pos < payload.size()) {
          decode_into(payload, pos, o);
          o.rank = rank;
          if (!rec.apply(o, errs)) continue;
          if (!journaling_) {
            if (o.kind == op_kind::file) rec.fields[o.path].file.data = std::move(o.file.data);
            continue;
          }
          enc.clear();
          encode(o, enc);
          const auto at = journal.append(enc);
          if (o.kind == op_kind::file) {
            rec.fields[o.path].file.journal_offset = static_cast<std::int64_t>(at + enc.size() - o.file.data.size());
          }
        }
        return rep;
      }
      case msg_wait:
        make_durable();
        put_rejections(rep, errs);
        errs.clear();
        return rep;
      case msg_sync: {
        make_durable();
        put_rejections(rep, errs);
        errs.clear();
        put<std::uint32_t>(rep, static_cast<std::uint32_t>(rec.fields.size()));
        for (const auto& [path, f] : rec.fields) {
          put_str(rep, path);
          put<std::uint8_t>(rep, static_cast<std::uint8_t>(f.type));
        }
        return rep;
      }
      case msg_fetch: {
        const std::string path(payload);
        const auto* f = rec.find(path);
        if (!f) {
          put<std::uint8_t>(rep, 0);
          return rep;
        }
        std::string data = f->file.data;
        if (f->type == field_type::file && data.empty() && f->file.size && journaling_) {
          journal.flush();
          data = read_range(journal.path(), static_cast<std::uint64_t>(f->file.journal_offset), f->file.size);
        }
        if (is_series(f->type) && !rec.keep_points) {
          // The points are in the journal: gather this series' from it.
          journal.flush();
          field_record copy = *f;
          copy.series = series_from_journal(journal.path(), path);
          return encode_field(copy, path, data);
        }
        return encode_field(*f, path, data);
      }
      case msg_check:
        return rec.check_new(std::string(payload), field_type::array, rank);
      case msg_stop:
        ++stops_;
        return rep;
      default:
        throw error("rankflow tracking: unknown message kind from rank " + std::to_string(rank));
    }
  }

  static series_data series_from_journal(const std::string& journal_path, const std::string& path) {
    series_data s;
    scan_journal(journal_path, [&](op& o) {
      if (o.kind != op_kind::append || o.path != path) return true;
      auto& p = o.points;
      s.type = p.type;
      s.steps.insert(s.steps.end(), p.steps.begin(), p.steps.end());
      s.timestamps.insert(s.timestamps.end(), p.timestamps.begin(), p.timestamps.end());
      if (p.type == field_type::float_series || s.type == field_type::float_series) {
        if (p.type == field_type::int_series) p.f.assign(p.i.begin(), p.i.end());
        s.f.insert(s.f.end(), p.f.begin(), p.f.end());
      }
      if (p.type == field_type::int_series) s.i.insert(s.i.end(), p.i.begin(), p.i.end());
      if (p.type == field_type::string_series) s.s.insert(s.s.end(), p.s.begin(), p.s.end());
      return true;
    });
    return s;
  }

  static constexpr auto kernel_flush_every = std::chrono::milliseconds(200);
  std::chrono::steady_clock::time_point last_kernel_flush_ = std::chrono::steady_clock::now();
  op scratch_;       // reused for every decoded operation: no allocation per batch
  std::string enc_;  // reused journal encoding
  MPI_Comm ops_;
  int size_;
  std::size_t seg_;
  bool journaling_;
  int stops_ = 0;
  std::atomic<bool> aborted_{false};
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<item> q_;
  std::deque<detail::pending_send> out_;
};

// ------------------------------------------------------------ run inputs --

namespace {

/// An atom as compared on resume and shown in the refusal: the type and the
/// exact value (floats with 17 digits, so that different bits differ).
std::string input_text(const atom_value& a) {
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
std::string input_key(const atom_value& a) { return std::string(type_name(a.type)) + ' ' + input_text(a); }
std::string input_shown(const std::string& key) { return key.substr(std::min(key.find(' ') + 1, key.size())); }

// Texts that travel between ranks (inputs in start_run's outcome message,
// changed inputs gathered at a call) as "<length>:<bytes>" each, so that a
// value may hold any character.
void put_text(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}
std::string take_text(std::string_view& s) {
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

std::string encode_inputs(const std::map<std::string, std::string>& in) {
  std::string out;
  for (const auto& [k, v] : in) {
    put_text(out, k);
    put_text(out, v);
  }
  return out;
}
std::map<std::string, std::string> decode_inputs(std::string_view s) {
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

}  // namespace

// --------------------------------------------------------------- run_impl --

class run_impl {
 public:
  int rank = 0;
  int size = 1;
  tracking_mode mode = tracking_mode::async;
  std::string id, name;
  experiment_paths paths{"rankflow.h5"};
  std::size_t seg = std::size_t{1} << 30;
  MPI_Comm ops = MPI_COMM_NULL;   // operations and requests to rank 0
  MPI_Comm coll = MPI_COMM_NULL;  // collectives: start, arrays, stop
  std::map<std::string, field_type> view;
  bool stopped = false;

  std::unique_ptr<service> svc;  // rank 0
  std::thread svc_thread;
  std::shared_ptr<partition_ledger> ledger;  // async and sync modes
  bool resumed = false;

  // ---- --resume: what the run's results depend on (every rank)
  /// The resumed execution's value of each input (params/..., and the
  /// paths of run_options::inputs); a path it never set is absent.
  std::map<std::string, std::string> resumed_inputs;
  std::set<std::string> declared_inputs;  ///< run_options::inputs' paths
  /// Assignments of another value to an input, refused or held (see
  /// input_change); the runtime gathers them at the next collective call.
  std::vector<input_change> changed_inputs;
  change_policy on_change = change_policy::refuse;
  bool is_input(const std::string& path) const {
    return path.rfind("params/", 0) == 0 || declared_inputs.count(path) != 0;
  }

  // ---- this rank's pending operations
  struct series_buf {
    field_type type = field_type::none;
    std::vector<double> steps, ts, f;
    std::vector<std::int64_t> i;
    std::vector<std::string> s;
  };
  std::map<std::string, series_buf, std::less<>> sbufs;
  series_buf* last_buf = nullptr;
  std::string last_path;
  bytes batch;               ///< a frame being filled (see batch_head)
  std::vector<bytes> spare;  ///< sent frames' buffers, for reuse
  std::size_t pending = 0;
  std::size_t buffered_points = 0;  ///< points in sbufs not yet encoded into batch
  unsigned ops_since_check = 0;
  double last_flush = now_unix_seconds();
  std::deque<detail::pending_send> in_flight;

  bool writable() const {
    return mode == tracking_mode::async || mode == tracking_mode::sync || mode == tracking_mode::debug;
  }
  void require_writable(const std::string& path) const {
    if (stopped) throw usage_error("run " + id + " has stopped: cannot write '" + path + "'");
    if (!writable()) {
      throw usage_error("run " + id + " is open read-only: cannot write '" + path +
                        "'. Start a new run to track, or open it in another mode");
    }
  }

  void after_op() {
    ++pending;
    if (mode == tracking_mode::sync) {
      wait();
      return;
    }
    if (pending >= flush_points || batch.size() >= flush_bytes) {
      flush();
    } else if (++ops_since_check >= 1024) {
      ops_since_check = 0;
      // Let MPI move batches already sent (large ones need this side's
      // progress), and send a batch that has waited long enough.
      if (!in_flight.empty()) progress_sends();
      if (now_unix_seconds() - last_flush > flush_age_s) flush();
    }
  }

  void enqueue(const op& o) {
    // Points still buffered go first, so rank 0 sees this rank's calls in
    // the order they were made (an append then '=' on the same path must be
    // refused as '=' on a series, not the other way round).
    if (buffered_points) emit_all();
    encode(o, batch);
    after_op();
  }

  series_buf& buffer_for(const std::string& path, field_type t) {
    if (!last_buf || last_path != path) {
      auto it = sbufs.find(path);
      if (it == sbufs.end()) it = sbufs.emplace(path, series_buf{}).first;
      last_buf = &it->second;
      last_path = path;
    }
    auto& b = *last_buf;
    if (b.type != t && !b.steps.empty()) emit_all();  // a new value type: keep the call order
    b.type = t;
    return b;
  }

  void point(series_buf& b, const point_options& o) {
    ++buffered_points;
    b.steps.push_back(o.has_step() ? o.step : -1.0);
    b.ts.push_back(o.timestamp >= 0 ? o.timestamp : now_unix_seconds());
  }

  void emit(const std::string& path, series_buf& b) {
    if (b.steps.empty()) return;
    op o;
    o.kind = op_kind::append;
    o.rank = rank;
    o.time = b.ts.back();
    o.path = path;
    o.points.type = b.type;
    o.points.steps.swap(b.steps);
    o.points.timestamps.swap(b.ts);
    o.points.f.swap(b.f);
    o.points.i.swap(b.i);
    o.points.s.swap(b.s);
    encode(o, batch);
    // Give the (now empty) vectors back their capacity for the next points.
    b.steps.swap(o.points.steps);
    b.ts.swap(o.points.timestamps);
    b.f.swap(o.points.f);
    b.i.swap(o.points.i);
    b.s.swap(o.points.s);
    b.steps.clear();
    b.ts.clear();
    b.f.clear();
    b.i.clear();
    b.s.clear();
  }

  void progress_sends() {
    while (!in_flight.empty() && in_flight.front().test()) {
      if (spare.size() < max_in_flight + 2) spare.push_back(in_flight.front().release());
      in_flight.pop_front();
    }
  }

  /// An empty batch frame, in a used buffer when there is one: on machines
  /// where first-touching memory is slow, fresh buffers cost more than encoding.
  void new_batch() {
    bytes b;
    if (!spare.empty()) {
      b = std::move(spare.back());
      spare.pop_back();
    } else if (rank == 0) {
      svc->take_spare(b);
    }
    // Room for a full batch of points at once: growing by doubling would
    // copy it several times into fresh memory.
    b.reserve(flush_points * 3 * sizeof(double) + 4096);
    b.assign(batch_head, msg_batch);
    batch = std::move(b);
  }

  void emit_all() {
    for (auto& [path, b] : sbufs) emit(path, b);
    buffered_points = 0;
  }

  /// Sends everything this rank has buffered to rank 0 (does not wait for it).
  void flush() {
    emit_all();
    pending = 0;
    last_flush = now_unix_seconds();
    if (batch.size() == batch_head) return;
    if (rank == 0) {
      svc->post(std::move(batch));
      // Rank 0 far ahead of its own service waits, like a worker does for
      // its sends: memory stays bounded and frame buffers get reused.
      for (unsigned us = 1; svc->queued() > max_in_flight; us = std::min(us * 2, 1000u)) {
        std::this_thread::sleep_for(std::chrono::microseconds(us));
      }
      new_batch();
      return;
    }
    in_flight.push_back(detail::isend_frame(ops, 0, tag_ops, std::move(batch), seg));
    new_batch();
    progress_sends();
    // Bounded memory: a rank far ahead of rank 0 waits for its oldest batch.
    while (in_flight.size() > max_in_flight) {
      auto done = in_flight.front().release();
      if (spare.size() < max_in_flight + 2) spare.push_back(std::move(done));
      in_flight.pop_front();
    }
  }

  std::string request(char kind, std::string payload) {
    flush();
    if (rank == 0) return svc->call(kind, std::move(payload));
    in_flight.push_back(detail::isend_frame(ops, 0, tag_ops, make_frame(kind, payload), seg));
    detail::frame_in f;
    detail::backoff bo;
    while (!detail::try_recv_frame(ops, 0, tag_reply, seg, f)) {
      progress_sends();
      bo.wait();
    }
    progress_sends();
    return std::string(f.payload() + 1, f.payload_size() - 1);
  }

  void wait() {
    const auto rep = request(msg_wait, {});
    cursor c{rep};
    throw_rejections(get_rejections(c));
  }

  void sync() {
    const auto rep = request(msg_sync, {});
    cursor c{rep};
    auto errs = get_rejections(c);
    std::map<std::string, field_type> v;
    const auto n = c.get<std::uint32_t>();
    for (std::uint32_t k = 0; k < n; ++k) {
      auto p = c.str();
      v[p] = static_cast<field_type>(c.get<std::uint8_t>());
    }
    view.swap(v);
    throw_rejections(errs);
  }

  field_record fetch(const std::string& path) {
    const auto rep = request(msg_fetch, path);
    cursor c{rep};
    field_record f;
    const auto t = c.get<std::uint8_t>();
    if (t == fetch_failed) throw storage_error("fetching '" + path + "': " + c.str());
    f.type = static_cast<field_type>(t);
    if (f.type == field_type::none) return f;
    f.rank = c.get<std::int32_t>();
    op o = decode(rep, c.pos);
    f.updated = o.time;
    f.atom = o.atom;
    f.series = std::move(o.points);
    f.file = std::move(o.file);
    f.array = std::move(o.array);
    return f;
  }

  /// Rank 0, after every rank's stop arrived: the end record, the merge into
  /// the experiment file, and the answer to every rank.
  void finish(const std::string& status, const std::string& reason, bool collective) {
    std::string failure;
    err_kind fk = err_kind::none;
    try {
      op end;
      end.kind = op_kind::end;
      end.time = now_unix_seconds();
      end.info.status = status;
      end.info.reason = reason;
      end.info.end_time = end.time;
      std::vector<rejection> none;
      svc->rec.apply(end, none);
      if (mode == tracking_mode::async || mode == tracking_mode::sync) {
        std::string enc;
        encode(end, enc);
        // Handed to the kernel (survives kill -9) but not fsync'd: the merge
        // below fsyncs what matters, the file itself.
        svc->journal.append(enc);
        svc->journal.flush();
        // Points stream from the journal into the file; nothing is replayed.
        const auto t0 = std::chrono::steady_clock::now();
        merge_run(paths, svc->rec, svc->journal.path());
        log::debug() << "run " << id << " written into " << paths.file << " in "
                     << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()
                     << " ms";
        // Unlinked while still locked: another job's recover() never sees
        // this journal unlocked and merges it a second time.
        ::unlink(paths.journal(id).c_str());
        svc->journal.close();
      }
    } catch (...) {
      std::tie(fk, failure) = classify(std::current_exception());
      failure = "rank 0 could not write run " + id + " into '" + paths.file + "': " + failure + " (its journal " +
                paths.journal(id) + " is kept; `rankflow recover` retries)";
    }
    if (!collective) return;
    std::deque<detail::pending_send> replies;
    for (int r = 1; r < size; ++r) {
      std::string rep;
      put<std::uint8_t>(rep, static_cast<std::uint8_t>(fk));
      put_str(rep, failure);
      put_rejections(rep, svc->errors[static_cast<std::size_t>(r)]);
      replies.push_back(detail::isend_frame(ops, r, tag_reply, make_frame(msg_stop, rep), seg));
    }
    for (auto& s : replies) s.wait();
    if (fk != err_kind::none) raise(fk, failure);
    throw_rejections(svc->errors[0]);
  }

  /// The ledger's last entries go into the journal; later calls are not recorded.
  void close_ledger() {
    if (!ledger) return;
    try {
      if (rank == 0 && !stopped) ledger->flush(true);
    } catch (...) {
      ledger->run_ = nullptr;
      throw;
    }
    ledger->run_ = nullptr;
  }

  void stop(const std::string& status, const std::string& reason) {
    if (stopped) return;
    close_ledger();
    stopped = true;
    flush();
    if (rank == 0) {
      svc->post_stop();
      svc_thread.join();
      finish(status, reason, true);
    } else {
      in_flight.push_back(detail::isend_frame(ops, 0, tag_ops, make_frame(msg_stop, {}), seg));
      detail::frame_in f;
      detail::backoff bo;
      while (!detail::try_recv_frame(ops, 0, tag_reply, seg, f)) {
        progress_sends();
        bo.wait();
      }
      for (auto& s : in_flight) s.wait();
      in_flight.clear();
      cursor c{std::string_view(f.payload() + 1, f.payload_size() - 1)};
      const auto fk = static_cast<err_kind>(c.get<std::uint8_t>());
      auto failure = c.str();
      auto errs = get_rejections(c);
      if (fk != err_kind::none) raise(fk, failure);
      throw_rejections(errs);
    }
  }

  /// This rank is unwinding: no collective is possible. Rank 0 records the
  /// failure and writes the run; other ranks just leave.
  void abandon(std::string reason) {
    if (stopped) return;
    try {
      close_ledger();
    } catch (...) {
    }
    stopped = true;
    if (rank != 0) {
      // Tell rank 0 this rank is gone, so that a rank 0 which carries on to
      // stop() does not wait for it. Nothing here may block: what is still
      // in flight is left to MPI (the job is ending, or the run's
      // communicator is dropped), not waited for as destructors would.
      try {
        flush();
        in_flight.push_back(detail::isend_frame(ops, 0, tag_ops, make_frame(msg_stop, {}), seg));
        progress_sends();
      } catch (...) {
      }
      if (!in_flight.empty()) new std::deque<detail::pending_send>(std::move(in_flight));  // NOLINT: deliberate leak
      return;
    }
    try {
      flush();
    } catch (...) {
    }
    svc->abort();
    svc_thread.join();
    const int sig = pending_signal();
    if (sig != 0) {
      reason = std::string("interrupted by ") + signal_name(sig) +
               " (a time limit, scancel or preemption); "
               "everything tracked until then was kept";
    }
    finish(sig != 0 ? "killed" : "failed", reason, false);
  }

  void free_comms() {
    if (ops != MPI_COMM_NULL) MPI_Comm_free(&ops);
    if (coll != MPI_COMM_NULL) MPI_Comm_free(&coll);
  }
};

// ------------------------------------------------------ partition_ledger --

std::string partition_ledger::changed_inputs() const {
  std::string out;
  if (!run_) return out;
  for (const auto& c : run_->changed_inputs) c.encode(out);
  return out;
}

std::string partition_ledger::describe_changes(const std::vector<std::string>& per_rank) const {
  std::string out;
  for (const auto& blob : per_rank) {
    for (const auto& c : input_change::decode_all(blob)) out += (out.empty() ? "" : "; ") + c.describe(id_);
  }
  return out;
}

bool partition_ledger::can_restart_for(const std::vector<std::string>& per_rank) const {
  if (on_change_ != change_policy::restart || calls_ != 1) return false;
  for (const auto& blob : per_rank) {
    for (const auto& c : input_change::decode_all(blob))
      if (c.held.empty()) return false;
  }
  return true;
}

void partition_ledger::restart_for_inputs(const std::vector<std::string>& per_rank, bool scheduler) {
  start_afresh(1);
  op o;
  o.kind = op_kind::ledger_restart;
  o.time = now_unix_seconds();
  o.ledger.call.call = 1;
  for (const auto& blob : per_rank) {
    for (auto& c : input_change::decode_all(blob)) {
      if (run_) run_->resumed_inputs[c.path] = c.now;  // the run's value from now on
      o.items.push_back(std::move(c.held));
    }
  }
  if (run_) run_->changed_inputs.clear();
  if (!scheduler || !run_) return;
  // One record: the new inputs and the restart of every call land in the
  // journal together, or (killed before) neither does.
  restart_journaled_ = true;
  flush(true);
  run_->enqueue(o);
  run_->flush();
}

void partition_ledger::start_afresh(std::int64_t call) {
  if (fresh_from_ == 0 || call < fresh_from_) fresh_from_ = call;
  recorded_calls_.erase(recorded_calls_.lower_bound(call), recorded_calls_.end());
  recorded_.erase(recorded_.lower_bound(call), recorded_.end());
}

void partition_ledger::journal_restart() {
  if (!run_ || restart_journaled_) return;
  restart_journaled_ = true;
  // Before this call's first entry: what the journal holds for the calls
  // from fresh_from_ on is dropped when it is replayed or merged.
  flush(true);
  op o;
  o.kind = op_kind::ledger_restart;
  o.time = now_unix_seconds();
  o.ledger.call.call = fresh_from_;
  run_->enqueue(o);
  run_->flush();
}

std::map<std::int64_t, std::string> partition_ledger::take_recorded(const call_info& c) {
  std::map<std::int64_t, std::string> out;
  if (fresh_from_ != 0 && c.call >= fresh_from_) {
    journal_restart();
    return out;
  }
  auto it = recorded_calls_.find(c.call);
  if (it == recorded_calls_.end()) return out;
  const call_info was = it->second;
  recorded_calls_.erase(it);
  auto results = recorded_.find(c.call);
  if (!was.same_work(c)) {
    if (results != recorded_.end()) recorded_.erase(results);  // a call may have no successes
    if (on_change_ == change_policy::restart) {
      // Asked for: this call and every later one (which may use its
      // results) run afresh; the calls before it keep what they reused.
      log::info() << "--on-change restart: call #" << c.call << " of this program is "
                  << (c.signature.empty() ? "'" + c.step + "'" : c.signature) << ", run " << id_ << " recorded "
                  << (was.signature.empty() ? "'" + was.step + "'" : was.signature) << ": calls #" << c.call
                  << " on run afresh";
      start_afresh(c.call);
      journal_restart();
      return out;
    }
    if (!was.signature.empty() && !c.signature.empty() && was.signature != c.signature) {
      throw usage_error("--resume: call #" + std::to_string(c.call) + " of this program is " + c.signature +
                        ", but run " + id_ + " recorded " + was.signature +
                        ": its recorded results belong to other work. Resume with the same program and arguments, "
                        "or start a new run without --resume");
    }
    throw usage_error("--resume: call #" + std::to_string(c.call) + " of this program is '" + c.step + "' over " +
                      std::to_string(c.items) + " items in " + std::to_string(c.partitions) + " partitions (chunk " +
                      std::to_string(c.chunk) + "), but run " + id_ + " recorded '" + was.step + "' over " +
                      std::to_string(was.items) + " items in " + std::to_string(was.partitions) +
                      " partitions (chunk " + std::to_string(was.chunk) +
                      "): resume with the same program and arguments, or start a new run without --resume");
  }
  if (results != recorded_.end()) {
    out = std::move(results->second);
    recorded_.erase(results);
  }
  return out;
}

void partition_ledger::record(const call_info& c, ledger_entry&& e) {
  if (!run_) return;
  if (!pending_.entries.empty() && pending_.call.call != c.call) flush(true);
  pending_.call = c;
  pending_bytes_ += e.result.size() + e.error.size() + 64;
  e.call = c.call;
  pending_.entries.push_back(std::move(e));
  flush(false);
}

void partition_ledger::flush(bool force) {
  if (!run_ || pending_.entries.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && pending_bytes_ < flush_bytes && now - last_flush_ < std::chrono::milliseconds(200)) return;
  last_flush_ = now;
  op o;
  o.kind = op_kind::ledger;
  o.time = now_unix_seconds();
  o.ledger = std::move(pending_);
  pending_ = {};
  pending_bytes_ = 0;
  // Straight to rank 0's service (this is rank 0), which journals it: the
  // entries reach the kernel within its next flush, ~200 ms.
  run_->enqueue(o);
  run_->flush();
}

}  // namespace rankflow::tracking

// ----------------------------------------------------------------- public --

namespace rankflow {

using tracking::field_record;
using tracking::op;
using tracking::op_kind;

Run::Run() noexcept = default;
Run::Run(Run&&) noexcept = default;
Run& Run::operator=(Run&& o) noexcept {
  if (this != &o) {
    this->~Run();
    new (this) Run(std::move(o));
  }
  return *this;
}

Run::Run(const tracking::run_context& ctx, std::string name, const run_options& opts)
    : impl_(std::make_unique<tracking::run_impl>()), uncaught_at_start_(std::uncaught_exceptions()) {
  auto& r = *impl_;
  r.rank = ctx.rank;
  r.size = ctx.size;
  r.mode = opts.mode.value_or(ctx.mode);
  r.name = std::move(name);
  r.paths = tracking::experiment_paths(opts.experiment.empty() ? ctx.experiment : opts.experiment);
  r.seg = ctx.segment_bytes;
  int provided = 0;
  MPI_Query_thread(&provided);
  detail::check_mpi(MPI_Comm_dup(ctx.comm, &r.coll), "MPI_Comm_dup");
  detail::check_mpi(MPI_Comm_dup(ctx.comm, &r.ops), "MPI_Comm_dup");

  tracking::err_kind k = tracking::err_kind::none;
  std::string msg;
  tracking::run_record rec;
  tracking::journal_writer journal;
  bool resumed = false;
  tracking::run_record old;  // the run being resumed
  std::map<std::string, double, std::less<>> floors;
  std::map<std::int64_t, std::map<std::int64_t, std::string>> recorded;
  std::map<std::int64_t, tracking::call_info> recorded_calls;
  std::map<std::string, std::string> inputs_of_old;  // rank 0, resuming: params/ and declared inputs
  if (r.rank == 0) {
    try {
      if (provided < MPI_THREAD_MULTIPLE) {
        throw usage_error("run tracking needs MPI initialised with MPI_THREAD_MULTIPLE (rank 0 answers every rank " +
                          std::string("from a service thread); rankflow::Runtime does this, a program that calls ") +
                          "MPI_Init itself must ask for it");
      }
      validate_path(r.name);
      if (r.mode == tracking_mode::read_only) {
        std::string id = opts.with_id;
        if (id.empty()) {
          auto runs = tracking::list_runs(r.paths.file);
          if (runs.empty()) throw usage_error("read-only: '" + r.paths.file + "' holds no runs");
          id = runs.back().id;
        }
        rec = tracking::load_run(r.paths.file, id);
      } else if (r.mode == tracking_mode::debug) {
        rec.info.id = "DEBUG";
      } else {
        tracking::check_file(r.paths.file);  // a bad file is refused before anything is created
        const auto recovered = tracking::recover(r.paths.file);
        if (!recovered.empty()) {
          // recover() keeps the status a run recorded (one that ended but
          // was not merged stays succeeded or failed): say what it restored.
          std::map<std::string, std::string> status;
          for (const auto& i : tracking::list_runs(r.paths.file)) status[i.id] = i.status;
          for (const auto& id : recovered) {
            log::warn() << "recovered run " << id << " of '" << r.paths.file << "' (its job ended before merging it; status '"
                        << (status.count(id) ? status[id] : "unknown") << "')";
          }
        }
        const auto& resume = opts.resume ? opts.resume : ctx.resume;
        std::string resume_id;
        if (resume && *resume != "no") resume_id = tracking::find_resumable(r.paths.file, r.name, *resume);
        if (!resume_id.empty()) {
          old = tracking::load_run(r.paths.file, resume_id, true);
          tracking::reopen_run(r.paths, resume_id, journal);
          rec.info.id = resume_id;
          resumed = true;
        } else {
          if (resume && *resume != "no") {
            log::info() << "--resume: '" << r.paths.file << "' holds no killed or failed run named '" << r.name
                        << "'; starting a new run";
          }
          rec.info.id = tracking::create_run(r.paths, journal);
        }
      }
      if (r.mode != tracking_mode::read_only) {
        op begin;
        begin.kind = op_kind::begin;
        begin.time = now_unix_seconds();
        auto& i = begin.info;
        i.id = rec.info.id;
        i.name = r.name;
        i.status = "running";
        i.start_time = begin.time;
        i.ranks = ctx.size;
        i.hosts = ctx.hosts;
        i.command_line = ctx.command_line;
        i.version = RANKFLOW_VERSION_STRING;
        i.mode = to_string(r.mode);
        i.context = ctx.context;
        if (resumed) {
          // The same run goes on: its start, and how often it was resumed.
          i.start_time = old.info.start_time;
          int n = 0;
          if (auto c = old.info.context.find("resumes"); c != old.info.context.end()) n = std::atoi(c->second.c_str());
          i.context["resumes"] = std::to_string(n + 1);
        }
        std::vector<tracking::rejection> none;
        rec.apply(begin, none);
        if (r.mode != tracking_mode::debug) {
          std::string enc;
          tracking::encode(begin, enc);
          journal.append(enc);
          if (resumed) {
            // Everything the run held goes into its new journal, so that the
            // resumed run is whole again if it is killed once more.
            const std::string old_status = old.info.status, old_reason = old.info.reason;
            for (const auto& [path, f] : old.fields) {
              if (is_series(f.type)) floors[path] = f.last_step;
            }
            for (const auto& e : old.ledger) {
              if (e.ok) recorded[e.call][e.partition] = e.result;
            }
            recorded_calls = old.calls;
            for (const auto& [path, f] : old.fields) {
              const bool atom = f.type != field_type::none && !is_series(f.type) && f.type != field_type::file &&
                                f.type != field_type::array;
              if (atom && (path.rfind("params/", 0) == 0 || opts.inputs.count(path))) {
                auto a = f.atom;
                a.type = f.type;
                inputs_of_old[path] = tracking::input_key(a);
              }
            }
            std::size_t reused = 0;
            for (const auto& [c, parts] : recorded) reused += parts.size();
            rec.keep_points = false;
            for (auto& o : tracking::carried_ops(std::move(old))) {
              if (!rec.apply(o, none)) continue;
              enc.clear();
              tracking::encode(o, enc);
              const auto at = journal.append(enc);
              if (o.kind == op_kind::file) {
                rec.fields[o.path].file.journal_offset =
                    static_cast<std::int64_t>(at + enc.size() - o.file.data.size());
              }
            }
            rec.resume_floor = floors;
            tracking::commit_reopened(r.paths, rec.info.id, journal);
            log::info() << "resuming run " << rec.info.id << " ('" << r.name << "', " << old_status
                        << (old_reason.empty() ? "" : ": " + old_reason) << "): " << reused
                        << " finished partitions in " << recorded_calls.size() << " calls recorded";
          }
          journal.flush();  // survives kill -9 at once; fsync'd by the first wait()
        }
      }
      msg = rec.info.id + '\n' + rec.info.name + '\n' + (resumed ? '1' : '0') + '\n' + tracking::encode_inputs(inputs_of_old);
    } catch (...) {
      std::tie(k, msg) = tracking::classify(std::current_exception());
    }
  }
  std::string shared;
  try {
    shared = tracking::share_outcome(r.coll, r.rank, k, msg);
  } catch (...) {
    r.stopped = true;
    r.free_comms();
    throw;
  }
  const auto nl = shared.find('\n');
  const auto nl2 = shared.find('\n', nl + 1);
  r.id = shared.substr(0, nl);
  if (r.mode == tracking_mode::read_only) r.name = shared.substr(nl + 1, nl2 - nl - 1);
  r.resumed = nl2 != std::string::npos && shared.compare(nl2 + 1, 1, "1") == 0;
  if (r.resumed && shared.size() > nl2 + 3) r.resumed_inputs = tracking::decode_inputs(std::string_view(shared).substr(nl2 + 3));
  for (const auto& [path, value] : opts.inputs) r.declared_inputs.insert(path);
  r.on_change = opts.on_change ? *opts.on_change : ctx.on_change;
  if (r.mode == tracking_mode::async || r.mode == tracking_mode::sync) {
    r.ledger = std::make_shared<tracking::partition_ledger>();
    r.ledger->run_ = &r;
    r.ledger->id_ = r.id;
    r.ledger->resuming_ = r.resumed;
    r.ledger->on_change_ = r.on_change;
    r.ledger->recorded_ = std::move(recorded);
    r.ledger->recorded_calls_ = std::move(recorded_calls);
  }
  if (r.rank == 0) {
    const bool journaling = r.mode == tracking_mode::async || r.mode == tracking_mode::sync;
    r.svc = std::make_unique<tracking::service>(r.ops, r.size, r.seg, std::move(rec), std::move(journal), journaling);
    r.svc_thread = std::thread([svc = r.svc.get()] { svc->loop(); });
  }
  r.new_batch();
  if (r.rank == 0) {
    if (r.mode != tracking_mode::read_only) {
      log::info() << "run " << r.id << " ('" << r.name << "') " << (r.resumed ? "resumed, " : "") << "tracking to "
                  << r.paths.file << " (" << to_string(r.mode) << ")";
    }
    // Declared inputs are fields like any other (checked on resume by assign).
    if (r.writable()) {
      for (const auto& [path, value] : opts.inputs) (*this)[path] = value;
    }
  }
}

Run::~Run() {
  if (!impl_) return;
  auto& r = *impl_;
  if (!r.stopped) {
    if (std::uncaught_exceptions() > uncaught_at_start_) {
      try {
        r.abandon("an exception ended the program on rank " + std::to_string(r.rank));
      } catch (const std::exception& e) {
        log::error() << "recording run " << r.id << " as failed: " << e.what();
      }
    } else {
      try {
        r.stop("succeeded", "");
      } catch (const std::exception& e) {
        log::error() << "stopping run " << r.id << ": " << e.what();
      }
    }
  }
  if (r.svc_thread.joinable()) {
    r.svc->abort();
    r.svc_thread.join();
  }
  if (std::uncaught_exceptions() <= uncaught_at_start_) r.free_comms();
}

field_ref Run::operator[](std::string_view path) {
  if (!impl_) throw usage_error("this Run is empty (moved from, or default-constructed)");
  validate_path(path);
  return field_ref(impl_.get(), std::string(path));
}

const std::string& Run::id() const { return impl_->id; }
const std::string& Run::name() const { return impl_->name; }
tracking_mode Run::mode() const { return impl_->mode; }
const std::string& Run::experiment() const { return impl_->paths.file; }
bool Run::active() const noexcept { return impl_ && !impl_->stopped; }
std::shared_ptr<tracking::partition_ledger> Run::ledger() const { return impl_ ? impl_->ledger : nullptr; }
bool Run::resumed() const noexcept { return impl_ && impl_->resumed; }

void Run::wait() {
  if (impl_ && !impl_->stopped) impl_->wait();
}
void Run::sync() {
  if (impl_ && !impl_->stopped) impl_->sync();
}
const std::map<std::string, field_type>& Run::structure() const { return impl_->view; }
bool Run::has(const std::string& path) const { return impl_->view.count(path) != 0; }
void Run::stop() {
  if (impl_) impl_->stop("succeeded", "");
}
void Run::fail(const std::string& reason) {
  if (impl_) impl_->stop("failed", reason);
}

// Never throws: write_array must not fail on one rank before the ranks agree
// (see write_array_raw). A block that is not whole rows gets no shape, and
// write_array_raw reports it on every rank.
std::vector<std::uint64_t> Run::row_block_shape(std::size_t n, const std::vector<std::uint64_t>& global_shape) {
  if (global_shape.empty()) return {};
  std::uint64_t row = 1;
  for (std::size_t d = 1; d < global_shape.size(); ++d) {
    if (__builtin_mul_overflow(row, global_shape[d], &row)) return {};
  }
  if (row == 0 || n % row != 0) return {};
  std::vector<std::uint64_t> shape = global_shape;
  shape[0] = n / row;
  return shape;
}

namespace {
hid_t h5_type(const std::string& dtype, bool memory) {
  if (dtype == "f8") return memory ? H5T_NATIVE_DOUBLE : H5T_IEEE_F64LE;
  if (dtype == "f4") return memory ? H5T_NATIVE_FLOAT : H5T_IEEE_F32LE;
  if (dtype == "i8") return memory ? H5T_NATIVE_INT64 : H5T_STD_I64LE;
  if (dtype == "i4") return memory ? H5T_NATIVE_INT32 : H5T_STD_I32LE;
  return memory ? H5T_NATIVE_UINT8 : H5T_STD_U8LE;
}
}  // namespace

namespace {
std::string shape_text(const std::vector<std::uint64_t>& v) {
  std::string s = "[";
  for (std::size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

/// Why this rank's block cannot be written, or "" when it can. Checked
/// arithmetic throughout: an offset + block that wraps past 2^64 would pass
/// a plain comparison and send HDF5 out of bounds.
std::string block_problem(std::size_t n, const std::vector<std::uint64_t>& block_shape,
                          const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset) {
  if (global_shape.empty()) return "the global shape must have at least one dimension";
  if (global_shape.size() > 32)
    return "the global shape has " + std::to_string(global_shape.size()) + " dimensions; HDF5 allows 32";
  std::uint64_t total = 1, row = 1;
  for (std::size_t d = 0; d < global_shape.size(); ++d) {
    if (__builtin_mul_overflow(total, global_shape[d], &total) ||
        (d > 0 && __builtin_mul_overflow(row, global_shape[d], &row))) {
      return "the global shape " + shape_text(global_shape) + " holds more than 2^64 values";
    }
  }
  if (block_shape.empty()) {  // the row-block form could not derive a shape, or none was given
    if (n == 0) return "";
    return "a block of " + std::to_string(n) + " values is not a whole number of rows of " + std::to_string(row) +
           " values of the global shape " + shape_text(global_shape) + "; pass the block's shape explicitly";
  }
  if (block_shape.size() != global_shape.size()) {
    return "the block shape " + shape_text(block_shape) + " has " + std::to_string(block_shape.size()) +
           " dimensions but the global shape " + shape_text(global_shape) + " has " +
           std::to_string(global_shape.size());
  }
  std::uint64_t count = 1;
  for (auto b : block_shape) {
    if (__builtin_mul_overflow(count, b, &count)) {
      return "the block shape " + shape_text(block_shape) + " holds more than 2^64 values";
    }
  }
  if (count != n) {
    return "the block holds " + std::to_string(n) + " values but its shape " + shape_text(block_shape) + " holds " +
           std::to_string(count);
  }
  if (count == 0) return "";  // an empty block: its offset is not used
  if (offset.size() != global_shape.size()) {
    return "the offset " + shape_text(offset) + " has " + std::to_string(offset.size()) +
           " dimensions but the global shape " + shape_text(global_shape) + " has " +
           std::to_string(global_shape.size());
  }
  for (std::size_t d = 0; d < global_shape.size(); ++d) {
    std::uint64_t end = 0;
    if (__builtin_add_overflow(offset[d], block_shape[d], &end)) {
      return "offset " + std::to_string(offset[d]) + " + block " + std::to_string(block_shape[d]) + " in dimension " +
             std::to_string(d) + " is past 2^64";
    }
    if (end > global_shape[d]) {
      return "the block [" + std::to_string(offset[d]) + ", " + std::to_string(end) + ") exceeds dimension " +
             std::to_string(d) + " of size " + std::to_string(global_shape[d]) + " (offset " + shape_text(offset) +
             ", block " + shape_text(block_shape) + ", global shape " + shape_text(global_shape) + ")";
    }
  }
  return "";
}

/// Two ranks whose blocks share an element ("" when none do): the elements'
/// values would depend on MPI-IO's order. `all` holds every rank's offset
/// then block shape, `dims` each; empty blocks have a zero extent.
std::string overlapping_blocks(const std::vector<std::uint64_t>& all, std::size_t dims, int size) {
  const auto at = [&](int r, std::size_t k) { return all[static_cast<std::size_t>(r) * 2 * dims + k]; };
  std::vector<int> order;
  for (int r = 0; r < size; ++r) {
    bool empty = false;
    for (std::size_t d = 0; d < dims; ++d) empty = empty || at(r, dims + d) == 0;
    if (!empty) order.push_back(r);
  }
  // Sorted by the start in dimension 0, each block is compared with those
  // starting before its end there: row blocks cost O(P log P), not O(P^2).
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return at(a, 0) < at(b, 0) || (at(a, 0) == at(b, 0) && a < b); });
  for (std::size_t i = 0; i < order.size(); ++i) {
    const int a = order[i];
    for (std::size_t j = i + 1; j < order.size() && at(order[j], 0) < at(a, 0) + at(a, dims); ++j) {
      const int b = order[j];
      bool shared = true;
      for (std::size_t d = 0; d < dims && shared; ++d) {
        shared = at(a, d) < at(b, d) + at(b, dims + d) && at(b, d) < at(a, d) + at(a, dims + d);
      }
      if (!shared) continue;
      const auto text = [&](int r) {
        std::vector<std::uint64_t> o, b2;
        for (std::size_t d = 0; d < dims; ++d) {
          o.push_back(at(r, d));
          b2.push_back(at(r, dims + d));
        }
        return "rank " + std::to_string(r) + " writes block " + shape_text(b2) + " at " + shape_text(o);
      };
      return "the blocks of ranks " + std::to_string(std::min(a, b)) + " and " + std::to_string(std::max(a, b)) +
             " overlap (" + text(std::min(a, b)) + ", " + text(std::max(a, b)) +
             "); every element must be written by one rank only";
    }
  }
  return "";
}
}  // namespace

void Run::write_array_raw(std::string_view name, const char* dtype, const void* data, std::size_t n,
                          const std::vector<std::uint64_t>& block_shape, const std::vector<std::uint64_t>& global_shape,
                          const std::vector<std::uint64_t>& offset) {
  if (!impl_) throw usage_error("this Run is empty (moved from, or default-constructed)");
  auto& r = *impl_;
  const std::string path(name);
  // Stopped and read-only are the same on every rank (stop() is collective,
  // the mode is rank 0's): refused at once, with no collective to wait in.
  r.require_writable(path);
  // Everything one rank could find wrong on its own is checked first and the
  // verdicts are agreed on (one allreduce) before any collective HDF5 call:
  // a rank throwing alone would leave the others waiting in H5Fcreate or
  // H5Dwrite forever. Every rank then throws the same usage_error naming the
  // lowest bad rank, nothing is written, and the run goes on.
  std::string why;
  try {
    validate_path(path);
    why = block_problem(n, block_shape, global_shape, offset);
    const auto file = r.paths.array_absolute(r.id, path);
    if (why.empty() && r.mode != tracking_mode::debug && file.size() > tracking::array_path_limit) {
      why = "its file '" + file + "' would have a path of " + std::to_string(file.size()) + " characters; Open " +
            "MPI's OMPIO aborts the job on paths longer than about 244: keep the experiment file in a directory " +
            "with a shorter path";
    }
  } catch (const usage_error& e) {
    why = e.what();
  }
  // Every rank must also describe the same array: a digest of name, type
  // and global shape travels in the same allreduce (its minimum and, as the
  // minimum of its complement, its maximum).
  std::string desc = path + '|' + dtype;
  for (auto d : global_shape) desc += '|' + std::to_string(d);
  const auto digest = static_cast<std::uint64_t>(tracking::crc32c(desc.data(), desc.size()));
  std::uint64_t agree[3] = {why.empty() ? static_cast<std::uint64_t>(r.size) : static_cast<std::uint64_t>(r.rank),
                            digest, ~digest};
  detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, agree, 3, MPI_UINT64_T, MPI_MIN, r.coll), "MPI_Allreduce");
  if (agree[0] < static_cast<std::uint64_t>(r.size)) {
    const int bad = static_cast<int>(agree[0]);
    bytes text;
    if (r.rank == bad) {
      const auto m = "write_array('" + path + "') refused on every rank because of rank " + std::to_string(bad) + ": " +
                     why + " (nothing was written; the run goes on)";
      text.assign(m.begin(), m.end());
    }
    detail::bcast_frame(r.coll, bad, text, r.seg);
    throw usage_error(std::string(text.begin(), text.end()));
  }
  if (agree[1] != ~agree[2]) {
    throw usage_error("write_array('" + path + "'): ranks passed different names, element types or global shapes; " +
                      "every rank must describe the same array");
  }
  {
    // Each block is within the shape; now no two may share an element. The
    // rank count of dimensions is agreed (same global shape everywhere).
    const std::size_t dims = global_shape.size();
    std::vector<std::uint64_t> mine(2 * dims, 0), all(2 * dims * static_cast<std::size_t>(r.size));
    if (n > 0) {
      std::copy(offset.begin(), offset.end(), mine.begin());
      std::copy(block_shape.begin(), block_shape.end(), mine.begin() + static_cast<std::ptrdiff_t>(dims));
    }
    detail::check_mpi(MPI_Allgather(mine.data(), static_cast<int>(2 * dims), MPI_UINT64_T, all.data(),
                                    static_cast<int>(2 * dims), MPI_UINT64_T, r.coll),
                      "MPI_Allgather");
    const auto overlap = overlapping_blocks(all, dims, r.size);
    if (!overlap.empty()) {
      throw usage_error("write_array('" + path + "') refused on every rank: " + overlap +
                        " (nothing was written; the run goes on)");
    }
  }
  // Rank 0 checks the path against the run (an Array may not replace a Float)
  // and prepares the directory; everyone learns the outcome.
  tracking::err_kind k = tracking::err_kind::none;
  std::string msg;
  const auto abs = r.paths.array_absolute(r.id, path);
  if (r.rank == 0) {
    try {
      auto refused = r.request(tracking::msg_check, path);  // after this rank's own earlier writes
      if (!refused.empty()) throw type_error(refused);
      if (r.mode != tracking_mode::debug) {
        const auto dir = abs.substr(0, abs.rfind('/'));
        for (std::size_t p = dir.find('/', 1);; p = dir.find('/', p + 1)) {
          const auto sub = p == std::string::npos ? dir : dir.substr(0, p);
          if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) {
            throw storage_error(detail::sys_error("cannot create directory", sub));
          }
          if (p == std::string::npos) break;
        }
      }
    } catch (const type_error& e) {
      k = tracking::err_kind::tracking;
      msg = e.what();
    } catch (...) {
      std::tie(k, msg) = tracking::classify(std::current_exception());
    }
  }
  try {
    tracking::share_outcome(r.coll, r.rank, k, msg);
  } catch (const tracking_error& e) {
    throw type_error(e.what());
  }
  if (r.mode == tracking_mode::debug) return;
  {
    auto file = h5::create_parallel(abs, r.coll);
    auto dset = h5::write_block(file.id(), "data", h5_type(dtype, false), h5_type(dtype, true), data, block_shape,
                                global_shape, offset);
    h5::write_attr(dset.id(), "rankflow_type", "Array");
    h5::write_attr(dset.id(), "dtype", dtype);
    h5::write_attr(dset.id(), "updated", now_unix_seconds());
  }
  if (r.rank == 0) {
    // Durable before it is recorded: the journal never points at a partial file.
    const int fd = ::open(abs.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    op o;
    o.kind = op_kind::array;
    o.rank = 0;
    o.time = now_unix_seconds();
    o.path = path;
    o.array.dtype = dtype;
    o.array.shape = global_shape;
    o.array.file = r.paths.array_relative(r.id, path);
    r.enqueue(o);
    // Applied by the service before any rank leaves the barrier below: a
    // rank that fetches the array next must find it. A request is answered
    // after this rank's earlier writes (once in ~40 runs, tracking_test at
    // -n 3 fetched before rank 0's batch had even been sent).
    (void)r.request(tracking::msg_check, path);
  }
  detail::check_mpi(MPI_Barrier(r.coll), "MPI_Barrier");
}

// -------------------------------------------------------------- field_ref --

field_ref::field_ref(tracking::run_impl* r, std::string p) : r_(r), path_(std::move(p)) {}

field_ref field_ref::operator[](std::string_view sub) const {
  std::string full = path_ + "/" + std::string(sub);
  validate_path(full);
  return field_ref(r_, std::move(full));
}

namespace {
// Rank 0 refuses such strings too (at wait(), for every rank's writes); the
// writing rank checks first so that the error points at the line that wrote.
void check_text(const std::string& path, const char* type, std::string_view v) {
  if (auto why = tracking::string_problem(v); !why.empty()) {
    throw type_error(std::string(type) + " value for '" + path + "' refused: " + why);
  }
}
void check_texts(const std::string& path, const char* type, const std::vector<std::string>& v) {
  for (std::size_t k = 0; k < v.size(); ++k) {
    if (auto why = tracking::string_problem(v[k]); !why.empty()) {
      throw type_error(std::string(type) + " value for '" + path + "' refused: item " + std::to_string(k) + ": " + why);
    }
  }
}
}  // namespace

void field_ref::assign(tracking::atom_value a) {
  r_->require_writable(path_);
  if (r_->resumed && r_->is_input(path_)) {
    // The run's recorded partitions were computed with the value it holds;
    // another one now would mix results of two inputs. The run keeps its
    // value, and the next collective call refuses to reuse anything, or
    // (--on-change restart, before the first call, same type) restarts
    // every call and records the new value with the restart.
    const auto was = r_->resumed_inputs.find(path_);
    const std::string now = tracking::input_key(a);
    if (was != r_->resumed_inputs.end() && was->second != now) {
      tracking::input_change c{path_, was->second, now, r_->rank, {}};
      const bool same_type = was->second.substr(0, was->second.find(' ')) == now.substr(0, now.find(' '));
      if (r_->on_change == change_policy::restart && same_type && r_->ledger && r_->ledger->calls_made() == 0) {
        op o;
        o.kind = op_kind::assign;
        o.rank = r_->rank;
        o.time = now_unix_seconds();
        o.path = path_;
        o.atom = std::move(a);
        encode(o, c.held);
      }
      r_->changed_inputs.push_back(std::move(c));
      return;
    }
  }
  op o;
  o.kind = op_kind::assign;
  o.rank = r_->rank;
  o.time = now_unix_seconds();
  o.path = path_;
  o.atom = std::move(a);
  r_->enqueue(o);
}

namespace {
tracking::atom_value atom(field_type t) {
  tracking::atom_value a;
  a.type = t;
  return a;
}
}  // namespace

field_ref& field_ref::operator=(double v) {
  auto a = atom(field_type::float_);
  a.d = v;
  assign(std::move(a));
  return *this;
}
void field_ref::assign_int(std::int64_t v) {
  auto a = atom(field_type::int_);
  a.i = v;
  assign(std::move(a));
}
field_ref& field_ref::operator=(bool v) {
  auto a = atom(field_type::bool_);
  a.i = v ? 1 : 0;
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(const std::string& v) {
  check_text(path_, "String", v);
  auto a = atom(field_type::string);
  a.s = v;
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(timestamp v) {
  auto a = atom(field_type::datetime);
  a.d = to_unix_seconds(v);
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(const std::vector<std::string>& v) {
  check_texts(path_, "StringList", v);
  auto a = atom(field_type::string_list);
  a.list = v;
  assign(std::move(a));
  return *this;
}
field_ref& field_ref::operator=(const std::set<std::string>& v) {
  for (const auto& x : v) check_text(path_, "StringSet", x);
  auto a = atom(field_type::string_set);
  a.list.assign(v.begin(), v.end());
  assign(std::move(a));
  return *this;
}
void field_ref::add(const std::vector<std::string>& v) {
  check_texts(path_, "StringSet", v);
  r_->require_writable(path_);
  op o;
  o.kind = op_kind::add;
  o.rank = r_->rank;
  o.time = now_unix_seconds();
  o.path = path_;
  o.items = v;
  r_->enqueue(o);
}

void field_ref::append(double v, point_options o) {
  if (r_->stopped || !r_->writable()) r_->require_writable(path_);
  auto& b = r_->buffer_for(path_, field_type::float_series);
  r_->point(b, o);
  b.f.push_back(v);
  r_->after_op();
}
void field_ref::append_int(std::int64_t v, point_options o) {
  if (r_->stopped || !r_->writable()) r_->require_writable(path_);
  auto& b = r_->buffer_for(path_, field_type::int_series);
  r_->point(b, o);
  b.i.push_back(v);
  r_->after_op();
}
void field_ref::append(const std::string& v, point_options o) {
  check_text(path_, "StringSeries", v);
  if (r_->stopped || !r_->writable()) r_->require_writable(path_);
  auto& b = r_->buffer_for(path_, field_type::string_series);
  r_->point(b, o);
  b.s.push_back(v);
  r_->after_op();
}

void field_ref::upload(const std::string& file_path) {
  r_->require_writable(path_);
  std::ifstream in(file_path, std::ios::binary);
  if (!in) {
    throw usage_error(detail::sys_error("upload('" + path_ + "'): cannot read", file_path));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  const auto slash = file_path.rfind('/');
  upload_bytes(ss.str(), slash == std::string::npos ? file_path : file_path.substr(slash + 1));
}

void field_ref::upload_bytes(std::string_view data, const std::string& filename) {
  r_->require_writable(path_);
  if (data.size() > (std::uint64_t{4} << 30) - (1u << 20)) {
    throw usage_error("upload('" + path_ + "'): " + std::to_string(data.size()) + " bytes is more than a File " +
                      "artifact holds (4 GiB); store large data with Run::write_array");
  }
  op o;
  o.kind = op_kind::file;
  o.rank = r_->rank;
  o.time = now_unix_seconds();
  o.path = path_;
  o.file.filename = filename;
  o.file.data.assign(data);
  o.file.size = data.size();
  r_->enqueue(o);
}

tracking::field_record field_ref::get() const {
  if (r_->stopped) throw usage_error("run " + r_->id + " has stopped: cannot fetch '" + path_ + "'");
  auto f = r_->fetch(path_);
  if (f.type == field_type::none) {
    throw usage_error("field '" + path_ + "' does not exist in run " + r_->id +
                      " (nothing written there yet, or its write was refused: see wait())");
  }
  return f;
}

field_type field_ref::type() const {
  if (r_->stopped) throw usage_error("run " + r_->id + " has stopped: cannot fetch '" + path_ + "'");
  return r_->fetch(path_).type;
}

namespace {
[[noreturn]] void wrong_fetch(const field_record& f, const std::string& path, const char* wanted) {
  throw type_error(std::string(type_name(f.type)) + " field '" + path + "' cannot be fetched as " + wanted);
}
}  // namespace

template <>
double field_ref::fetch<double>() const {
  auto f = get();
  if (f.type == field_type::float_) return f.atom.d;
  if (f.type == field_type::int_) return static_cast<double>(f.atom.i);
  wrong_fetch(f, path_, "a double (Float)");
}
template <>
std::int64_t field_ref::fetch<std::int64_t>() const {
  auto f = get();
  if (f.type == field_type::int_) return f.atom.i;
  wrong_fetch(f, path_, "an integer (Int)");
}
template <>
int field_ref::fetch<int>() const {
  return static_cast<int>(fetch<std::int64_t>());
}
template <>
bool field_ref::fetch<bool>() const {
  auto f = get();
  if (f.type == field_type::bool_) return f.atom.i != 0;
  wrong_fetch(f, path_, "a bool (Bool)");
}
template <>
std::string field_ref::fetch<std::string>() const {
  auto f = get();
  if (f.type == field_type::string) return f.atom.s;
  wrong_fetch(f, path_, "a string (String)");
}
template <>
timestamp field_ref::fetch<timestamp>() const {
  auto f = get();
  if (f.type == field_type::datetime) return from_unix_seconds(f.atom.d);
  wrong_fetch(f, path_, "a timestamp (Datetime)");
}
template <>
std::vector<std::string> field_ref::fetch<std::vector<std::string>>() const {
  auto f = get();
  if (f.type == field_type::string_list || f.type == field_type::string_set) return f.atom.list;
  wrong_fetch(f, path_, "a list of strings (StringList or StringSet)");
}
template <>
std::set<std::string> field_ref::fetch<std::set<std::string>>() const {
  auto f = get();
  if (f.type == field_type::string_set) return {f.atom.list.begin(), f.atom.list.end()};
  wrong_fetch(f, path_, "a set of strings (StringSet)");
}

template <>
series_values<double> field_ref::fetch_values<double>() const {
  auto f = get();
  series_values<double> out;
  if (f.type == field_type::float_series) {
    out.values = std::move(f.series.f);
  } else if (f.type == field_type::int_series) {
    out.values.assign(f.series.i.begin(), f.series.i.end());
  } else {
    wrong_fetch(f, path_, "series values of double (FloatSeries or IntSeries)");
  }
  out.steps = std::move(f.series.steps);
  out.timestamps = std::move(f.series.timestamps);
  return out;
}
template <>
series_values<std::int64_t> field_ref::fetch_values<std::int64_t>() const {
  auto f = get();
  if (f.type != field_type::int_series) wrong_fetch(f, path_, "series values of int64 (IntSeries)");
  return {std::move(f.series.steps), std::move(f.series.i), std::move(f.series.timestamps)};
}
template <>
series_values<std::string> field_ref::fetch_values<std::string>() const {
  auto f = get();
  if (f.type != field_type::string_series) wrong_fetch(f, path_, "series values of string (StringSeries)");
  return {std::move(f.series.steps), std::move(f.series.s), std::move(f.series.timestamps)};
}

std::string field_ref::fetch_bytes() const {
  auto f = get();
  if (f.type != field_type::file) wrong_fetch(f, path_, "bytes (File)");
  return std::move(f.file.data);
}

void field_ref::download(const std::string& dest) const {
  const auto data = fetch_bytes();
  std::ofstream out(dest, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw storage_error("download('" + path_ + "'): cannot write '" + dest + "'");
}

std::vector<double> field_ref::fetch_array(std::vector<std::uint64_t>* shape) const {
  auto f = get();
  if (f.type != field_type::array) wrong_fetch(f, path_, "an array (Array)");
  return tracking::read_array(r_->paths.file, f.array, shape);
}

}  // namespace rankflow
