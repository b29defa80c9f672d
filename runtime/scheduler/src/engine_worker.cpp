// A worker's side of the scheduling protocol (engine.cpp describes it).
#include "engine_wire.hpp"

namespace rankflow::detail {

namespace {

// --------------------------------------------------------------- workers ---

class worker {
 public:
  worker(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused)
      : st_(st), j_(j), reused_(reused), result_every_s_(result_batch_for(std::min(j.active_ranks, st.size))) {}

  void run() {
    if (j_.sched == schedule::blocked) run_blocked();
    wait_for_stop();
    flush_results();  // nothing is left unsent (a STOP comes only after every result)
    for (auto& s : sends_) s.wait();
    if (failure_) raise_failure(st_, j_, *failure_);
  }

  // A signal on this worker: tell rank 0 once, which stops the call everywhere.
  void check_signal() {
    const int sig = pending_signal();
    // After STOP (or after `done` in a blocked call) rank 0 has left this
    // call: a report now would arrive in the next one. That call reports it.
    if (sig == 0 || signal_reported_ || stopped_ || done_sent_) return;
    signal_reported_ = true;
    bytes ff = frame_with(j_, {kind::fail, 0, st_.op, interrupted_partition, j_.plan.count});
    append_failure(ff, interruption(st_.rank, sig));
    send(std::move(ff));
  }

 private:
  // Runs p once; adds its result to the batch or sends its failure. Returns
  // true on success.
  bool attempt(std::int64_t p, int attempt_no, bool report_failure) {
    const double t0 = unix_now();
    if (results_.empty()) {
      results_ = frame_with(j_, {kind::result, 0, st_.op, 0, j_.plan.count});
      oldest_ = t0;
    }
    const std::size_t entry = open_result(results_, p, static_cast<std::uint32_t>(attempt_no), t0);
    log::set_partition(p);
    try {
      j_.run_remote(p, results_);
      close_result(results_, entry, unix_now());
    } catch (const item_failure& e) {
      results_.resize(entry);
      if (entries_ == 0) results_.clear();
      log::set_partition(-1);
      if (!report_failure) {
        log::warn() << j_.step << ": partition " << p << " failed (attempt " << attempt_no << " of " << j_.retries + 1
                    << "), item " << e.item << ": " << e.message << "; retrying here";
        return false;
      }
      flush_results();
      bytes ff =
          frame_with(j_, {kind::fail, static_cast<std::uint32_t>(attempt_no), st_.op, p, j_.plan.count, t0, unix_now()});
      append_failure(ff, {st_.rank, attempt_no, e.item, p, e.message});
      send(std::move(ff));
      return false;
    }
    log::set_partition(-1);
    ++entries_;
    if ((j_.sched == schedule::dynamic && queue_.empty()) || entries_ >= result_batch_entries ||
        results_.size() >= result_batch_bytes || unix_now() - oldest_ >= result_every_s_) {
      flush_results();
    }
    return true;
  }

  // Sends the batched results, if any (count in the header's partition field).
  void flush_results() {
    if (entries_ == 0) return;
    const std::int64_t n = entries_;
    std::memcpy(results_.data() + frame_header_bytes + offsetof(header, partition), &n, sizeof n);
    send(std::move(results_));
    results_.clear();
    entries_ = 0;
  }

  void send(bytes&& f) {
    sends_.push_back(isend_frame(st_.comm, 0, tag_data, std::move(f), st_.cfg.segment_bytes));
    while (!sends_.empty() && sends_.front().test()) sends_.pop_front();
  }

  void run_blocked() {
    const auto own = blocked_partitions(j_.plan.count, st_.rank, st_.size);
    for (std::int64_t p = own.first; p < own.last && !cancelled_; ++p) {
      if (!reused_.empty() && reused_[static_cast<std::size_t>(p)]) continue;
      check_signal();
      if (signal_reported_) break;
      bool ok = false;
      for (int a = 1; a <= j_.retries + 1 && !ok; ++a) ok = attempt(p, a, a == j_.retries + 1);
      if (!ok) break;
      drain_ctrl();
    }
    flush_results();
    send(frame_with(j_, {kind::done, 0, st_.op, -1, j_.plan.count}));
    done_sent_ = true;
  }

  // Reads control messages; dynamic assignments go to queue_.
  void drain_ctrl() {
    frame_in in;
    while (!stopped_ && try_recv_frame(st_.comm, 0, tag_ctrl, st_.cfg.segment_bytes, in)) {
      const header h = read_header(in);
      if (h.op != st_.op || h.partitions != j_.plan.count || h.site != j_.site) {
        protocol_error(st_, h, j_);
      }
      switch (h.k) {
        case kind::assign: {
          const char* d = body(in);
          const std::size_t sz = body_size(in);
          const auto n = sz >= 4 ? decode<std::uint32_t>(d, 4) : 0u;
          if (sz != 4 + std::size_t{n} * 12) throw error("rankflow: malformed assignment from rank 0");
          for (std::uint32_t k = 0; k < n; ++k) {
            queue_.push_back(
                {decode<std::int64_t>(d + 4 + 12 * k, 8), static_cast<int>(decode<std::uint32_t>(d + 12 + 12 * k, 4))});
          }
          break;
        }
        case kind::cancel:
          cancelled_ = true;
          if (j_.sched == schedule::dynamic) {
            // Drop what has not started; say how much, after the results.
            bytes done = frame_with(j_, {kind::done, 0, st_.op, -1, j_.plan.count});
            encode(done, static_cast<std::int64_t>(queue_.size()));
            queue_.clear();
            flush_results();
            send(std::move(done));
          }
          break;
        case kind::stop: {
          stopped_ = true;
          learn_call_cost(st_, j_, h.start);
          if (decode<std::uint32_t>(body(in), 4) != 0) failure_ = read_failure(body(in) + 4, body_size(in) - 4);
          break;
        }
        default:
          throw error("rankflow: unexpected control message " + std::to_string(static_cast<unsigned>(h.k)));
      }
    }
  }

  void wait_for_stop() {
    backoff idle(1000, st_.cfg.spin_us);
    std::int64_t last_poll = 0;
    while (!stopped_) {
      if (const std::int64_t now = steady_ns(); queue_.empty() || now - last_poll >= poll_every_ns) {
        last_poll = now;
        drain_ctrl();
        check_signal();
      }
      if (!queue_.empty()) {
        auto [p, a] = queue_.front();
        queue_.pop_front();
        attempt(p, a, true);
        idle.reset();
      } else if (!stopped_) {
        if (j_.idle_poll && j_.idle_poll()) {
          idle.reset();
          continue;
        }
        while (!sends_.empty() && sends_.front().test()) sends_.pop_front();
        idle.wait();
      }
    }
  }

  runtime_state& st_;
  const job& j_;
  const std::vector<std::uint8_t>& reused_;
  std::deque<std::pair<std::int64_t, int>> queue_;
  std::deque<pending_send> sends_;
  bytes results_;             // batched results not yet sent (a frame), or empty
  std::int64_t entries_ = 0;  // results in results_
  double oldest_ = 0;         // when the first of them started
  double result_every_s_;     // send held results once the oldest is this old
  bool stopped_ = false;
  bool cancelled_ = false;
  bool signal_reported_ = false;
  bool done_sent_ = false;
  std::optional<failure_info> failure_;
};

}  // namespace

void run_worker(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused) {
  worker(st, j, reused).run();
}

}  // namespace rankflow::detail
