// Private to run tracking: every rank's side of a run (run_impl), behind
// rankflow::Run, field_ref and partition_ledger (run.cpp, field_ref.cpp,
// ledger.cpp).
#pragma once

#include <rankflow/tracking/run.hpp>

#include "run_inputs.hpp"
#include "run_wire.hpp"
#include "service.hpp"

namespace rankflow::tracking {

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
      const bool journaled = mode == tracking_mode::async || mode == tracking_mode::sync;
      std::string enc;
      if (const double job_end = detail::deadline(); job_end > 0) {
        // The allocation's end (--deadline, or Slurm's), and how much of it
        // this run left unused: what stopping early cost, or what was spare.
        for (const auto& [path, value] : {std::pair<const char*, double>{"sys/deadline/end", job_end},
                                          {"sys/deadline/left_s", job_end - end.time}}) {
          op a;
          a.kind = op_kind::assign;
          a.time = end.time;
          a.path = path;
          a.atom.type = path == std::string_view("sys/deadline/end") ? field_type::datetime : field_type::float_;
          a.atom.d = value;
          if (svc->rec.apply(a, none) && journaled) encode(a, enc);
        }
      }
      svc->rec.apply(end, none);
      if (journaled) {
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
    if (sig == deadline_signal) {
      reason = "stopped before the job's time limit: no partition that could not finish by then was started "
               "(--deadline; sys/deadline/left_s says how much of the allocation was left); everything tracked "
               "until then was kept";
    } else if (sig != 0) {
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

}  // namespace rankflow::tracking
