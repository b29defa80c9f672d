// What a parallel_map or mapreduce function knows about the partition it runs
// in, when it takes a `const rankflow::partition_context&` before the item.
// With map_options::need.ranks = k, each partition runs on k ranks at once
// (a team) and comm() connects them (docs/usage.md, "Partitions on several ranks").
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>

namespace rankflow {

class partition_context {
 public:
  /// The ranks running this partition together, member 0 first: a split of
  /// the job's ranks made once per call (never a spawn). MPI_COMM_SELF when
  /// each partition runs on one rank. Every member calls the function for
  /// every item of the partition, in the same order, so collectives on comm()
  /// match up item by item.
  MPI_Comm comm() const noexcept { return comm_; }
  /// This rank's place in the team (0 .. members() - 1). Member 0's return
  /// value is the item's result; the others' are discarded (never sent).
  int member() const noexcept { return member_; }
  int members() const noexcept { return members_; }
  /// The partition being run (its items are plan.begin(p) .. plan.end(p)).
  std::int64_t partition() const noexcept { return partition_; }

  /// True once another member failed this partition: it is lost, whatever
  /// this member computes.
  bool abandoned() const { return lost_ && lost_(); }
  /// Waits for `request` (an operation on comm()) like MPI_Wait, but throws
  /// rankflow::error once the partition is abandoned: a blocking call on
  /// comm() would wait forever for the member that failed.
  void wait(MPI_Request& request) const;
  /// MPI_Barrier on comm() that another member's failure ends (see wait).
  void barrier() const;

  // Set by the runtime.
  MPI_Comm comm_ = MPI_COMM_SELF;
  int member_ = 0;
  int members_ = 1;
  std::int64_t partition_ = -1;
  std::function<bool()> lost_;
};

}  // namespace rankflow
