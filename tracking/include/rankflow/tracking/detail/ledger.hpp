// The partition ledger of a run: which partition of which collective call ran
// where, when, how often, how it ended and (for a success) its encoded result.
//
// rankflow::Runtime records every parallel_map/mapreduce/foreach partition of
// the active run here, and on --resume gets back the results an earlier,
// killed execution of the same run recorded, so it runs only the rest. The
// ledger knows nothing about scheduling: it numbers calls, batches entries
// into the run's journal and hands recorded results back. See docs/design.md
// ("Resume") and docs/format.md (/runs/<id>/_rankflow).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <rankflow/tracking/detail/store.hpp>

namespace rankflow {
class Run;
}

namespace rankflow::tracking {

class run_impl;

class partition_ledger {
 public:
  /// False once the run stopped: later calls are not recorded.
  bool open() const noexcept { return run_ != nullptr; }
  /// Every rank: this run continues an earlier execution (--resume).
  bool resuming() const noexcept { return resuming_; }
  const std::string& run_id() const noexcept { return id_; }

  /// Every rank, at the start of each collective call: its number in the run
  /// (1, 2, ...). Ranks agree because every rank makes the same calls.
  std::int64_t next_call() noexcept { return ++calls_; }

  /// Rank 0, at the end of each drive(): the call number its tasks are
  /// recorded under, -1, -2, ... (negative: collective calls, which resume
  /// matches by number, count up from 1). See docs/format.md, "Tasks".
  std::int64_t next_task_batch() noexcept { return -(++task_batches_); }

  /// Every rank: calls made so far in this execution, the current one included.
  std::int64_t calls_made() const noexcept { return calls_; }

  /// Rank 0: the successful results the resumed execution recorded for call
  /// `c` (partition -> encoded result); they leave memory. When that
  /// execution's call #c did other work (another step, range, chunk or
  /// signature): throws usage_error, or with change_policy::restart starts
  /// this call and the later ones afresh and returns nothing.
  std::map<std::int64_t, std::string> take_recorded(const call_info& c);

  /// Rank 0, resuming: the mean seconds of the partitions of call `call` that
  /// the resumed execution finished (its ledger's start and end), or -1 when
  /// it finished none. The scheduler starts from it, so that the job's end
  /// (--deadline) is judged from the first partition of a resumed call.
  double recorded_seconds_per_partition(std::int64_t call) const {
    const auto it = recorded_seconds_.find(call);
    return it == recorded_seconds_.end() || it->second.second == 0
               ? -1.0
               : it->second.first / static_cast<double>(it->second.second);
  }

  /// This rank's assignments of another value to an input of the resumed
  /// run (its params/ fields and run_options::inputs), encoded: "" when
  /// none. None of them is stored yet: refused, or (change_policy::restart,
  /// before the first call) held for restart_for_inputs. The runtime gathers
  /// them from every rank at each collective call of a resumed run.
  std::string changed_inputs() const;
  /// The gathered changes (one changed_inputs() per rank) for an error message.
  std::string describe_changes(const std::vector<std::string>& per_rank) const;
  /// True when the gathered changes can restart the run: change_policy::restart,
  /// this is the run's first call, and every change was held.
  bool can_restart_for(const std::vector<std::string>& per_rank) const;
  /// Every rank, when can_restart_for: every call runs afresh
  /// (start_afresh(1)) and the new values become the run's inputs; rank 0
  /// (`scheduler`) journals the held assignments and the restart as one record.
  void restart_for_inputs(const std::vector<std::string>& per_rank, bool scheduler);

  /// What the run does when the program differs from the resumed run.
  change_policy on_change() const noexcept { return on_change_; }
  /// Every rank: calls from `call` on run afresh: nothing recorded for them
  /// is reused, and rank 0 journals a ledger_restart that drops their old
  /// entries from the run (at its next take_recorded).
  void start_afresh(std::int64_t call);
  /// The first call run afresh, 0 when none.
  std::int64_t fresh_from() const noexcept { return fresh_from_; }

  /// Rank 0: records one partition's outcome. Entries are batched and handed
  /// to the journal when flush() finds them due (every 200 ms, 4 MiB, or forced).
  void record(const call_info& c, ledger_entry&& e);
  /// Rank 0: journals the batched entries when due (or now, with force).
  void flush(bool force);

 private:
  void journal_restart();
  friend class run_impl;
  friend class ::rankflow::Run;
  run_impl* run_ = nullptr;
  std::string id_;
  bool resuming_ = false;
  change_policy on_change_ = change_policy::refuse;
  std::int64_t fresh_from_ = 0;
  bool restart_journaled_ = false;
  std::int64_t calls_ = 0;
  std::int64_t task_batches_ = 0;
  std::map<std::int64_t, call_info> recorded_calls_;                      // rank 0, resuming
  std::map<std::int64_t, std::map<std::int64_t, std::string>> recorded_;  // rank 0, resuming
  std::map<std::int64_t, std::pair<double, std::int64_t>> recorded_seconds_;  // rank 0, resuming: (sum, n)
  ledger_batch pending_;
  std::size_t pending_bytes_ = 0;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
};

}  // namespace rankflow::tracking
