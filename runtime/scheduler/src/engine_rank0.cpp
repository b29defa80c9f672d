// Rank 0's side of the scheduling protocol (engine.cpp describes it).
#include <array>
#include <cmath>
#include <tuple>
#include <utility>
#include <unordered_map>

#include "engine_backups.hpp"
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
        last_batch_(st.size, 0),
        cancels_to_(st.size, 0),
        backups_on_(j.backups && j.sched == schedule::dynamic && st.size > 1) {
    for (auto r : reused_) completed_ += r;
    if (completed_) progress_.update(completed_);
    // A resumed call starts from what its partitions took before the kill:
    // the job's end is judged from the first partition on, and batches are
    // sized by it (the moving average takes over as results come).
    if (j.recorded_cost > 0) mean_cost_ = j.recorded_cost;
    if (backups_on_) {
      const auto n = static_cast<std::size_t>(j.plan.count);
      finished_.assign(n, 0);
      for (std::size_t p = 0; p < reused_.size(); ++p) finished_[p] = reused_[p];
      copies_.assign(n, 0);
      backed_up_.assign(n, 0);
      held_.resize(static_cast<std::size_t>(st.size));
      head_since_.assign(static_cast<std::size_t>(st.size), 0);
      lost_.assign(static_cast<std::size_t>(st.size), 0);
      if (st_.lost_copies.size() != static_cast<std::size_t>(st.size)) st_.lost_copies.assign(st.size, 0);
    }
  }

  void run() {
    if (j_.sched == schedule::dynamic) {
      run_dynamic();
    } else {
      run_blocked();
    }
    // The STOP's `start` carries what the call's partitions cost, so that
    // every rank learns the same value (is_small_call decides with it).
    if (backups_ > 0) report_backups(st_, j_.step, backups_, lost_);
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
        now_ns_ = now;
        const std::uint64_t messages = st_.rank0_messages;
        busy = poll();
        check_signal(active);
        if (!failure_) {
          for (int r = 1; r < active; ++r) {
            if (eligible(r)) feed(r, active);
          }
          if (backups_on_) maybe_backup(active);
        }
        if (st_.rank0_messages != messages) st_.rank0_busy_ns += steady_ns() - now;
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
    if (cancels_to_[r] > 0) return;  // its DONE must name exactly what it dropped
    for (;;) {
      const std::int64_t left = j_.plan.count - next_ + static_cast<std::int64_t>(retry_.size());
      if (left <= 0) return;
      const std::int64_t share = std::clamp<std::int64_t>((left + active - 1) / active, 1, window);
      if (inflight_[r] >= share && inflight_[r] > last_batch_[r] / 2) return;
      std::int64_t want = std::clamp<std::int64_t>((left + 2 * active - 1) / (2 * active), 1, max_batch);
      const std::int64_t by_cost =
          mean_cost_ < 0 ? window
                         : std::clamp<std::int64_t>(
                               static_cast<std::int64_t>(batch_work_for(active) / std::max(mean_cost_, 1e-9)), 1,
                               max_batch);
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
        if (backups_on_) hold(r, p, attempt);
        ++n;
      }
      if (n == 0) return;
      std::memcpy(f.data() + count_at, &n, sizeof n);
      send_small(st_, r, tag_ctrl, std::move(f));
      ++st_.rank0_messages;
      inflight_[r] += n;
      inflight_total_ += n;
      last_batch_[r] = n;
    }
  }

  // ---- backup copies ------------------------------------------------------
  //
  // A rank on a throttled or shared node holds the tail of every dynamic
  // call: the others finish and wait for its last partitions. Once nothing
  // is left to hand out, a partition that has been running on its rank for
  // more than twice the call's typical partition time (the median of recent
  // ones, so the slow rank does not set it) is given to an idle rank as
  // well, and so is every partition queued behind it on that rank, which is
  // then told to drop what it has not started (CANCEL; it answers DONE with
  // how many). The first copy to finish is accepted; a later one is
  // discarded and recorded in the ledger as lost. The call still ends only
  // once every copy in flight has answered (a late result must not reach
  // the next call), so it ends after at most the slow rank's current
  // partition instead of its whole queue. Rank 0's own partition cannot be
  // backed up while it runs it: rank 0 does not poll meanwhile.

  static constexpr double backup_factor = 2.0;       // Cubed's "more than twice the usual time"
  // Below this a partition is late by noise (a rank descheduled for a
  // time slice on a shared or oversubscribed node), not by a slow node.
  static constexpr double backup_min_s = 10e-3;
  static constexpr std::int64_t backup_every_ns = 200'000;

  void hold(int r, std::int64_t p, int attempt) {
    auto& h = held_[static_cast<std::size_t>(r)];
    if (h.empty()) head_since_[static_cast<std::size_t>(r)] = now_ns_;
    h.emplace_back(p, attempt);
    ++copies_[static_cast<std::size_t>(p)];
  }

  // Worker r answered partition p (a result or a failure): the next one it
  // holds starts now.
  void answered(int r, std::int64_t p) {
    auto& h = held_[static_cast<std::size_t>(r)];
    for (auto it = h.begin(); it != h.end(); ++it) {
      if (it->first == p) {
        h.erase(it);
        --copies_[static_cast<std::size_t>(p)];
        break;
      }
    }
    head_since_[static_cast<std::size_t>(r)] = now_ns_;  // when this poll began: one clock read for all
  }

  // Worker r dropped the last `n` partitions it held (its answer to a
  // CANCEL). Any without another copy goes back to be handed out again.
  void dropped(int r, std::int64_t n) {
    auto& h = held_[static_cast<std::size_t>(r)];
    for (; n > 0 && !h.empty(); --n) {
      const auto [p, attempt] = h.back();
      h.pop_back();
      const auto i = static_cast<std::size_t>(p);
      --copies_[i];
      if (!finished_[i] && copies_[i] == 0 && !failure_) retry_.push_front({p, attempt - 1, r});
    }
  }

  bool all_handed_out() {
    while (next_ < j_.plan.count && is_reused(next_)) ++next_;
    return next_ >= j_.plan.count && retry_.empty();
  }

  // An idle rank other than `slow` for a backup copy: a worker holding
  // nothing first (rank 0 stops polling while it runs one), else rank 0.
  int idle_rank(int slow, int active) const {
    for (int b = 1; b < active; ++b) {
      if (b != slow && eligible(b) && inflight_[b] == 0 && cancels_to_[b] == 0) return b;
    }
    return eligible(0) && backup_here_.empty() ? 0 : -1;
  }

  void maybe_backup(int active) {
    if (recent_.empty() || !all_handed_out()) return;
    const std::int64_t now = steady_ns();
    if (now - last_backup_check_ < backup_every_ns) return;
    last_backup_check_ = now;
    const double limit_s = std::max(backup_factor * recent_.median(), backup_min_s);
    for (int s = 1; s < active; ++s) {
      const auto& h = held_[static_cast<std::size_t>(s)];
      if (h.empty()) continue;
      if (static_cast<double>(now - head_since_[static_cast<std::size_t>(s)]) * 1e-9 < limit_s) continue;
      bool any = false;
      for (const auto& [p, attempt] : h) {
        const auto i = static_cast<std::size_t>(p);
        if (finished_[i] || backed_up_[i]) continue;
        const int b = idle_rank(s, active);
        if (b < 0) break;
        backed_up_[i] = 1;
        ++backups_;
        ++copies_[i];
        any = true;
        log::debug() << j_.step << ": partition " << p << " has run on rank " << s << " for "
                     << static_cast<double>(now - head_since_[static_cast<std::size_t>(s)]) * 1e-6 << " ms (typical "
                     << recent_.median() * 1e3 << " ms): a backup copy goes to rank " << b;
        if (b == 0) {
          backup_here_.emplace_back(p, attempt);
          continue;
        }
        bytes f = frame_with(j_, {kind::assign, 0, st_.op, -1, j_.plan.count});
        encode(f, std::uint32_t{1});
        encode(f, p);
        encode(f, static_cast<std::uint32_t>(attempt));
        send_small(st_, b, tag_ctrl, std::move(f));
        auto& hb = held_[static_cast<std::size_t>(b)];
        if (hb.empty()) head_since_[static_cast<std::size_t>(b)] = now;
        hb.emplace_back(p, attempt);
        ++inflight_[b];
        ++inflight_total_;
      }
      // What the slow rank has not started, it need not run at all now.
      // (Partitions it still holds get copies in later rounds as ranks
      // free up; until its DONE, it is fed nothing.)
      if (any && h.size() > 1 && cancels_to_[s] == 0) cancel(s);
    }
  }

  void cancel(int r) {
    send_small(st_, r, tag_ctrl, frame_with(j_, {kind::cancel, 0, st_.op, -1, j_.plan.count}));
    ++cancels_out_;
    ++cancels_to_[r];
  }

  // Rank r's copy of p finished after another copy had: discarded, and
  // recorded as lost. Returns true when p was already finished.
  bool lost_copy(int r, std::int64_t p, int attempt, double start, double end, const std::string& how) {
    const auto i = static_cast<std::size_t>(p);
    if (!backups_on_ || !finished_[i]) return false;
    ++lost_[static_cast<std::size_t>(r)];
    const int w = winner_.count(p) ? winner_.at(p) : -1;
    if (j_.record) {
      partition_outcome o{p, r, start, end, attempt, false, -1, {}};
      o.lost = true;
      o.message = how + "; the copy on rank " + std::to_string(w) + " finished first and was kept";
      j_.record(o, nullptr, 0);
    }
    return true;
  }

  // p's first result, from rank r: accepted by the caller.
  void won(int r, std::int64_t p) {
    const auto i = static_cast<std::size_t>(p);
    finished_[i] = 1;
    if (backed_up_[i]) winner_[p] = r;
  }

  // Next partition for rank r: a retry that last failed elsewhere, else a new one.
  bool eligible(int r) const { return j_.eligible.empty() || j_.eligible[static_cast<std::size_t>(r)] != 0; }

  bool take(int r, int active, std::int64_t& p, int& attempt) {
    while (r == 0 && !backup_here_.empty()) {
      std::tie(p, attempt) = backup_here_.front();
      backup_here_.pop_front();
      if (!finished_[static_cast<std::size_t>(p)]) {
        running_copy_ = true;
        return true;
      }
      --copies_[static_cast<std::size_t>(p)];  // the original won meanwhile
    }
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
    // A backup copy rank 0 runs itself was counted when it was made.
    const bool copy = std::exchange(running_copy_, false);
    if (backups_on_ && !copy) ++copies_[static_cast<std::size_t>(p)];
    try {
      encoded_.clear();
      j_.run_local(p, j_.record ? &encoded_ : nullptr);
      log::set_partition(-1);
      learn_cost(unix_now() - t0);
      if (backups_on_) {
        --copies_[static_cast<std::size_t>(p)];
        won(0, p);
      }
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
      if (backups_on_) {
        --copies_[static_cast<std::size_t>(p)];
        if (copy_failed(fi)) return false;
      }
      failed(fi, active);
      return false;
    }
  }

  // A copy of fi.partition failed while another copy finished (recorded as
  // lost) or still runs (logged: the other decides, and the ledger, which
  // holds final outcomes, gets that one). Not retried. True when handled.
  bool copy_failed(const failure_info& fi) {
    const std::string what = "failed (item " + std::to_string(fi.item) + ": " + fi.message + ")";
    if (lost_copy(fi.rank, fi.partition, fi.attempts, fi.start, fi.end, what)) return true;
    if (copies_[static_cast<std::size_t>(fi.partition)] == 0) return false;
    log::warn() << j_.step << ": a copy of partition " << fi.partition << " failed on rank " << fi.rank << ", item "
                << fi.item << ": " << fi.message << "; another copy is still running";
    return true;
  }

  void completed() {
    ++completed_;
    if (j_.sched == schedule::dynamic) ++st_.rank0_partitions;
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
        if (inflight_[r] > 0) cancel(r);
      }
    }
  }

  // Handles every message waiting from the workers; true if there was one.
  bool poll() {
    bool any = false;
    frame_in in;
    while (try_recv_frame(st_.comm, MPI_ANY_SOURCE, tag_data, st_.cfg.segment_bytes, in)) {
      any = true;
      if (j_.sched == schedule::dynamic) ++st_.rank0_messages;
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
            if (backups_on_) {
              answered(r, e.partition);
              if (lost_copy(r, e.partition, static_cast<int>(e.attempt), e.start, e.end, "finished")) continue;
              won(r, e.partition);
            }
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
          if (backups_on_ && fi.partition != interrupted_partition) {
            answered(r, fi.partition);
            if (copy_failed(fi)) break;
          }
          failed(fi, std::max(1, std::min(j_.active_ranks, st_.size)));
          break;
        }
        case kind::done:
          if (j_.sched == schedule::dynamic) {
            // The answer to a CANCEL: partitions the worker dropped unstarted.
            const std::int64_t n = body_size(in) >= 8 ? decode<std::int64_t>(body(in), 8) : 0;
            release(r, n);
            if (backups_on_) dropped(r, n);
            --cancels_out_;
            --cancels_to_[r];
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
    if (backups_on_) recent_.add(s);
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
  std::vector<int> cancels_to_;  // per worker: CANCELs whose DONE has not come

  // Backup copies (dynamic calls with job::backups; all empty otherwise).
  bool backups_on_;
  std::vector<std::uint8_t> finished_;   // per partition: a result was accepted
  std::vector<std::uint8_t> copies_;     // per partition: copies in flight
  std::vector<std::uint8_t> backed_up_;  // per partition: a backup copy was made
  std::vector<std::deque<std::pair<std::int64_t, int>>> held_;  // per worker: (partition, attempt) unanswered, in order
  std::vector<std::int64_t> head_since_;  // per worker: steady ns since its first held partition runs
  std::deque<std::pair<std::int64_t, int>> backup_here_;  // copies rank 0 runs itself
  std::unordered_map<std::int64_t, int> winner_;           // backed-up partition -> rank whose copy was kept
  recent_costs recent_;  // the latest partitions' seconds (the typical one is their median)
  bool running_copy_ = false;  // take() handed rank 0 one of backup_here_
  std::int64_t last_backup_check_ = 0;
  std::int64_t now_ns_ = 0;  // steady ns at the start of the current poll round
  std::int64_t backups_ = 0;
  std::vector<std::int64_t> lost_;  // per rank: copies that finished second in this call
};

}  // namespace

void run_rank0(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused) {
  scheduler(st, j, reused).run();
}

}  // namespace rankflow::detail
