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

#include <rankflow/tracking/store.hpp>

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

  /// Rank 0: the successful results the resumed execution recorded for call
  /// `c` (partition -> encoded result); they leave memory. Throws usage_error
  /// when that execution's call #c did other work (another step, range or chunk).
  std::map<std::int64_t, std::string> take_recorded(const call_info& c);

  /// This rank's assignments of another value to an input of the resumed
  /// run (its params/ fields and run_options::inputs), which the run
  /// refused: "" when none. The runtime gathers them at each collective
  /// call of a resumed run and refuses the call on every rank.
  std::string changed_inputs() const;

  /// Rank 0: records one partition's outcome. Entries are batched and handed
  /// to the journal when flush() finds them due (every 200 ms, 4 MiB, or forced).
  void record(const call_info& c, ledger_entry&& e);
  /// Rank 0: journals the batched entries when due (or now, with force).
  void flush(bool force);

 private:
  friend class run_impl;
  friend class ::rankflow::Run;
  run_impl* run_ = nullptr;
  std::string id_;
  bool resuming_ = false;
  std::int64_t calls_ = 0;
  std::map<std::int64_t, call_info> recorded_calls_;                      // rank 0, resuming
  std::map<std::int64_t, std::map<std::int64_t, std::string>> recorded_;  // rank 0, resuming
  ledger_batch pending_;
  std::size_t pending_bytes_ = 0;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
};

}  // namespace rankflow::tracking
