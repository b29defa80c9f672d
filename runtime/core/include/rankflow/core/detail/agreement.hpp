// Every collective call starts by checking that every rank makes the same
// call with the same arguments: one MPI_Allreduce of a 64-bit hash of the
// call's signature (and its number). Only when the hashes differ do the ranks
// exchange the rendered signatures, so that the error can name both calls
// and which ranks made each.
//
// Without this, ranks that disagree (one calls mapreduce, the others
// parallel_map; one maps range(1000, 1100), the others range(0, 100); one
// skips a call or leaves the program) either hang in mismatched MPI calls or,
// worse, mix results and exit 0. See docs/design.md ("Mistakes rankflow
// detects").
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <typeinfo>

namespace rankflow::detail {

/// What one rank is about to do, in the fields that must agree across ranks.
/// Cheap to fill: nothing is rendered unless ranks disagree.
struct call_signature {
  const char* call = "";   ///< "parallel_map", "mapreduce", "drive", ...
  bool has_range = false;  ///< false: the call takes no item range
  bool container = false;  ///< items of a container (indices [first, last)), not a range
  std::int64_t first = 0;  ///< items [first, last)
  std::int64_t last = 0;
  std::int64_t chunk = 0;  ///< items per partition, as planned
  int sched = -1;          ///< schedule as an int; -1: not applicable
  int retries = 0;
  bool results_on_all_ranks = false;
  std::uint64_t max_workers = 0;
  const std::type_info* result = nullptr;  ///< result type (mapped type for mapreduce)
  std::string_view step;                   ///< step name
  std::string extra;                       ///< anything else that must agree, already rendered
};

/// A 64-bit hash of the signature and the call's number (not stored anywhere).
std::uint64_t signature_hash(std::uint64_t op, const call_signature& s) noexcept;

/// "mapreduce(range(0, 100)) [chunk 1, schedule dynamic, retries 0, result double, step \"mapreduce\"]"
std::string render(const call_signature& s);

/// "std::vector<int>" from a type_info (demangled where possible).
std::string demangle(const std::type_info& t);

/// Collective over `comm`: every rank passes its own call number `op` (how
/// many rankflow collective calls it made, this one included) and signature.
/// Returns when all agree. Otherwise throws usage_error on every rank with
/// one message naming each distinct call and the ranks that made it; nothing
/// of the call has run. Costs one MPI_Allreduce of two 64-bit integers.
/// A rank that waits for the others polls for `spin_us` (yielding the CPU),
/// then sleeps between polls (see config::spin_us), instead of busy-waiting
/// in MPI for as long as the slowest rank computes before its call.
void agree(MPI_Comm comm, int rank, int size, std::uint64_t op, const call_signature& s, unsigned spin_us = 200);

/// As agree(), but returns the message instead of throwing ("" when all
/// agree): for callers that must not throw (a destructor).
std::string agree_or_explain(MPI_Comm comm, int rank, int size, std::uint64_t op, const call_signature& s,
                             unsigned spin_us = 200);

}  // namespace rankflow::detail
