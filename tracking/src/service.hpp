// Private to run tracking: rank 0's service thread.
#pragma once

#include "run_wire.hpp"

namespace rankflow::tracking {

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

  // The service thread: rank 0's own operations, the workers' messages, the
  // journal's timely flush, and an idle sleep, until every rank has stopped
  // (or the run is abandoned).
  void loop() {
    detail::frame_in f;
    unsigned idle = 0;
    for (;;) {
      // Checked before draining: what rank 0 posted before abort() is still
      // applied (an abandoned run keeps what rank 0 tracked).
      const bool stopping = aborted_.load();
      bool did = serve_rank0();
      if (stopping) {
        apply_last_batches(f);
        break;
      }
      did = serve_workers(f) || did;
      while (!out_.empty() && out_.front().test()) out_.pop_front();
      flush_journal_in_time();
      if (stops_ == size_) {
        std::lock_guard lk(m_);
        if (q_.empty()) break;
      }
      if (did) {
        idle = 0;
        continue;
      }
      sleep_idle(++idle);
    }
    for (auto& s : out_) s.wait();
    out_.clear();
  }

 private:
  // Applies what rank 0's own threads posted; returns whether there was any.
  bool serve_rank0() {
    std::deque<item> items;
    {
      std::lock_guard lk(m_);
      items.swap(q_);
    }
    for (auto& it : items) {
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
    return !items.empty();
  }

  // Abandoning the run: what the workers already sent is applied; their
  // requests are not answered (they are leaving too).
  void apply_last_batches(detail::frame_in& f) {
    while (detail::try_recv_frame(ops_, MPI_ANY_SOURCE, tag_ops, seg_, f)) {
      if (f.payload()[0] != msg_batch) continue;
      try {
        handle(f.source, msg_batch, std::string_view(f.payload() + 1, f.payload_size() - 1));
      } catch (const std::exception&) {
      }
    }
  }

  // Up to 64 of the workers' messages, each answered unless it is a batch or a
  // stop; returns whether there was any.
  bool serve_workers(detail::frame_in& f) {
    bool did = false;
    for (int k = 0; k < 64 && detail::try_recv_frame(ops_, MPI_ANY_SOURCE, tag_ops, seg_, f); ++k) {
      did = true;
      const char kind = f.payload()[0];
      std::string rep;
      try {
        rep = handle(f.source, kind, std::string_view(f.payload() + 1, f.payload_size() - 1));
      } catch (const std::exception& e) {
        rep = storage_failure(f.source, kind, e.what());
      }
      if (kind != msg_batch && kind != msg_stop) {
        out_.push_back(detail::isend_frame(ops_, f.source, tag_reply, make_frame(kind, rep), seg_));
      }
    }
    return did;
  }

  // A storage failure (disk full) is reported to the rank that asked: in the
  // answer to its request, or at its next wait() for a batch.
  std::string storage_failure(int source, char kind, const char* what) {
    auto& errs = errors[static_cast<std::size_t>(source)];
    std::string rep;
    if (kind == msg_fetch) {
      put<std::uint8_t>(rep, fetch_failed);
      put_str(rep, std::string("rank 0 could not read it: ") + what);
      return rep;
    }
    errs.push_back({false, std::string("rank 0 could not store this rank's operations: ") + what});
    if (kind == msg_wait || kind == msg_sync) {
      put_rejections(rep, errs);
      errs.clear();
      if (kind == msg_sync) put<std::uint32_t>(rep, 0);
    }
    return rep;
  }

  // Buffered records reach the kernel within ~200 ms even without a wait():
  // a kill -9 then loses at most that much (the ledger's resume point, a
  // worker's last points). fsync stays with wait() and stop().
  void flush_journal_in_time() {
    if (!journaling_ || !journal.buffered()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_kernel_flush_ < kernel_flush_every) return;
    try {
      journal.flush();
    } catch (const std::exception& e) {
      errors[0].push_back({false, std::string("rank 0 could not write the run's journal: ") + e.what()});
    }
    last_kernel_flush_ = now;
  }

  // Nothing to do: sleep (woken at once by rank 0's own calls) for a growing
  // while, so an idle run costs no CPU beside the computation: up to 1 ms
  // while traffic is recent, then up to 20 ms once the ranks have been quiet
  // for a while (a worker's wait() after a long compute is answered within
  // that). Each wake-up is a context switch that a fully busy node pays for.
  void sleep_idle(unsigned idle) {
    if (idle < 16) return;
    std::unique_lock lk(m_);
    const unsigned cap = idle < 16 + 10 + 200 ? 1000u : 20000u;
    const auto us = std::min(cap, 1u << std::min(idle - 16, 15u));
    cv_.wait_for(lk, std::chrono::microseconds(us), [&] { return !q_.empty() || aborted_.load(); });
  }

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

}  // namespace rankflow::tracking
