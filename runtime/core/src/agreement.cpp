#include <rankflow/core/detail/agreement.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/core/detail/transport.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <type_traits>
#include <vector>

namespace rankflow::detail {

namespace {

// A 64-bit hash of the call, 8 bytes per step: every call hashes its
// signature twice (the agreement and the call site), and a byte-wise FNV-1a
// over a step name and a mangled type name took ~0.2 us of a ~2 us call.
// Equal inputs give equal hashes in every process of one binary; nothing
// stores the value.
struct word_hash {
  std::uint64_t h = 14695981039346656037ull;
  void mix(std::uint64_t w) noexcept {
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  void bytes(const void* p, std::size_t n) noexcept {
    const auto* c = static_cast<const unsigned char*>(p);
    for (; n >= 8; n -= 8, c += 8) {
      std::uint64_t w;
      std::memcpy(&w, c, 8);
      mix(w);
    }
    if (n > 0) {
      std::uint64_t w = 0;
      std::memcpy(&w, c, n);
      mix(w ^ (static_cast<std::uint64_t>(n) << 56));
    }
  }
  template <class T>
  void value(const T& v) noexcept {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8);
    std::uint64_t w = 0;
    std::memcpy(&w, &v, sizeof v);
    mix(w);
  }
  // Length first, so that ("ab", "c") and ("a", "bc") differ.
  void text(std::string_view s) noexcept {
    value(s.size());
    bytes(s.data(), s.size());
  }
};

// Each rank's rendered call travels in a fixed-size slot: enough for any
// signature rankflow renders; a longer step name is cut (the hash already
// told us the ranks disagree).
constexpr std::size_t slot = 640;

std::string rank_list(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size();) {
    std::size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i) out += ", ";
    out += std::to_string(ranks[i]);
    if (j > i) out += "-" + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

std::string explain(MPI_Comm comm, int size, std::uint64_t op, const call_signature& s) {
  std::string mine = "call #" + std::to_string(op) + " " + render(s);
  if (mine.size() >= slot) mine.resize(slot - 1);
  std::vector<char> me(slot, '\0'), all(slot * static_cast<std::size_t>(size), '\0');
  std::memcpy(me.data(), mine.data(), mine.size());
  check_mpi(
      MPI_Allgather(me.data(), static_cast<int>(slot), MPI_CHAR, all.data(), static_cast<int>(slot), MPI_CHAR, comm),
      "MPI_Allgather");
  // Group ranks by what they call, in order of the lowest rank of each group.
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  std::map<std::string, std::size_t> index;
  for (int r = 0; r < size; ++r) {
    std::string c(all.data() + static_cast<std::size_t>(r) * slot);
    auto [it, fresh] = index.emplace(c, groups.size());
    if (fresh) groups.push_back({c, {}});
    groups[it->second].second.push_back(r);
  }
  std::string msg = "ranks disagree on a collective call: ";
  constexpr std::size_t shown = 4;
  for (std::size_t g = 0; g < groups.size() && g < shown; ++g) {
    if (g) msg += "; ";
    msg += rank_list(groups[g].second) + (groups[g].second.size() == 1 ? " is at " : " are at ") + groups[g].first;
  }
  if (groups.size() > shown) msg += "; and " + std::to_string(groups.size() - shown) + " other calls";
  msg +=
      ". Every rank must make the same rankflow calls (parallel_map, mapreduce, foreach, drive, start_run), with "
      "the same arguments, in the same order; nothing of this call ran on any rank";
  return msg;
}

}  // namespace

std::uint64_t signature_hash(std::uint64_t op, const call_signature& s) noexcept {
  word_hash f;
  f.value(op);
  f.text(s.call);
  f.value(s.has_range);
  f.value(s.container);
  f.value(s.first);
  f.value(s.last);
  f.value(s.chunk);
  f.value(s.sched);
  f.value(s.retries);
  f.value(s.results_on_all_ranks);
  f.value(s.max_workers);
  // type_info::name() is the mangled name: equal for equal types in every
  // process of the same program, and cheap (no demangling unless we report).
  f.text(s.result ? std::string_view(s.result->name()) : std::string_view());
  f.text(s.step);
  f.text(s.extra);
  return f.h;
}

std::string demangle(const std::type_info& t) {
  int status = 0;
  char* name = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : t.name();
  std::free(name);
  return out;
}

std::string render(const call_signature& s) {
  std::string out = s.call;
  if (s.has_range) {
    out += s.container ? "(items [" + std::to_string(s.first) + ", " + std::to_string(s.last) + "))"
                       : "(range(" + std::to_string(s.first) + ", " + std::to_string(s.last) + "))";
  }
  std::string opts;
  auto add = [&opts](const std::string& part) { opts += (opts.empty() ? "" : ", ") + part; };
  if (s.has_range) add("chunk " + std::to_string(s.chunk));
  if (s.sched >= 0) add(std::string("schedule ") + (s.sched == 0 ? "dynamic" : "blocked"));
  if (s.has_range && s.sched >= 0) add("retries " + std::to_string(s.retries));
  if (s.results_on_all_ranks) add("results_on_all_ranks");
  if (s.max_workers) add("max_workers " + std::to_string(s.max_workers));
  if (s.result) add("result " + demangle(*s.result));
  if (!s.step.empty()) add("step \"" + std::string(s.step) + "\"");
  if (!s.extra.empty()) add(s.extra);
  if (!opts.empty()) out += " [" + opts + "]";
  return out;
}

std::string agree_or_explain(MPI_Comm comm, int rank, int size, std::uint64_t op, const call_signature& s,
                             unsigned spin_us) {
  if (size <= 1) return {};
  const std::uint64_t h = signature_hash(op, s);
  // min(h) and min(~h) = ~max(h) in one reduction: equal everywhere iff
  // min == max.
  std::uint64_t in[2] = {h, ~h}, out[2] = {0, 0};
  // Non-blocking, polled with the engine's backoff: a blocking MPI_Allreduce
  // busy-waits for as long as the last rank takes to arrive (rank 0 writing
  // output between two calls, say), holding a core the whole time.
  if (size == 2) {
    // Two ranks: one eager message each way costs a third of what libnbc's
    // MPI_Iallreduce schedule does on shared memory (~0.2 vs ~0.7 us), and
    // every call pays it. Every call starts here, so the messages of two
    // ranks in different calls still meet (and disagree).
    constexpr int tag_agree = 400;
    const int peer = 1 - rank;
    MPI_Request reqs[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    std::uint64_t theirs = 0;
    check_mpi(MPI_Irecv(&theirs, 1, MPI_UINT64_T, peer, tag_agree, comm, &reqs[0]), "MPI_Irecv");
    check_mpi(MPI_Isend(&h, 1, MPI_UINT64_T, peer, tag_agree, comm, &reqs[1]), "MPI_Isend");
    wait_polled(2, reqs, spin_us);
    if (theirs == h) return {};
    return explain(comm, size, op, s);
  }
  MPI_Request req = MPI_REQUEST_NULL;
  check_mpi(MPI_Iallreduce(in, out, 2, MPI_UINT64_T, MPI_MIN, comm, &req), "MPI_Iallreduce");
  wait_polled(1, &req, spin_us);
  if (out[0] == ~out[1]) return {};
  return explain(comm, size, op, s);
}

void agree(MPI_Comm comm, int rank, int size, std::uint64_t op, const call_signature& s, unsigned spin_us) {
  if (std::string why = agree_or_explain(comm, rank, size, op, s, spin_us); !why.empty()) throw usage_error(why);
}

}  // namespace rankflow::detail
