// Partitions on several ranks at once: forming the teams of one call, the
// leader's announcement and the members' reports (rankflow/runtime/detail/teams.hpp).
#include <rankflow/runtime/detail/teams.hpp>

#include <algorithm>
#include <chrono>

#include <rankflow/core/detail/transport.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/serialize.hpp>

namespace rankflow::detail {

namespace {

constexpr int tag_announce = 1;  // leader -> follower: int64 partition
constexpr int tag_report = 2;    // follower -> leader: int8 failed, int64 item, message
constexpr int tag_ack = 3;       // leader -> follower: the partition is concluded; 1 byte: a `lost` was sent
constexpr int tag_lost = 4;      // leader -> follower: int64 partition, lost (a member failed)

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

team_call::team_call(const runtime_state& st, const std::vector<std::uint8_t>& fits, const resources& need,
                     std::size_t max_teams, const std::string& step, std::vector<std::uint8_t>& leaders)
    : st_(st), step_(step), stuck_after_s_(st.cfg.peer_timeout_s > 0 ? std::max(5.0, st.cfg.peer_timeout_s) : -1) {
  const int k = need.ranks;
  // Every rank computes the same teams from the same (gathered) fits.
  std::vector<int> able;
  for (int r = 0; r < st.size; ++r) {
    if (fits.empty() || fits[static_cast<std::size_t>(r)]) able.push_back(r);
  }
  if (static_cast<int>(able.size()) < k) {
    resources each = need;
    each.ranks = 1;
    throw resource_error(step + ": each partition needs " + std::to_string(k) +
                         " ranks at once (map_options::need.ranks) but only " + std::to_string(able.size()) + " of " +
                         std::to_string(st.size) + " ranks meet its need (" + to_string(each) +
                         " each): run with at least " + std::to_string(k) + " such ranks, or ask for fewer");
  }
  std::size_t teams = able.size() / static_cast<std::size_t>(k);
  if (max_teams > 0) teams = std::min(teams, max_teams);
  leaders.assign(static_cast<std::size_t>(st.size), 0);
  int color = MPI_UNDEFINED, key = 0;
  for (std::size_t t = 0; t < teams; ++t) {
    for (int m = 0; m < k; ++m) {
      const int r = able[t * static_cast<std::size_t>(k) + static_cast<std::size_t>(m)];
      if (m == 0) leaders[static_cast<std::size_t>(r)] = 1;
      if (r == st.rank) {
        color = static_cast<int>(t);
        key = m;
        role_ = m == 0 ? role::leader : role::follower;
        for (int q = 0; q < k; ++q)
          members_.push_back(able[t * static_cast<std::size_t>(k) + static_cast<std::size_t>(q)]);
      }
    }
  }
  // Over every rank, members or not: MPI_Comm_split is collective.
  check_mpi(MPI_Comm_split(st.comm, color, key, &user_), "MPI_Comm_split");
  if (user_ != MPI_COMM_NULL) {
    check_mpi(MPI_Comm_dup(user_, &ctl_), "MPI_Comm_dup");
    ctx_.comm_ = user_;
    ctx_.member_ = key;
    ctx_.members_ = k;
    ctx_.lost_ = [this] { return partition_lost(); };
  }
  if (st.rank == 0) {
    log::debug() << step << ": " << teams << " team(s) of " << k << " ranks, " << st.size - static_cast<int>(teams) * k
                 << " rank(s) left out";
  }
}

team_call::~team_call() {
  // Every announcement was reported and acknowledged before the call ended
  // (STOP follows the leaders' results, which follow the reports).
  if (ctl_ != MPI_COMM_NULL) MPI_Comm_free(&ctl_);
  if (user_ != MPI_COMM_NULL) MPI_Comm_free(&user_);
}

void team_call::announce(std::int64_t p) {
  ctx_.partition_ = p;
  heard_.assign(members_.size(), 0);
  heard_[0] = 1;
  told_.assign(members_.size(), 0);
  left_ = static_cast<int>(members_.size()) - 1;
  first_.reset();
  first_member_ = -1;
  for (int m = 1; m < static_cast<int>(members_.size()); ++m) {
    check_mpi(MPI_Send(&p, 1, MPI_INT64_T, m, tag_announce, ctl_), "MPI_Send");
  }
}

// The first failure known wins (a member that then fails because of it, in
// partition_context::wait, is a consequence); the members still out are told.
void team_call::note_failure(int member, item_failure f) {
  if (!first_) {
    failed_at_ = steady_seconds();
    first_ = std::move(f);
    first_member_ = member;
  }
  for (int m = 1; m < static_cast<int>(members_.size()); ++m) {
    if (heard_[static_cast<std::size_t>(m)] || told_[static_cast<std::size_t>(m)]) continue;
    check_mpi(MPI_Send(&ctx_.partition_, 1, MPI_INT64_T, m, tag_lost, ctl_), "MPI_Send");
    told_[static_cast<std::size_t>(m)] = 1;
  }
}

void team_call::take_reports() {
  for (int m = 1; m < static_cast<int>(members_.size()) && left_ > 0; ++m) {
    if (heard_[static_cast<std::size_t>(m)]) continue;
    int flag = 0;
    MPI_Status status;
    check_mpi(MPI_Iprobe(m, tag_report, ctl_, &flag, &status), "MPI_Iprobe");
    if (!flag) continue;
    int n = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &n), "MPI_Get_count");
    std::string msg(static_cast<std::size_t>(n), '\0');
    check_mpi(MPI_Recv(msg.data(), n, MPI_BYTE, m, tag_report, ctl_, MPI_STATUS_IGNORE), "MPI_Recv");
    heard_[static_cast<std::size_t>(m)] = 1;
    --left_;
    if (n < 9) throw error("rankflow: malformed report from a partition's team member");
    if (msg[0] != 0) note_failure(m, item_failure{decode<std::int64_t>(msg.data() + 1, 8), msg.substr(9)});
  }
}

