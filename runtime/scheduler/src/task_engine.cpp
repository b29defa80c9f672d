// Driver mode: futures' view of rank 0's task records, and the worker side.
#include "task_engine.hpp"

namespace rankflow::detail {


namespace {
bool has_ended(const task_rec& r) { return r.status == task_status::SUCCESS || r.status == task_status::FAILURE; }

// After drive() a future reads what its task left; one that never ran says so.
void check_after_drive(const task_rec& rec) {
  if (!has_ended(rec)) {
    throw usage_error("task '" + rec.def->name + "' never ran: the drive() it was submitted in has ended");
  }
}

const std::string& result_or_throw(const task_rec& rec) {
  if (rec.status == task_status::SUCCESS) return rec.result;
  if (rec.error) throw task_error(*rec.error);
  throw usage_error("task '" + rec.def->name + "' has not ended");
}
}  // namespace

bool wait_task(const engine_handle& h, const std::shared_ptr<task_rec>& rec,
               const std::chrono::steady_clock::time_point* deadline) {
  if (!h.engine) {
    check_after_drive(*rec);
    return true;
  }
  return h.engine->wait(rec.get(), deadline);
}

task_status status_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) return rec.status;
  std::lock_guard lk(h.engine->mutex());
  h.engine->progress_locked();
  return rec.status;
}

const std::string& result_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) {
    check_after_drive(rec);
    return result_or_throw(rec);
  }
  std::lock_guard lk(h.engine->mutex());
  return result_or_throw(rec);
}

int rank_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) return rec.rank;
  std::lock_guard lk(h.engine->mutex());
  return rec.rank;
}
int attempts_of(const engine_handle& h, const task_rec& rec) {
  if (!h.engine) return rec.attempts;
  std::lock_guard lk(h.engine->mutex());
  return rec.attempts;
}
std::uint64_t id_of(const task_rec& rec) { return rec.id; }
const std::string& name_of(const task_rec& rec) { return rec.def->name; }

// ------------------------------------------------------------------ workers


// A worker rank's side of drive(): receive tasks, run them, send results,
// until rank 0 says stop. Returns how the driver ended.
stop_info serve(runtime_state& st, MPI_Comm comm, MPI_Comm gang_comm,
                const std::map<std::string, task_def, std::less<>>& defs, const worker_info& me) {
  std::mutex send_m;  // segments of two large results must not interleave
  executor exec(defs, me, [&](const result_header& h, const std::string& payload) {
    bytes f = new_frame();
    f.reserve(frame_header_bytes + 1 + sizeof h + payload.size());
    f.push_back(static_cast<char>(msg::result));
    put(f, h);
    f.insert(f.end(), payload.begin(), payload.end());
    std::lock_guard lk(send_m);
    isend_frame(comm, 0, tag_up, std::move(f), st.cfg.segment_bytes).wait();
  }, gang_comm);
  backoff bo(1000, 200);  // a driver that waits on each result sends the next task within microseconds
  stop_info stop;
  for (;;) {
    frame_in f;
    if (!try_recv_frame(comm, 0, tag_down, st.cfg.segment_bytes, f)) {
      bo.wait();
      continue;
    }
    bo.reset();
    const auto kind = static_cast<msg>(f.payload()[0]);
    if (kind == msg::task) {
      incoming_task t = parse_task(std::move(f));
      // A member of a multi-rank task never runs on this (receiving) thread:
      // blocked in the task's communicator, it would stop this rank from
      // hearing that another member failed.
      if (t.h.members > 1) {
        exec.post(std::move(t));
      } else {
        exec.post_or_run(std::move(t), me.capacity.cpu);
      }
    } else if (kind == msg::abandon) {
      std::uint64_t id = 0;
      std::int32_t attempt = 0;
      std::memcpy(&id, f.payload() + 1, sizeof id);
      std::memcpy(&attempt, f.payload() + 1 + sizeof id, sizeof attempt);
      exec.abandon(id, attempt);
    } else if (kind == msg::stop) {
      stop = decode<stop_info>(f.payload() + 1, f.payload_size() - 1);
      break;
    }
  }
  exec.join();  // every result is sent before the goodbye
  bytes bye = new_frame();
  bye.push_back(static_cast<char>(msg::bye));
  std::lock_guard lk(send_m);
  isend_frame(comm, 0, tag_up, std::move(bye), st.cfg.segment_bytes).wait();
  return stop;
}

// Every rank's worker_info, on rank 0 (empty elsewhere).
std::vector<worker_info> gather_workers(MPI_Comm comm, int rank, int size, const worker_info& me) {
  bytes mine;
  encode(mine, me);
  int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  check_mpi(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, comm), "MPI_Gather");
  int total = 0;
  for (int r = 0; r < size; ++r) {
    displs[static_cast<std::size_t>(r)] = total;
    total += sizes[static_cast<std::size_t>(r)];
  }
  bytes all(rank == 0 ? static_cast<std::size_t>(total) : 0);
  check_mpi(MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), sizes.data(), displs.data(), MPI_CHAR, 0, comm),
            "MPI_Gatherv");
  std::vector<worker_info> out;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      out.push_back(decode<worker_info>(all.data() + displs[static_cast<std::size_t>(r)],
                                        static_cast<std::size_t>(sizes[static_cast<std::size_t>(r)])));
    }
  }
  return out;
}

stop_info describe_failure(std::exception_ptr e) {
  stop_info s;
  try {
    std::rethrow_exception(e);
  } catch (const task_error& t) {
    s.kind = stop_kind::task_failed;
    s.task = t.info();
    s.message = t.what();
  } catch (const interrupted& i) {
    s.kind = stop_kind::interrupted;
    s.signal = i.signal();
    s.message = i.what();
  } catch (...) {
    s.kind = stop_kind::other_error;
    s.message = describe_current_exception();
  }
  return s;
}


}  // namespace rankflow::detail
