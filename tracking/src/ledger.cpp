// The partition ledger (rankflow/tracking/detail/ledger.hpp): what resume hands back,
// what it refuses or restarts, and how entries reach the journal.
#include <rankflow/tracking/detail/ledger.hpp>

#include "run_impl.hpp"

namespace rankflow::tracking {

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
  recorded_seconds_.erase(recorded_seconds_.lower_bound(call), recorded_seconds_.end());
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