bool team_call::partition_lost() {
  if (role_ == role::leader) {
    if (left_ > 0) take_reports();
    return first_.has_value();
  }
  if (!lost_) {
    int flag = 0;
    check_mpi(MPI_Iprobe(0, tag_lost, ctl_, &flag, MPI_STATUS_IGNORE), "MPI_Iprobe");
    if (flag) {
      std::int64_t p = -1;
      check_mpi(MPI_Recv(&p, 1, MPI_INT64_T, 0, tag_lost, ctl_, MPI_STATUS_IGNORE), "MPI_Recv");
      lost_ = true;
    }
  }
  return lost_;
}

void team_call::conclude(std::int64_t p, const std::optional<item_failure>& mine) {
  const int k = static_cast<int>(members_.size());
  if (mine) note_failure(0, *mine);
  backoff idle(1000, st_.cfg.spin_us);
  while (left_ > 0) {
    const int before = left_;
    take_reports();
    if (left_ < before) {
      idle.reset();
      continue;
    }
    // A member that failed may leave the others waiting for it in a plain
    // MPI call on comm(): they will never report. Do not wait forever.
    if (first_ && stuck_after_s_ >= 0 && steady_seconds() - failed_at_ >= stuck_after_s_) {
      std::vector<int> silent;
      for (int m = 1; m < k; ++m) {
        if (!heard_[static_cast<std::size_t>(m)]) silent.push_back(m);
      }
      stuck(p, "member " + std::to_string(first_member_) + " failed: " + first_->message, silent);
    }
    idle.wait();
  }
  for (int m = 1; m < k; ++m) {
    const std::uint8_t ack = static_cast<std::uint8_t>(told_[static_cast<std::size_t>(m)] | (first_ ? 2 : 0));
    check_mpi(MPI_Send(&ack, 1, MPI_BYTE, m, tag_ack, ctl_), "MPI_Send");
  }
  if (!first_) return;
  renew_comm();
  std::string who = "member " + std::to_string(first_member_) + " of " + std::to_string(k);
  if (first_member_ != 0) {
    const int r = members_[static_cast<std::size_t>(first_member_)];
    who += " (rank " + std::to_string(r) + ", host " + st_.hosts[static_cast<std::size_t>(r)] + ")";
  }
  throw item_failure{first_->item, who + ": " + first_->message};
}

