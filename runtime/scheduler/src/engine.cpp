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
#include "engine_wire.hpp"

namespace rankflow::detail {

namespace {

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
  if (sig == deadline_signal) {
    return {rank, sig, -1, interrupted_partition,
            "stopped before the job's time limit: rank " + std::to_string(rank) +
                " started no partition that could not finish by then (--deadline)"};
  }
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
      run_rank0(st, j, reused);
    }
  } else if (is_small_call(st, j)) {
    run_small_call(st, j);
  } else {
    run_worker(st, j, reused);
  }
}

}  // namespace rankflow::detail
