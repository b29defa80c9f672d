// Rank 0's side of multi-rank tasks (resources::ranks > 1; docs/tasks.md,
// "Multi-rank tasks"): placing a gang, its members' reports, abandoning the
// members of a failed one, and the members that never return.
#include "task_engine.hpp"

namespace rankflow::detail {


// One member of a multi-rank task reported. Its worker is free again; the
// attempt ends at its first failure (the members still running are told to
// abandon) or once every member succeeded.
void task_engine::finish_member(const std::shared_ptr<task_rec>& rec, const result_header& h, std::string&& payload) {
  auto at = rec->gang_attempts.find(h.attempt);
  if (at == rec->gang_attempts.end() || h.member < 0 ||
      h.member >= static_cast<int>(at->second.workers.size())) {
    return;
  }
  auto& ga = at->second;
  const int w = ga.workers[static_cast<std::size_t>(h.member)];
  if (ga.reported[static_cast<std::size_t>(h.member)]) return;
  ga.reported[static_cast<std::size_t>(h.member)] = 1;
  --ga.left;
  give_back(w, rec->need);
  ga.start = ga.start == 0 ? h.start : std::min(ga.start, h.start);
  ga.end = std::max(ga.end, h.end);
  if (!h.ok && !ga.failed) {
    ga.failed = true;
    ga.final = h.final != 0;
    ga.failed_worker = w;
    ga.error = "member " + std::to_string(h.member) + " of " + std::to_string(ga.workers.size()) + ": " + payload;
    for (std::size_t m = 0; m < ga.workers.size(); ++m) {
      if (!ga.reported[m]) send_abandon(ga.workers[m], rec->id, h.attempt);
    }
  } else if (h.ok && h.member == 0) {
    ga.result = std::move(payload);
  }
  if (!ga.ended && (ga.failed || ga.left == 0)) {
    ga.ended = true;
    end_gang_attempt(rec, h.attempt, ga);
  }
  if (ga.left == 0) {
    rec->gang_attempts.erase(at);
    if (rec->gang_attempts.empty() && ended(*rec)) gangs_.erase(rec->id);
  }
}

void task_engine::end_gang_attempt(const std::shared_ptr<task_rec>& rec, int attempt, gang_attempt& ga) {
  const auto& first = workers_[static_cast<std::size_t>(ga.workers.front())];
  attempts_.push_back(task_attempt{rec->id, rec->def->name, first.rank, ga.start, ga.end, attempt, !ga.failed,
                                   ga.failed ? ga.error : std::string()});
  if (!ga.failed) {
    rec->status = task_status::SUCCESS;
    rec->result = std::move(ga.result);
  } else {
    const auto& fw = workers_[static_cast<std::size_t>(ga.failed_worker)];
    if (!ga.final && rec->attempts <= rec->retries && !stopping_) {
      log::warn() << "task '" << rec->def->name << "' (id " << rec->id << ", " << ga.workers.size()
                  << " ranks) failed on rank " << fw.rank << " (host " << fw.host << "), attempt " << rec->attempts
                  << " of " << rec->retries + 1 << ": " << ga.error << "; retrying all its ranks in "
                  << backoff_s(*rec) << " s";
      retry_later(rec);
      return;
    }
    rec->status = task_status::FAILURE;
    rec->error = task_error::details{rec->def->name, fw.rank, fw.host, -1, -1, rec->attempts, ga.error,
                                     static_cast<std::int64_t>(rec->id)};
  }
  --open_;
  if (rec->on_end) rec->on_end();
}

void task_engine::send_abandon(int worker, std::uint64_t id, int attempt) {
  if (local_) return;
  bytes f = new_frame();
  f.push_back(static_cast<char>(msg::abandon));
  put(f, id);
  put(f, static_cast<std::int32_t>(attempt));
  sends_.push_back(
      isend_frame(comm_, workers_[static_cast<std::size_t>(worker)].rank, tag_down, std::move(f), st_.cfg.segment_bytes));
}

// Places a multi-rank task: `ranks` candidates with room now, first fit
// from the rotating start. Returns false when fewer have room: the caller
// then reserves the best ones for the rest of the pass, so that single-rank
// tasks behind it fill the other workers but not those (a gang never starves).
bool task_engine::place_gang(const std::shared_ptr<task_rec>& rec) {
  const auto& cand = *rec->candidates;
  const std::size_t m = cand.size();
  const auto k = static_cast<std::size_t>(rec->need.ranks);
  std::vector<int> picked;
  for (std::size_t j = 0; j < m && picked.size() < k; ++j) {
    const int w = cand[(cursor_ + j) % m];
    const auto i = static_cast<std::size_t>(w);
    if (!reserved_[i] && fits(rec->need, free_[i])) picked.push_back(w);
  }
  if (picked.size() < k) {
    std::vector<int> by_free;
    for (int w : cand) {
      if (!reserved_[static_cast<std::size_t>(w)]) by_free.push_back(w);
    }
    std::sort(by_free.begin(), by_free.end(), [&](int a, int b) {
      return free_[static_cast<std::size_t>(a)].cpu > free_[static_cast<std::size_t>(b)].cpu;
    });
    for (std::size_t j = 0; j < by_free.size() && j < k; ++j) reserve(by_free[j]);
    return false;
  }
  cursor_ = (cursor_ + 1) % m;
  ++rec->attempts;
  rec->status = task_status::STARTED;
  rec->worker = picked.front();
  rec->rank = workers_[static_cast<std::size_t>(picked.front())].rank;
  gang_attempt ga;
  ga.workers = picked;
  ga.reported.assign(k, 0);
  ga.left = static_cast<int>(k);
  rec->gang_attempts[rec->attempts] = std::move(ga);
  gangs_[rec->id] = rec;
  std::vector<int> ranks;
  for (int w : picked) ranks.push_back(workers_[static_cast<std::size_t>(w)].rank);
  for (std::size_t member = 0; member < k; ++member) {
    take(picked[member], rec->need);
    sends_.push_back(isend_frame(comm_, ranks[member], tag_down,
                                 task_frame(rec, static_cast<int>(member), ranks), st_.cfg.segment_bytes));
  }
  return true;
}


// At the drive's end, members of a failed multi-rank task that never
// reported are blocked in an MPI call on the task's communicator, waiting
// for the member that failed: nothing can interrupt them, and their ranks
// would never leave drive(). After --peer-timeout (at least 5 s) the job
// ends with an error that names them, instead of hanging.
void task_engine::stuck_members(std::chrono::steady_clock::time_point since) {
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
  if (waited < std::max(5.0, st_.cfg.peer_timeout_s)) return;
  bool any = false;
  for (const auto& [id, rec] : gangs_) any |= !rec->gang_attempts.empty();
  if (!any) return;
  std::string what;
  for (const auto& [id, rec] : gangs_) {
    for (const auto& [attempt, ga] : rec->gang_attempts) {
      std::string ranks;
      for (std::size_t m = 0; m < ga.workers.size(); ++m) {
        if (ga.reported[m]) continue;
        const auto& w = workers_[static_cast<std::size_t>(ga.workers[m])];
        ranks += (ranks.empty() ? "" : ", ") + std::to_string(w.rank) + " (host " + w.host + ")";
      }
      what += (what.empty() ? "" : "; ") + std::string("task '") + rec->def->name + "' (id " + std::to_string(id) +
              ", attempt " + std::to_string(attempt) + ", " + (ga.failed ? ga.error : "not failed") +
              "): members on rank(s) " + ranks + " still running";
    }
  }
  log::error() << "drive() ended " << waited << " s ago but members of multi-rank tasks never returned: " << what
               << ". They are blocked in an MPI call on the task's communicator, waiting for a member that "
                  "failed; MPI cannot interrupt them. Ending the job. (Operations on ctx.comm() finished with "
                  "ctx.wait(request) or ctx.barrier() end when another member fails: docs/tasks.md)";
  MPI_Abort(MPI_COMM_WORLD, 70);
}


}  // namespace rankflow::detail
