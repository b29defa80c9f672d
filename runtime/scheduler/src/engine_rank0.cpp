// Rank 0's side of the scheduling protocol (engine.cpp describes it).
#include <cmath>

#include "engine_wire.hpp"

namespace rankflow::detail {

namespace {

// ---------------------------------------------------------------- rank 0 ---

class scheduler {
 public:
  scheduler(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused)
      : st_(st),
        j_(j),
        reused_(reused),
        progress_(st.cfg, j.step, j.plan.count, true),
        inflight_(st.size, 0),
        last_batch_(st.size, 0) {
    for (auto r : reused_) completed_ += r;
    if (completed_) progress_.update(completed_);
  }

  void run() {
    if (j_.sched == schedule::dynamic) {
      run_dynamic();
    } else {
      run_blocked();
    }
    // The STOP's `start` carries what the call's partitions cost, so that
    // every rank learns the same value (is_small_call decides with it).
    const double cost = failure_ ? -1.0 : mean_cost_;
    bytes stop = frame_with(j_, {kind::stop, 0, st_.op, -1, j_.plan.count, cost});
    encode(stop, static_cast<std::uint32_t>(failure_ ? 1 : 0));
    if (failure_) append_failure(stop, *failure_);
    for (int r = 1; r < st_.size; ++r) send_small(st_, r, tag_ctrl, bytes(stop));
    learn_call_cost(st_, j_, cost);
    if (failure_) raise_failure(st_, j_, *failure_);
    progress_.finish();
  }

 private:
  struct retry {
    std::int64_t partition;
    int attempts;
    int last_rank;
  };

  void run_dynamic() {
    backoff idle(1000, st_.cfg.spin_us);
    const int active = std::max(1, std::min(j_.active_ranks, st_.size));
    bool ran_last = false;
    std::int64_t last_poll = 0;
    for (;;) {
      bool busy = false;
      if (const std::int64_t now = steady_ns(); !ran_last || now - last_poll >= poll_every_ns) {
        last_poll = now;
        busy = poll();
        check_signal(active);
        if (!failure_) {
          for (int r = 1; r < active; ++r) {
            if (eligible(r)) feed(r, active);
          }
        }
      }
      if (inflight_total_ == 0 && cancels_out_ == 0 && (failure_ || completed_ == j_.plan.count)) return;
      std::int64_t p = 0;
      int attempt = 0;
      ran_last = !failure_ && eligible(0) && take(0, active, p, attempt);
      if (ran_last) {
        run_here(p, attempt, active);
        busy = true;
      }
      if (busy) {
        idle.reset();
      } else {
        idle.wait();
      }
    }
  }

  void run_blocked() {
    const auto own = blocked_partitions(j_.plan.count, 0, st_.size);
    std::int64_t last_poll = steady_ns();
    for (std::int64_t p = own.first; p < own.last && !failure_; ++p) {
      if (is_reused(p)) continue;
      check_signal(1);
      if (failure_) break;
      for (int attempt = 1;; ++attempt) {
        if (run_here(p, attempt, 1) || failure_) break;
        retry_.clear();  // blocked: the retry happens here, in place
      }
      if (const std::int64_t now = steady_ns(); now - last_poll >= poll_every_ns) {
        last_poll = now;
        poll();
      }
    }
    backoff idle(1000, st_.cfg.spin_us);
    while (done_workers_ < st_.size - 1) {
      if (poll()) {
        idle.reset();
      } else {
        idle.wait();
      }
    }
  }

