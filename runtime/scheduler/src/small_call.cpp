// Small calls: a parallel_map, mapreduce or foreach whose work is known to be
// small runs without the scheduling protocol.
//
// The protocol (engine.cpp) balances load: rank 0 hands out batches, workers
// report results, rank 0 ends the call with a STOP to each. For a call that
// does a few microseconds of work per rank (a time step over a handful of
// points, an iteration of a small solver) those messages are the whole cost:
// each one is a wake-up on the other side. Here every rank runs its own
// contiguous block of partitions (schedule::blocked's split), retrying in
// place, and the ranks exchange their outcomes in one MPI_Iallgather of
// fixed-size slots, as hand-written MPI would. Results too large for a slot
// go to rank 0 in a second step; a failure's message too long for its slot
// is broadcast by rank 0 in a third. Both are rare, and every rank knows from
// the slots whether they happen, so all ranks take the same steps.
//
// Which calls are small: a call site (job::site) whose last execution
// measured at most --small-call-us of work per rank. The first call of a site
// always takes the protocol, which measures it; every call ends with the cost
// known on every rank (rank 0 sends it in the STOP; here every rank computes
// it from the slots), so the choice is the same everywhere. A failed call
// forgets its site's cost: the next one takes the protocol again. With so
// little work per rank, a static split can idle a rank for at most that long.
#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>

#include <rankflow/core/log.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/core/detail/transport.hpp>
#include <rankflow/runtime/partition.hpp>

#include "engine_parts.hpp"

