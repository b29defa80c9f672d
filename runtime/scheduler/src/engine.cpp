// The scheduling protocol. One collective call is one "op"; every message
// carries the op number so a rank that made a different call fails loudly.
//
// schedule::dynamic
//   rank 0 hands partitions to workers in batches (guided self-scheduling:
//   about left / (2 * ranks) at a time, one at a time near the end), refills a
//   worker when half its last batch is back, and runs partitions itself in
//   between (so -n 1 works and -n 2 uses both cores). Workers return results
//   in batches too. A failed partition goes back to a queue and is retried on
//   another rank. After a final failure rank 0 stops assigning, sends CANCEL
//   (workers drop what they have not started and say how much), waits for
//   what is in flight, then sends STOP(fail).
// schedule::blocked
//   each rank runs its own contiguous block of partitions (the data lives
//   there) and retries in place. Workers send each result, then DONE. On a
//   final failure rank 0 sends CANCEL so the others stop early.
// Both end with STOP(ok|fail) from rank 0, sent only when rank 0 has received
// every message the workers will send in this op, so nothing is left in
// flight for the next call.
#include <algorithm>
#include <csignal>
#include <rankflow/core/agreement.hpp>
#include <rankflow/core/clock.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/transport.hpp>

#include <rankflow/core/signals.hpp>
#include <rankflow/runtime/detail/engine.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>
#include <typeinfo>


#include "engine_parts.hpp"
#include "progress.hpp"