  // Gives worker r batches until it holds its share of what is left (at
  // most `window`) or more than half of its last batch. No worker gets more
  // than its share: a call of 2 partitions at -n 2 runs one here and one on
  // rank 1 at once, instead of both on rank 1 while rank 0 waits.
  void feed(int r, int active) {
    for (;;) {
      const std::int64_t left = j_.plan.count - next_ + static_cast<std::int64_t>(retry_.size());
      if (left <= 0) return;
      const std::int64_t share = std::clamp<std::int64_t>((left + active - 1) / active, 1, window);
      if (inflight_[r] >= share && inflight_[r] > last_batch_[r] / 2) return;
      std::int64_t want = std::clamp<std::int64_t>((left + 2 * active - 1) / (2 * active), 1, max_batch);
      const std::int64_t by_cost =
          mean_cost_ < 0 ? window
                         : std::clamp<std::int64_t>(
                               static_cast<std::int64_t>(batch_work_s / std::max(mean_cost_, 1e-9)), 1, max_batch);
      want = std::min(want, by_cost);
      // Before the job's end: no more in one batch than can run by then.
      if (const double to_stop = detail::seconds_to_stop(); mean_cost_ > 0 && std::isfinite(to_stop)) {
        want = std::min<std::int64_t>(want, std::max<std::int64_t>(
                                                1, static_cast<std::int64_t>(std::min(std::max(0.0, to_stop) / mean_cost_, 1e15))));
      }
      bytes f = frame_with(j_, {kind::assign, 0, st_.op, -1, j_.plan.count});
      const std::size_t count_at = f.size();
      encode(f, std::uint32_t{0});
      std::uint32_t n = 0;
      std::int64_t p = 0;
      int attempt = 0;
      while (n < want && take(r, active, p, attempt)) {
        encode(f, p);
        encode(f, static_cast<std::uint32_t>(attempt));
        ++n;
      }
      if (n == 0) return;
      std::memcpy(f.data() + count_at, &n, sizeof n);
      send_small(st_, r, tag_ctrl, std::move(f));
      inflight_[r] += n;
      inflight_total_ += n;
      last_batch_[r] = n;
    }
  }

  // Next partition for rank r: a retry that last failed elsewhere, else a new one.
  bool eligible(int r) const { return j_.eligible.empty() || j_.eligible[static_cast<std::size_t>(r)] != 0; }

  bool take(int r, int active, std::int64_t& p, int& attempt) {
    const bool only_one =
        active == 1 || (!j_.eligible.empty() && std::count(j_.eligible.begin(), j_.eligible.end(), 1) == 1);
    for (auto it = retry_.begin(); it != retry_.end(); ++it) {
      if (it->last_rank != r || only_one) {
        p = it->partition;
        attempt = it->attempts + 1;
        retry_.erase(it);
        return true;
      }
    }
    while (next_ < j_.plan.count && is_reused(next_)) ++next_;
    if (next_ < j_.plan.count) {
      p = next_++;
      attempt = 1;
      return true;
    }
    return false;
  }

  bool is_reused(std::int64_t p) const { return !reused_.empty() && reused_[static_cast<std::size_t>(p)] != 0; }

  // Runs partition p on rank 0; returns true on success.
  bool run_here(std::int64_t p, int attempt, int active) {
    log::set_partition(p);
    const double t0 = unix_now();
    try {
      encoded_.clear();
      j_.run_local(p, j_.record ? &encoded_ : nullptr);
      log::set_partition(-1);
      learn_cost(unix_now() - t0);
      if (j_.record) {
        j_.record({p, 0, t0, unix_now(), attempt, true, -1, {}}, encoded_.data(), encoded_.size());
      }
      completed();
      return true;
    } catch (const item_failure& f) {
      log::set_partition(-1);
      failure_info fi{0, attempt, f.item, p, f.message};
      fi.start = t0;
      fi.end = j_.record ? unix_now() : 0.0;
      failed(fi, active);
      return false;
    }
  }

  void completed() {
    ++completed_;
    progress_.update(completed_);
  }

  // A signal on rank 0: stop handing out work, as after a final failure.
  // The job's end counts as one once a partition of the usual length could
  // no longer finish before it (minus the checkpoint margin; pending_signal
  // reports it from the margin on by itself).
  void check_signal(int active) {
    if (!failure_ && mean_cost_ > 0 && detail::seconds_to_stop() < mean_cost_) note_signal(deadline_signal);
    if (const int sig = pending_signal(); sig != 0 && !failure_) failed(interruption(0, sig), active);
  }

  void failed(const failure_info& fi, int active) {
    if (fi.partition != interrupted_partition && fi.attempts <= j_.retries) {
      log::warn() << j_.step << ": partition " << fi.partition << " failed on rank " << fi.rank << " (attempt "
                  << fi.attempts << " of " << j_.retries + 1 << "), item " << fi.item << ": " << fi.message
                  << "; retrying" << (active > 1 && j_.sched == schedule::dynamic ? " on another rank" : "");
      retry_.push_back({fi.partition, fi.attempts, fi.rank});
      return;
    }
    if (fi.partition != interrupted_partition && j_.record) {
      j_.record({fi.partition, fi.rank, fi.start, fi.end, fi.attempts, false, fi.item, fi.message}, nullptr, 0);
    }
    if (failure_) return;  // the first final failure is the one reported
    failure_ = fi;
    if (fi.partition == interrupted_partition) {
      log::warn() << j_.step << ": " << fi.message << " (host " << st_.hosts[fi.rank]
                  << "): no new partitions are handed out; finishing those in flight";
    } else {
      log::error() << j_.step << ": partition " << fi.partition << " failed on rank " << fi.rank << " (host "
                   << st_.hosts[fi.rank] << ") after " << fi.attempts << " attempt(s), item " << fi.item << ": "
                   << fi.message;
    }
    if (j_.sched == schedule::blocked) {
      for (int r = 1; r < st_.size; ++r) {
        send_small(st_, r, tag_ctrl, frame_with(j_, {kind::cancel, 0, st_.op, -1, j_.plan.count}));
      }
    } else {
      // Batches may hold many partitions: workers drop what they have not
      // started and answer with a DONE saying how many.
      for (int r = 1; r < st_.size; ++r) {
        if (inflight_[r] > 0) {
          send_small(st_, r, tag_ctrl, frame_with(j_, {kind::cancel, 0, st_.op, -1, j_.plan.count}));
          ++cancels_out_;
        }
      }
    }
  }