namespace rankflow::detail {

namespace {

constexpr int tag_small = 300;  // results too large for a slot (301: continuation segments)
constexpr int tag_slots = 302;  // the slots, at two ranks
constexpr std::size_t max_call_sites = 4096;  // costs remembered (job::site)

// The start of each rank's slot; its results and failure follow when they fit.
struct slot_head {
  std::uint32_t status = 0;  // 0 ok, 1 a partition failed, 2 interrupted by a signal
  std::uint32_t in_slot = 1;  // 1: results and failure are in the slot; 0: they come apart
  std::uint64_t done = 0;     // partitions that succeeded
  double busy = 0;            // their seconds, summed
  std::uint64_t result_bytes = 0;
  std::uint64_t failure_bytes = 0;
};

// The slot size, the same on every rank: the head, and room for each
// partition's entry with a small result (a few numbers).
std::size_t slot_bytes(const job& j, int ranks) {
  const std::int64_t per_rank = j.plan.count / ranks + 1;
  const std::int64_t want = static_cast<std::int64_t>(sizeof(slot_head)) +
                            std::min<std::int64_t>(per_rank, 64) * static_cast<std::int64_t>(result_entry_head + 24);
  return static_cast<std::size_t>(std::clamp<std::int64_t>(want, 256, 4096));
}

// What this rank did with its block.
struct own_outcome {
  bytes results;  // workers: result entries
  std::optional<failure_info> failure;
  std::uint64_t done = 0;
  double busy = 0;
};

own_outcome run_own_block(const runtime_state& st, const job& j) {
  own_outcome o;
  bytes encoded;  // rank 0: a result encoded for the ledger
  const auto own = blocked_partitions(j.plan.count, st.rank, st.size);
  for (std::int64_t p = own.first; p < own.last && !o.failure; ++p) {
    if (const int sig = pending_signal(); sig != 0) {
      o.failure = interruption(st.rank, sig);
      break;
    }
    for (int attempt = 1;; ++attempt) {
      const double t0 = unix_now();
      const std::size_t entry = o.results.size();
      log::set_partition(p);
      try {
        if (st.rank == 0) {
          encoded.clear();
          j.run_local(p, j.record ? &encoded : nullptr);
          const double t1 = unix_now();
          if (j.record) j.record({p, 0, t0, t1, attempt, true, -1, {}}, encoded.data(), encoded.size());
          o.busy += t1 - t0;
        } else {
          open_result(o.results, p, static_cast<std::uint32_t>(attempt), t0);
          j.run_remote(p, o.results);
          const double t1 = unix_now();
          close_result(o.results, entry, t1);
          o.busy += t1 - t0;
        }
        log::set_partition(-1);
        ++o.done;
        break;
      } catch (const item_failure& e) {
        log::set_partition(-1);
        o.results.resize(entry);
        if (attempt <= j.retries) {
          log::warn() << j.step << ": partition " << p << " failed on rank " << st.rank << " (attempt " << attempt
                      << " of " << j.retries + 1 << "), item " << e.item << ": " << e.message << "; retrying here";
          continue;
        }
        failure_info fi{st.rank, attempt, e.item, p, e.message};
        fi.start = t0;
        fi.end = unix_now();
        o.failure = std::move(fi);
        break;
      }
    }
  }
  return o;
}

bytes encode_failure(const failure_info& fi) {
  bytes b(16);  // f64 start, f64 end, then append_failure's form
  std::memcpy(b.data(), &fi.start, 8);
  std::memcpy(b.data() + 8, &fi.end, 8);
  append_failure(b, fi);
  return b;
}

failure_info decode_failure(const char* d, std::size_t n) {
  if (n < 16) throw error("rankflow: malformed failure in a small call");
  failure_info fi = read_failure(d + 16, n - 16);
  std::memcpy(&fi.start, d, 8);
  std::memcpy(&fi.end, d + 8, 8);
  return fi;
}

// Rank 0: hands a worker's result entries to the job (and the ledger).
void accept_results(const job& j, int rank, const char* d, std::size_t n) {
  while (n > 0) {
    const result_entry e = next_result(d, n, j.plan.count, rank);
    j.accept(e.partition, e.data, e.size);
    if (j.record) {
      j.record({e.partition, rank, e.start, e.end, static_cast<int>(e.attempt), true, -1, {}}, e.data, e.size);
    }
  }
}

}  // namespace

bool is_small_call(const runtime_state& st, const job& j) {
  if (st.size < 2 || st.cfg.small_call_us == 0 || j.site == 0 || j.resuming || !j.eligible.empty() ||
      j.active_ranks < st.size || j.plan.count <= 0) {
    return false;
  }
  const auto it = st.call_cost.find(j.site);
  if (it == st.call_cost.end()) return false;
  const std::int64_t per_rank = j.plan.count / st.size + (j.plan.count % st.size != 0);
  return it->second * static_cast<double>(per_rank) <= st.cfg.small_call_us * 1e-6;
}

void learn_call_cost(runtime_state& st, const job& j, double seconds_per_partition) {
  if (j.site == 0) return;
  if (seconds_per_partition >= 0) {
    // Bounded: a program with ever new call sites forgets them all at once.
    // Every rank inserts and erases the same sites in the same order, so
    // every rank forgets at the same call.
    if (st.call_cost.size() >= max_call_sites && !st.call_cost.count(j.site)) st.call_cost.clear();
    st.call_cost[j.site] = seconds_per_partition;
  } else {
    st.call_cost.erase(j.site);
  }
}

namespace {

// Every rank's slot after step 1: its head, and its results and failure when
// they fit.
struct slot_table {
  std::size_t slot = 0;
  std::vector<char> all;
  std::vector<slot_head> heads;
  int reported = -1;  // the failure every rank throws: the lowest rank's
  const char* in_slot(int r) const { return all.data() + slot * static_cast<std::size_t>(r) + sizeof(slot_head); }
};

// Step 1: every rank's head (and, mostly, everything) to every rank.
slot_table exchange_slots(runtime_state& st, const job& j, const own_outcome& mine, const bytes& failure) {
  slot_table t;
  t.slot = slot_bytes(j, st.size);
  const std::size_t slot = t.slot;
  slot_head head;
  head.status = !mine.failure ? 0 : mine.failure->partition == interrupted_partition ? 2 : 1;
  head.done = mine.done;
  head.busy = mine.busy;
  head.result_bytes = mine.results.size();
  head.failure_bytes = failure.size();
  head.in_slot = sizeof head + mine.results.size() + failure.size() <= slot ? 1 : 0;
  std::vector<char> out(slot, 0);
  t.all.resize(slot * static_cast<std::size_t>(st.size));
  auto& all = t.all;
  std::memcpy(out.data(), &head, sizeof head);
  if (head.in_slot) {
    if (!mine.results.empty()) std::memcpy(out.data() + sizeof head, mine.results.data(), mine.results.size());
    if (!failure.empty()) std::memcpy(out.data() + sizeof head + mine.results.size(), failure.data(), failure.size());
  }
  if (st.size == 2) {
    // Two ranks: one eager message each way costs less than libnbc's
    // MPI_Iallgather schedule (as the agreement does; agreement.cpp).
    const int peer = 1 - st.rank;
    std::memcpy(all.data() + slot * static_cast<std::size_t>(st.rank), out.data(), slot);
    MPI_Request reqs[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    check_mpi(MPI_Irecv(all.data() + slot * static_cast<std::size_t>(peer), static_cast<int>(slot), MPI_BYTE, peer,
                        tag_slots, st.comm, &reqs[0]),
              "MPI_Irecv");
    check_mpi(MPI_Isend(out.data(), static_cast<int>(slot), MPI_BYTE, peer, tag_slots, st.comm, &reqs[1]), "MPI_Isend");
    wait_polled(2, reqs, st.cfg.spin_us);
  } else {
    MPI_Request req = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallgather(out.data(), static_cast<int>(slot), MPI_BYTE, all.data(), static_cast<int>(slot),
                             MPI_BYTE, st.comm, &req),
              "MPI_Iallgather");
    wait_polled(1, &req, st.cfg.spin_us);
  }
  t.heads.resize(static_cast<std::size_t>(st.size));
  for (int r = 0; r < st.size; ++r) {
    std::memcpy(&t.heads[r], all.data() + slot * static_cast<std::size_t>(r), sizeof(slot_head));
    if (t.heads[r].status != 0 && t.reported < 0) t.reported = r;
  }
  return t;
}

// Step 2: results (and failures) that did not fit go to rank 0 as frames;
// rank 0 hands every rank's results to the job. Returns, on rank 0, what each
// rank sent apart (step 3 may need a failure from it).
std::vector<bytes> collect_results(runtime_state& st, const job& j, const slot_table& t, const own_outcome& mine,
                                   const bytes& failure) {
  const auto& heads = t.heads;
  const bool mine_in_slot = heads[st.rank].in_slot != 0;
  std::vector<bytes> apart(static_cast<std::size_t>(st.size));
  if (!mine_in_slot) {  // rank 0's own failure may be one of them
    apart[st.rank] = mine.results;
    apart[st.rank].insert(apart[st.rank].end(), failure.begin(), failure.end());
  }
  if (st.rank != 0 && !mine_in_slot) {
    bytes f = new_frame();
    f.insert(f.end(), apart[st.rank].begin(), apart[st.rank].end());
    isend_frame(st.comm, 0, tag_small, std::move(f), st.cfg.segment_bytes).wait();
  }
  if (st.rank != 0) return apart;
  for (int r = 1; r < st.size; ++r) {
    if (heads[r].in_slot) continue;
    frame_in in;
    backoff idle(1000, st.cfg.spin_us);
    while (!try_recv_frame(st.comm, r, tag_small, st.cfg.segment_bytes, in)) idle.wait();
    if (in.payload_size() != heads[r].result_bytes + heads[r].failure_bytes)
      throw error("rankflow: rank " + std::to_string(r) + " sent results of another size than it announced");
    apart[r].assign(in.payload(), in.payload() + in.payload_size());
  }
  // Results in partition order per rank; a failed rank's successes before
  // its failure count too (the ledger keeps them for --resume).
  for (int r = 0; r < st.size; ++r) {
    const char* d = heads[r].in_slot ? t.in_slot(r) : apart[r].data();
    if (r > 0) accept_results(j, r, d, heads[r].result_bytes);
    if (heads[r].status == 1 && j.record) {
      const failure_info fi = decode_failure(d + heads[r].result_bytes, heads[r].failure_bytes);
      j.record({fi.partition, fi.rank, fi.start, fi.end, fi.attempts, false, fi.item, fi.message}, nullptr, 0);
    }
  }
  return apart;
}

// Step 3: the failure every rank throws, from its slot or from rank 0.
[[noreturn]] void throw_reported(runtime_state& st, const job& j, const slot_table& t,
                                 const std::vector<bytes>& apart) {
  const int reported = t.reported;
  const auto& h = t.heads[reported];
  bytes fb;
  if (h.in_slot) {
    const char* d = t.in_slot(reported) + h.result_bytes;
    fb.assign(d, d + h.failure_bytes);
  } else {
    fb = new_frame();
    if (st.rank == 0) {
      const char* d = apart[reported].data() + h.result_bytes;
      fb.insert(fb.end(), d, d + h.failure_bytes);
    }
    bcast_frame(st.comm, 0, fb, st.cfg.segment_bytes);
    fb.erase(fb.begin(), fb.begin() + frame_header_bytes);
  }
  const failure_info fi = decode_failure(fb.data(), fb.size());
  if (st.rank == 0 && fi.partition != interrupted_partition) {
    log::error() << j.step << ": partition " << fi.partition << " failed on rank " << fi.rank << " (host "
                 << st.hosts[fi.rank] << ") after " << fi.attempts << " attempt(s), item " << fi.item << ": "
                 << fi.message;
  }
  raise_failure(st, j, fi);
}

}  // namespace

void run_small_call(runtime_state& st, const job& j) {
  ++st.small_calls;
  own_outcome mine = run_own_block(st, j);
  // A signal during this rank's last partition stops the call too, as the
  // protocol's polls would have.
  if (const int sig = pending_signal(); sig != 0 && !mine.failure) mine.failure = interruption(st.rank, sig);
  const bytes failure = mine.failure ? encode_failure(*mine.failure) : bytes{};
  const slot_table t = exchange_slots(st, j, mine, failure);
  const std::vector<bytes> apart = collect_results(st, j, t, mine, failure);
  // What it cost, the same on every rank (the same numbers summed in the same order).
  std::uint64_t done = 0;
  double busy = 0;
  for (const auto& h : t.heads) {
    done += h.done;
    busy += h.busy;
  }
  if (t.reported < 0) {
    learn_call_cost(st, j, done > 0 ? busy / static_cast<double>(done) : -1.0);
    return;
  }
  learn_call_cost(st, j, -1.0);
  throw_reported(st, j, t, apart);
}

}  // namespace rankflow::detail