bool team_call::announced(std::int64_t& p) {
  int flag = 0;
  check_mpi(MPI_Iprobe(0, tag_announce, ctl_, &flag, MPI_STATUS_IGNORE), "MPI_Iprobe");
  if (!flag) return false;
  check_mpi(MPI_Recv(&p, 1, MPI_INT64_T, 0, tag_announce, ctl_, MPI_STATUS_IGNORE), "MPI_Recv");
  ctx_.partition_ = p;
  lost_ = false;
  return true;
}

void team_call::report(std::int64_t p, const std::optional<item_failure>& mine) {
  bytes msg;
  encode(msg, static_cast<std::int8_t>(mine ? 1 : 0));
  encode(msg, mine ? mine->item : std::int64_t{-1});
  if (mine) msg.insert(msg.end(), mine->message.begin(), mine->message.end());
  check_mpi(MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, 0, tag_report, ctl_), "MPI_Send");
  // Wait for the leader to conclude the partition. After a failure here the
  // leader may itself be blocked waiting for this member in a plain call on
  // comm(), and only this member can end the job. The leader checks for
  // failures between items, so a healthy one concludes within one item: give
  // it twice the leader's own patience, plus 5 s.
  std::uint8_t told = 0;
  MPI_Request ack = MPI_REQUEST_NULL;
  check_mpi(MPI_Irecv(&told, 1, MPI_BYTE, 0, tag_ack, ctl_, &ack), "MPI_Irecv");
  const double since = steady_seconds();
  backoff idle(1000, st_.cfg.spin_us);
  for (;;) {
    int done = 0;
    check_mpi(MPI_Test(&ack, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) break;
    if (mine && stuck_after_s_ >= 0 && steady_seconds() - since >= 2 * stuck_after_s_ + 5) {
      stuck(p, "member " + std::to_string(ctx_.member_) + " failed: " + mine->message, {0});
    }
    idle.wait();
  }
  // A `lost` sent before the acknowledgement and not read yet: read it, so
  // that nothing of this partition stays behind.
  if ((told & 1) && !lost_) {
    std::int64_t q = -1;
    check_mpi(MPI_Recv(&q, 1, MPI_INT64_T, 0, tag_lost, ctl_, MPI_STATUS_IGNORE), "MPI_Recv");
  }
  lost_ = false;
  if (told & 2) renew_comm();
}

// After a lost partition, members may have left operations on comm() that
// others never joined (abandoned in partition_context::wait): a collective
// of the next partition would match one of them. Every member takes a fresh
// communicator (collective over the team, right after the acknowledgement);
// the old one is freed, and deallocated by MPI once nothing is pending on it.
void team_call::renew_comm() {
  MPI_Comm fresh = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(ctl_, &fresh), "MPI_Comm_dup");
  MPI_Comm_free(&user_);
  user_ = fresh;
  ctx_.comm_ = user_;
}

void team_call::stuck(std::int64_t p, const std::string& failure, const std::vector<int>& silent_members) {
  std::string ranks;
  for (int m : silent_members) {
    const int r = members_[static_cast<std::size_t>(m)];
    ranks += (ranks.empty() ? "" : ", ") + std::to_string(r) + " (member " + std::to_string(m) + ", host " +
             st_.hosts[static_cast<std::size_t>(r)] + ")";
  }
  log::error() << step_ << ": partition " << p << ": " << failure << "; rank(s) " << ranks
               << " of its team did not finish the partition within " << stuck_after_s_
               << " s: they are blocked in an MPI call on partition_context::comm(), waiting for the member that "
                  "failed, and MPI cannot interrupt them. Ending the job (docs/usage.md, \"Partitions on several "
                  "ranks\")";
  MPI_Abort(MPI_COMM_WORLD, 70);
  std::abort();  // MPI_Abort does not return
}

}  // namespace rankflow::detail

namespace rankflow {

void partition_context::wait(MPI_Request& request) const {
  detail::backoff idle(1000, 200);
  for (;;) {
    int done = 0;
    detail::check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return;
    if (abandoned()) {
      // The operation cannot complete (a member left it); it is left
      // pending on a communicator the call frees at its end.
      throw error("partition " + std::to_string(partition_) + " abandoned: another member of its team failed");
    }
    idle.wait();
  }
}

void partition_context::barrier() const {
  MPI_Request r = MPI_REQUEST_NULL;
  detail::check_mpi(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier");
  wait(r);
}

}  // namespace rankflow
