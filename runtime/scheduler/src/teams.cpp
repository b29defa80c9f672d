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
constexpr int tag_ack = 3;       // leader -> follower: the partition is concluded

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

team_call::team_call(const runtime_state& st, const std::vector<std::uint8_t>& fits, const resources& need,
                     std::size_t max_teams, const std::string& step, std::vector<std::uint8_t>& leaders)
    : st_(st), step_(step), stuck_after_s_(std::max(5.0, st.cfg.peer_timeout_s)) {
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
        for (int q = 0; q < k; ++q) members_.push_back(able[t * static_cast<std::size_t>(k) + static_cast<std::size_t>(q)]);
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
  }
  if (st.rank == 0) {
    log::debug() << step << ": " << teams << " team(s) of " << k << " ranks, "
                 << st.size - static_cast<int>(teams) * k << " rank(s) left out";
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
  left_ = static_cast<int>(members_.size()) - 1;
  first_.reset();
  first_member_ = -1;
  for (int m = 1; m < static_cast<int>(members_.size()); ++m) {
    check_mpi(MPI_Send(&p, 1, MPI_INT64_T, m, tag_announce, ctl_), "MPI_Send");
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
    if (msg[0] != 0 && (!first_ || first_member_ > m)) {
      if (!first_) failed_at_ = steady_seconds();
      first_ = item_failure{decode<std::int64_t>(msg.data() + 1, 8), msg.substr(9)};
      first_member_ = m;
    }
  }
}

bool team_call::member_failed() {
  if (left_ > 0) take_reports();
  return first_.has_value();
}

void team_call::conclude(std::int64_t p, const std::optional<item_failure>& mine) {
  const int k = static_cast<int>(members_.size());
  if (mine) {
    if (!first_) failed_at_ = steady_seconds();
    first_ = mine;
    first_member_ = 0;
  }
  backoff idle(1000, st_.cfg.spin_us);
  while (left_ > 0) {
    const int before = left_;
    take_reports();
    if (left_ < before) {
      idle.reset();
      continue;
    }
    // A member that failed left the others waiting for it in their MPI calls
    // on comm(): they will never report. Do not wait for them forever.
    if (first_ && steady_seconds() - failed_at_ >= stuck_after_s_) {
      std::vector<int> silent;
      for (int m = 1; m < k; ++m) {
        if (!heard_[static_cast<std::size_t>(m)]) silent.push_back(m);
      }
      stuck(p, "member " + std::to_string(first_member_) + " failed: " + first_->message, silent);
    }
    idle.wait();
  }
  for (int m = 1; m < k; ++m) check_mpi(MPI_Send(nullptr, 0, MPI_BYTE, m, tag_ack, ctl_), "MPI_Send");
  if (!first_) return;
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
  return true;
}

void team_call::report(std::int64_t p, const std::optional<item_failure>& mine) {
  bytes msg;
  encode(msg, static_cast<std::int8_t>(mine ? 1 : 0));
  encode(msg, mine ? mine->item : std::int64_t{-1});
  if (mine) msg.insert(msg.end(), mine->message.begin(), mine->message.end());
  check_mpi(MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_BYTE, 0, tag_report, ctl_), "MPI_Send");
  // Wait for the leader to conclude the partition. After a failure here the
  // leader may itself be blocked waiting for this member (in a collective on
  // comm()); it normally ends the job itself after stuck_after_s_, this is the
  // fallback for a leader that cannot.
  MPI_Request ack = MPI_REQUEST_NULL;
  check_mpi(MPI_Irecv(nullptr, 0, MPI_BYTE, 0, tag_ack, ctl_, &ack), "MPI_Irecv");
  const double since = steady_seconds();
  backoff idle(1000, st_.cfg.spin_us);
  for (;;) {
    int done = 0;
    check_mpi(MPI_Test(&ack, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return;
    if (mine && steady_seconds() - since >= 2 * stuck_after_s_ + 5) {
      stuck(p, "member " + std::to_string(ctx_.member_) + " failed: " + mine->message, {0});
    }
    idle.wait();
  }
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