  // Handles every message waiting from the workers; true if there was one.
  bool poll() {
    bool any = false;
    frame_in in;
    while (try_recv_frame(st_.comm, MPI_ANY_SOURCE, tag_data, st_.cfg.segment_bytes, in)) {
      any = true;
      const header h = read_header(in);
      if (h.k == kind::fail && h.partition == interrupted_partition && h.op < st_.op) continue;  // late report
      if (h.op != st_.op || h.site != j_.site) protocol_error(st_, h, j_);
      const int r = in.source;
      switch (h.k) {
        case kind::result: {
          const char* d = body(in);
          std::size_t n = body_size(in);
          for (std::int64_t k = 0; k < h.partition; ++k) {
            const result_entry e = next_result(d, n, j_.plan.count, r);
            if (j_.sched == schedule::dynamic) release(r, 1);
            learn_cost(e.end - e.start);
            log::set_partition(e.partition);
            j_.accept(e.partition, e.data, e.size);
            log::set_partition(-1);
            if (j_.record) {
              j_.record({e.partition, r, e.start, e.end, static_cast<int>(e.attempt), true, -1, {}}, e.data, e.size);
            }
            completed();
          }
          break;
        }
        case kind::fail: {
          // An interruption report is not the answer to an assignment.
          if (j_.sched == schedule::dynamic && h.partition != interrupted_partition) release(r, 1);
          failure_info fi = read_failure(body(in), body_size(in));
          fi.start = h.start;
          fi.end = h.end;
          failed(fi, std::max(1, std::min(j_.active_ranks, st_.size)));
          break;
        }
        case kind::done:
          if (j_.sched == schedule::dynamic) {
            // The answer to a CANCEL: partitions the worker dropped unstarted.
            release(r, body_size(in) >= 8 ? decode<std::int64_t>(body(in), 8) : 0);
            --cancels_out_;
          } else {
            ++done_workers_;
          }
          break;
        default:
          throw error("rankflow: unexpected message kind " + std::to_string(static_cast<unsigned>(h.k)) +
                      " from rank " + std::to_string(r));
      }
    }
    if (j_.flush_record) j_.flush_record(false);
    return any;
  }

  // Mean seconds per partition (moving average), for batch sizes.
  void learn_cost(double s) {
    if (!(s >= 0)) return;
    mean_cost_ = mean_cost_ < 0 ? s : 0.8 * mean_cost_ + 0.2 * s;
  }

  void release(int r, std::int64_t n) {
    inflight_[r] -= n;
    inflight_total_ -= n;
  }

  runtime_state& st_;
  const job& j_;
  const std::vector<std::uint8_t>& reused_;  // empty, or 1 for each partition an earlier execution finished
  progress_meter progress_;
  bytes encoded_;                         // rank 0's own result, encoded for the ledger (reused)
  std::vector<std::int64_t> inflight_;    // partitions assigned to each worker and not yet answered
  std::vector<std::int64_t> last_batch_;  // size of each worker's last batch
  std::int64_t inflight_total_ = 0;
  int cancels_out_ = 0;    // CANCELs sent in a dynamic call whose DONE has not come
  double mean_cost_ = -1;  // seconds per partition (moving average); -1 until one is known
  int done_workers_ = 0;
  std::int64_t next_ = 0;
  std::int64_t completed_ = 0;
  std::deque<retry> retry_;
  std::optional<failure_info> failure_;
};

}  // namespace

void run_rank0(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused) {
  scheduler(st, j, reused).run();
}

}  // namespace rankflow::detail
