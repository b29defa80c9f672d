// Partitions on several ranks at once (map_options::need.ranks = k). The
// scheduling protocol stays as it is: each team's first rank (its leader) is
// the only one rank 0 schedules, and it forwards each partition to the rest
// of its team (followers), which run it beside it and report how it went
// before the leader's result is sent. Followers are idle workers to the
// protocol: they pick up their leader's partitions while waiting for STOP,
// so failures, signals and the end of the call reach them as before.
//
// Once any member fails, the partition is lost: the leader tells the members
// that have not reported (`lost`), each member skips its remaining items, and
// partition_context::wait()/barrier() throw, so members waiting for the failed
// one through them return. The acknowledgement that ends a partition says
// whether a `lost` was sent, so none is ever left unreceived.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <rankflow/runtime/detail/engine.hpp>
#include <rankflow/runtime/partition_context.hpp>
#include <rankflow/runtime/resources.hpp>

namespace rankflow::detail {

class team_call {
 public:
  /// Collective over st.comm. Splits the ranks that meet the need (`fits`,
  /// one byte per rank) into teams of need.ranks in rank order, rank 0's team
  /// first; at most `max_teams` teams work (0: no limit), the ranks left over
  /// sit the call out. Throws resource_error on every rank when fewer than
  /// need.ranks ranks meet the need. Returns the job's eligible ranks (the
  /// working leaders) through `leaders`.
  team_call(const runtime_state& st, const std::vector<std::uint8_t>& fits, const resources& need,
            std::size_t max_teams, const std::string& step, std::vector<std::uint8_t>& leaders);
  ~team_call();
  team_call(const team_call&) = delete;
  team_call& operator=(const team_call&) = delete;

  bool leader() const noexcept { return role_ == role::leader; }
  bool follower() const noexcept { return role_ == role::follower; }
  partition_context& context() noexcept { return ctx_; }

  /// Leader: runs `part` for partition p on the whole team and returns its
  /// (member 0's) result. When any member failed, throws the first failure
  /// as an item_failure naming the member, rank and host.
  template <class F>
  auto lead(std::int64_t p, F&& part) {
    announce(p);
    std::optional<decltype(part())> out;
    std::optional<item_failure> mine;
    try {
      out.emplace(part());
    } catch (const item_failure& e) {
      mine = e;
    } catch (...) {
      // Not the function's (a malformed report): the members must still
      // be concluded, or they would wait for the acknowledgement forever.
      mine = item_failure{-1, describe_current_exception()};
    }
    conclude(p, mine);  // throws the first failure
    return std::move(*out);
  }

  /// Between items: true once the current partition is lost (a member
  /// failed); the items left are skipped.
  bool partition_lost();

  /// Follower, between the protocol's polls: when the leader announced a
  /// partition, runs it with `part` (result discarded), reports, and returns
  /// true.
  template <class F>
  bool follow(F&& part) {
    std::int64_t p = 0;
    if (!announced(p)) return false;
    std::optional<item_failure> mine;
    try {
      part(p);
    } catch (const item_failure& e) {
      mine = e;
    } catch (...) {
      mine = item_failure{-1, describe_current_exception()};
    }
    report(p, mine);
    return true;
  }

 private:
  enum class role { idle, leader, follower };
  void announce(std::int64_t p);
  void conclude(std::int64_t p, const std::optional<item_failure>& mine);
  bool announced(std::int64_t& p);
  void report(std::int64_t p, const std::optional<item_failure>& mine);
  void take_reports();
  void note_failure(int member, item_failure f);
  void renew_comm();
  [[noreturn]] void stuck(std::int64_t p, const std::string& failure, const std::vector<int>& silent_members);

  const runtime_state& st_;
  std::string step_;
  role role_ = role::idle;
  std::vector<int> members_;       ///< world ranks of this rank's team, leader first
  MPI_Comm user_ = MPI_COMM_NULL;  ///< the team, for the partition function
  MPI_Comm ctl_ = MPI_COMM_NULL;   ///< the same ranks, for announcements and reports
  partition_context ctx_;
  double stuck_after_s_;  ///< < 0: never (--peer-timeout 0)
  // Leader, for the current partition: which members reported and which were
  // told the partition is lost, and the first failure (the leader's own,
  // else the lowest member's).
  std::vector<std::uint8_t> heard_;
  std::vector<std::uint8_t> told_;
  int left_ = 0;
  std::optional<item_failure> first_;
  int first_member_ = -1;
  double failed_at_ = 0;  ///< steady seconds when first_ was set
  // Follower: the leader said the current partition is lost.
  bool lost_ = false;
};

}  // namespace rankflow::detail