namespace rankflow::detail {

namespace {

constexpr int tag_ctrl = 100;  // rank 0 -> workers (101: continuation segments)
constexpr int tag_data = 200;  // workers -> rank 0 (201: continuation segments)
// Partitions assigned ahead per worker. Rank 0 answers only between its own
// partitions, so a worker needs enough queued work to cover that delay; with
// 2, workers ran dry and slept (bigsum stream at -n 2: 246 ms, 1.65x over
// -n 1); with 4, 201 ms (1.97x). More would only unbalance the tail.
constexpr int window = 4;
// The largest batch of partitions in one assignment. Guided batches start at
// left / (2 * ranks): bounded, so that a huge call still spreads its first
// partitions over time and a CANCEL has little to drop.
constexpr std::int64_t max_batch = 1024;
// ... and at most about this much work, by the partitions' measured cost
// (before any is known: `window` partitions). A guided batch sized by count
// alone would hand a quarter of a call to a rank that may be ten times
// slower; by time, a slow rank holds at most ~0.25 ms of the others' work
// (1 ms made the tail of parallel_map over 1M items, auto chunk, 15% slower).
constexpr double batch_work_s = 250e-6;
// A worker sends the results it holds when its queue is empty, or when the
// oldest has waited this long, or when they grow past these sizes: trivial
// partitions share one message, and a partition that takes milliseconds is
// reported as soon as it ends (rank 0 refills and records from results).
// Batches stay small in bytes: a message past MPI's eager limit is pulled in
// fragments that need both sides in MPI, and rank 0 waited in MPI_Mrecv for
// a worker busy computing (1 MiB batches: parallel_map 1M items 40% slower).
constexpr double result_batch_s = 200e-6;
constexpr std::int64_t result_batch_entries = 256;
// A poll for messages (MPI_Improbe) costs ~2 us here (MPI_THREAD_MULTIPLE,
// every transport progressed), 20 times a trivial partition: a rank with
// partitions to run polls at most this often, and at once when it has none.
constexpr std::int64_t poll_every_ns = 10'000;

constexpr std::size_t result_batch_bytes = std::size_t{16} << 10;

// assign: body = u32 n, then n x (i64 partition, u32 attempt).
// result: header.partition = n entries; body = n x (i64 partition, u32
//         attempt, f64 start, f64 end, u64 size, size bytes of result).
// done:   blocked: the worker's block is finished; dynamic: after a CANCEL,
//         body = i64 partitions it dropped unstarted.
enum class kind : std::uint32_t { assign = 1, cancel, stop, result, fail, done };

struct header {
  kind k;
  std::uint32_t attempt;
  std::uint64_t op;
  std::int64_t partition;
  std::int64_t partitions;  // lets a worker check that it runs the same call
  double start = 0;         // result, fail: when the worker began the partition (Unix seconds)
  double end = 0;           // ... and when it ended (for the run's ledger)
  // The call's signature (job::site: kind, range, chunk, result type, step,
  // and the function's type), so that a message of another call is refused
  // even where the op numbers match. Set by frame_with.
  std::uint64_t site = 0;
};



bytes frame_with(const job& j, header h) {
  h.site = j.site;
  bytes f = new_frame();
  const auto* p = reinterpret_cast<const char*>(&h);
  f.insert(f.end(), p, p + sizeof h);
  return f;
}

header read_header(const frame_in& in) {
  if (in.payload_size() < sizeof(header)) throw error("rankflow: short message from rank " + std::to_string(in.source));
  header h{};
  std::memcpy(&h, in.payload(), sizeof h);
  return h;
}

const char* body(const frame_in& in) { return in.payload() + sizeof(header); }
std::size_t body_size(const frame_in& in) { return in.payload_size() - sizeof(header); }


// Small control messages go out with a blocking send: they fit MPI's eager
// limit, so MPI_Send returns at once.
void send_small(const runtime_state& st, int dest, int tag, bytes&& f) {
  const std::uint64_t total = f.size();
  std::memcpy(f.data(), &total, sizeof total);
  if (f.size() > st.cfg.segment_bytes) {
    isend_frame(st.comm, dest, tag, std::move(f), st.cfg.segment_bytes).wait();
    return;
  }
  check_mpi(MPI_Send(f.data(), static_cast<int>(f.size()), MPI_BYTE, dest, tag, st.comm), "MPI_Send");
}

[[noreturn]] void protocol_error(const runtime_state& st, const header& h, const job& j) {
  auto hex = [](std::uint64_t v) {
    char b[20];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return std::string(b);
  };
  throw usage_error("rank " + std::to_string(st.rank) + " is in collective call #" + std::to_string(st.op) + " over " +
                    std::to_string(j.plan.count) + " partitions (signature " + hex(j.site) +
                    ") but a message for call #" + std::to_string(h.op) + " over " + std::to_string(h.partitions) +
                    " partitions (signature " + hex(h.site) + ") came from rank 0 or a worker" +
                    ": every rank must make the same rankflow calls, with the same arguments, in the same order");
}




// Which partitions an earlier execution of the run finished: rank 0 hands
// their recorded results to the job and every rank learns the set, so that
// no rank runs them again. Collective (only when j.resuming).
std::vector<std::uint8_t> recall_finished(const runtime_state& st, const job& j) {
  const auto n = static_cast<std::size_t>(j.plan.count);
  std::vector<std::uint8_t> done(n + 1, 0);  // the last byte: 1 when rank 0 failed
  std::string why;
  std::size_t reused = 0;
  if (st.rank == 0) {
    try {
      auto recorded = j.recall ? j.recall() : std::map<std::int64_t, std::string>{};
      for (auto& [p, result] : recorded) {
        if (p < 0 || static_cast<std::size_t>(p) >= n) continue;
        j.accept(p, result.data(), result.size());
        done[static_cast<std::size_t>(p)] = 1;
        ++reused;
        std::string().swap(result);  // the decoded copy is what stays
      }
    } catch (const std::exception& e) {
      done[n] = 1;
      why = e.what();
    }
  }
  check_mpi(MPI_Bcast(done.data(), static_cast<int>(done.size()), MPI_BYTE, 0, st.comm), "MPI_Bcast");
  if (done[n]) {
    bytes msg = new_frame();
    if (st.rank == 0) msg.insert(msg.end(), why.begin(), why.end());
    bcast_frame(st.comm, 0, msg, st.cfg.segment_bytes);
    throw usage_error(std::string(msg.begin() + frame_header_bytes, msg.end()));
  }
  if (st.rank == 0 && reused > 0) {
    log::info() << j.step << ": resuming: " << reused << " of " << n << " partitions reused from the run's ledger, "
                << n - reused << " to run";
  }
  done.pop_back();
  return done;
}


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
  void check_signal(int active) {
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
          constexpr std::size_t entry_head = 8 + 4 + 8 + 8 + 8;
          for (std::int64_t k = 0; k < h.partition; ++k) {
            if (n < entry_head) throw error("rankflow: malformed result batch from rank " + std::to_string(r));
            const auto p = decode<std::int64_t>(d, 8);
            const auto attempt = decode<std::uint32_t>(d + 8, 4);
            const auto t0 = decode<double>(d + 12, 8);
            const auto t1 = decode<double>(d + 20, 8);
            const auto size = decode<std::uint64_t>(d + 28, 8);
            d += entry_head;
            n -= entry_head;
            if (size > n || p < 0 || p >= j_.plan.count) {
              throw error("rankflow: malformed result batch from rank " + std::to_string(r));
            }
            if (j_.sched == schedule::dynamic) release(r, 1);
            learn_cost(t1 - t0);
            log::set_partition(p);
            j_.accept(p, d, size);
            log::set_partition(-1);
            if (j_.record) j_.record({p, r, t0, t1, static_cast<int>(attempt), true, -1, {}}, d, size);
            d += size;
            n -= size;
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

// --------------------------------------------------------------- workers ---

class worker {
 public:
  worker(runtime_state& st, const job& j, const std::vector<std::uint8_t>& reused) : st_(st), j_(j), reused_(reused) {}

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
    const std::size_t entry = results_.size();
    encode(results_, p);
    encode(results_, static_cast<std::uint32_t>(attempt_no));
    encode(results_, t0);
    encode(results_, 0.0);               // end, filled below
    encode(results_, std::uint64_t{0});  // size, filled below
    log::set_partition(p);
    try {
      j_.run_remote(p, results_);
      const double t1 = unix_now();
      const std::uint64_t size = results_.size() - entry - (8 + 4 + 8 + 8 + 8);
      std::memcpy(results_.data() + entry + 20, &t1, sizeof t1);
      std::memcpy(results_.data() + entry + 28, &size, sizeof size);
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
        results_.size() >= result_batch_bytes || unix_now() - oldest_ >= result_batch_s) {
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
  bool stopped_ = false;
  bool cancelled_ = false;
  bool signal_reported_ = false;
  bool done_sent_ = false;
  std::optional<failure_info> failure_;
};

}  // namespace

// ---------------------------------------- shared with small_call.cpp ---

void append_failure(bytes& f, const failure_info& fi) {
  encode(f, static_cast<std::int32_t>(fi.rank));
  encode(f, static_cast<std::int32_t>(fi.attempts));
  encode(f, fi.item);
  encode(f, fi.partition);
  f.insert(f.end(), fi.message.begin(), fi.message.end());
}

failure_info read_failure(const char* d, std::size_t n) {
  failure_info fi;
  constexpr std::size_t fixed = 2 * sizeof(std::int32_t) + 2 * sizeof(std::int64_t);
  if (n < fixed) throw error("rankflow: malformed failure message");
  fi.rank = decode<std::int32_t>(d, 4);
  fi.attempts = decode<std::int32_t>(d + 4, 4);
  fi.item = decode<std::int64_t>(d + 8, 8);
  fi.partition = decode<std::int64_t>(d + 16, 8);
  fi.message.assign(d + fixed, n - fixed);
  return fi;
}

// The signal number travels in `attempts` (unused for an interruption).
failure_info interruption(int rank, int sig) {
  return {rank, sig, -1, interrupted_partition,
          std::string("interrupted by ") + signal_name(sig) + " on rank " + std::to_string(rank)};
}

task_error make_task_error(const runtime_state& st, const job& j, const failure_info& fi) {
  task_error::details d;
  d.step = j.step;
  d.rank = fi.rank;
  d.host = fi.rank >= 0 && static_cast<std::size_t>(fi.rank) < st.hosts.size() ? st.hosts[fi.rank] : "?";
  d.item = fi.item;
  d.partition = fi.partition;
  d.attempts = fi.attempts;
  d.message = fi.message;
  return task_error(std::move(d));
}

[[noreturn]] void raise_failure(const runtime_state& st, const job& j, const failure_info& fi) {
  if (fi.partition == interrupted_partition) {
    const int sig = fi.attempts > 0 ? fi.attempts : SIGTERM;
    // Every rank now knows: a tracked run ended by this is recorded as killed.
    detail::note_signal(sig);
    throw interrupted(sig, j.step + ": " + fi.message + "; work in flight was finished or abandoned");
  }
  throw make_task_error(st, j, fi);
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return std::string(e.what()) + " (" + demangle(typeid(e)) + ")";  // core's demangler (agreement.hpp)
  } catch (const std::string& s) {
    return s + " (std::string)";
  } catch (const char* s) {
    return std::string(s) + " (const char*)";
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

void execute(runtime_state& st, const job& j) {
  // st.op was counted when the ranks agreed on this call (Runtime::make_job).
  log::scope in_step(j.step);
  const std::vector<std::uint8_t> reused = j.resuming ? recall_finished(st, j) : std::vector<std::uint8_t>{};
  if (st.rank == 0) {
    // Whatever happens, the outcomes recorded so far go to the run now: a
    // run that is interrupted or fails next keeps them for --resume.
    struct flush_at_end {
      const job& j;
      ~flush_at_end() {
        try {
          if (j.flush_record) j.flush_record(true);
        } catch (const std::exception& e) {
          log::error() << "recording the ledger of " << j.step << ": " << e.what();
        }
      }
    } guard{j};
    if (is_small_call(st, j)) {
      run_small_call(st, j);
    } else {
      scheduler(st, j, reused).run();
    }
  } else if (is_small_call(st, j)) {
    run_small_call(st, j);
  } else {
    worker(st, j, reused).run();
  }
}

}  // namespace rankflow::detail
