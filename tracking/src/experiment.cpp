// Experiment files: the sidecar (journals, locks, temporary copies), merging a run,
// recovery, and the public entry points of experiment.hpp.
#include "experiment_io.hpp"

#include <rankflow/core/log.hpp>

#include <chrono>

#include "run_index.hpp"

namespace rankflow::tracking {

namespace {



/// Removes temp copies left by merges that were killed (kill -9 during the
/// end-of-run copy leaves a whole copy of the experiment behind). Called with
/// the sidecar's lock held: every merge writes its copy under that lock, so no
/// copy is being written now. A copy from a live process of this host is
/// still left alone, in case a writer lost its lock (a file system without
/// working flock); its name says which host and process wrote it.
std::vector<std::string> remove_stale_copies(const experiment_paths& p) {
  std::vector<std::string> removed;
  const auto prefix = temp_copy_prefix(p);
  const auto me = safe_host();
  for (const auto& name : list_dir(p.dir)) {
    if (!name.starts_with(prefix)) continue;
    const auto rest = name.substr(prefix.size());
    const auto dash = rest.rfind('-');
    const auto pid_text = dash == std::string::npos ? rest : rest.substr(dash + 1);
    const auto host = dash == std::string::npos ? std::string() : rest.substr(0, dash);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::atol(pid_text.c_str());
    if ((host.empty() || host == me) && pid > 0 && pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM)) {
      continue;  // its writer is alive
    }
    if (::unlink((p.dir + "/" + name).c_str()) == 0) removed.push_back(name);
  }
  // Run files being written (runs/.<id>.h5.tmp-<host>-<pid>): the same rule.
  for (const auto& name : list_dir(p.dir + "/runs")) {
    const auto at = name.find(".h5.tmp-");
    if (name.empty() || name[0] != '.' || at == std::string::npos) continue;
    const auto rest = name.substr(at + 8);
    const auto dash = rest.rfind('-');
    if (dash == std::string::npos) continue;
    const auto pid_text = rest.substr(dash + 1);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::atol(pid_text.c_str());
    if (rest.substr(0, dash) == me && pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
    if (rest.substr(0, dash) != me) continue;  // another host's writer: it may be alive
    if (::unlink((p.dir + "/runs/" + name).c_str()) == 0) removed.push_back("runs/" + name);
  }
  return removed;
}











}  // namespace

experiment_paths::experiment_paths(std::string f) : file(std::move(f)), dir(file + ".d") {}

std::string experiment_paths::journal(const std::string& id) const { return dir + "/" + id + ".journal"; }
std::string experiment_paths::run_file(const std::string& id) const { return dir + "/runs/" + id + ".h5"; }
std::string experiment_paths::run_file_relative(const std::string& id) const {
  return basename_of(file) + ".d/runs/" + id + ".h5";
}
std::string experiment_paths::index() const { return dir + "/index"; }

namespace {
// FNV-1a, 64 bits: a stable name for a field path (the same on every rank and
// in every version, unlike std::hash).
std::string path_hash(const std::string& s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}
}  // namespace

// Array files are written through MPI-IO, and Open MPI's OMPIO backend
// aborts the whole job ("buffer overflow detected") when the path it is
// given is longer than about 244 characters (measured with Open MPI 4.1:
// 244 works, 245 aborts; ROMIO has no such limit). A name part may also be
// 255 characters, which no file system takes once ".h5" is appended. So a
// last part over array_name_kept characters becomes a prefix, '+' and a hash
// of the whole path ('+' is not allowed in field paths: a mapped name never
// equals a kept one), and a path that would still exceed array_path_budget
// becomes "+<hash>.h5" directly in the run's directory. The field keeps its
// path inside the run; only the file behind its external link is renamed.
std::string experiment_paths::array_relative(const std::string& id, const std::string& path) const {
  const std::string base = basename_of(file) + ".d/arrays/" + id + "/";
  const auto slash = path.rfind('/');
  const std::string dirs = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string last = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string name =
      last.size() <= array_name_kept ? last : last.substr(0, array_name_prefix) + "+" + path_hash(path);
  std::string rel = base + dirs + name + ".h5";
  if (dirname_of(file).size() + 1 + rel.size() > array_path_budget) rel = base + "+" + path_hash(path) + ".h5";
  return rel;
}

std::string experiment_paths::array_absolute(const std::string& id, const std::string& path) const {
  return dirname_of(file) + "/" + array_relative(id, path);
}

void set_other_file_advice(std::string advice) { other_file_advice = std::move(advice); }

bool check_file(const std::string& file) {
  if (!exists(file)) return false;
  open_checked(file, H5F_ACC_RDONLY);
  return true;
}

run_record replay(const std::string& journal_path, bool* torn, bool keep_points) {
  run_record rec;
  rec.keep_points = keep_points;
  std::vector<rejection> ignored;  // a journal holds accepted operations only
  const bool cut = scan_journal(journal_path, [&](op& o) {
    rec.apply(o, ignored);
    return true;
  });
  if (torn) *torn = cut;
  return rec;
}

std::vector<run_info> list_runs(const std::string& file) {
  std::vector<run_info> out;
  experiment_paths p(file);
  if (check_file(file)) {
    int major = format_major;
    auto f = open_checked(file, H5F_ACC_RDONLY, &major);
    if (major >= 2) {
      // From the index: no run file is opened, however many runs there are.
      for (auto& e : read_index(p.index(), committed_index(f.id(), file))) out.push_back(std::move(e.info));
      std::sort(out.begin(), out.end(), [](const run_info& x, const run_info& y) { return run_order(x.id, y.id); });
    } else {
      for (const auto& id : run_ids_in_file(f.id())) {
        handle g(check(H5Gopen2(f.id(), ("runs/" + id).c_str(), H5P_DEFAULT), "H5Gopen2", id));
        out.push_back(read_info(g.id(), id));
      }
    }
  }
  for (const auto& id : journal_ids(p)) {
    try {
      auto jc = read_journal(p.journal(id), true);
      if (jc.ops.empty() || jc.ops[0].kind != op_kind::begin) continue;
      auto info = jc.ops[0].info;
      if (!journal_is_live(p.journal(id))) {
        info.status = "killed";
        info.reason = "not recovered yet: run `rankflow recover " + file + "` or start a run to recover it";
      }
      std::erase_if(out, [&](const run_info& r) { return r.id == info.id; });
      out.push_back(info);
    } catch (const storage_error&) {  // not a journal, or gone (its run just finished)
    }
  }
  return out;
}

run_record load_run(const std::string& file, const std::string& id, bool with_bytes) {
  return load_run(file, id, with_bytes, series_points{});
}

run_record load_run(const std::string& file, const std::string& id, bool with_bytes, const series_points& points) {
  experiment_paths p(file);
  if (exists(p.journal(id))) {
    auto rec = replay(p.journal(id));
    if (rec.info.id == id) {
      if (rec.info.status == "running" && !journal_is_live(p.journal(id))) {
        rec.info.status = "killed";
        rec.info.reason = "not recovered yet";
      }
      if (with_bytes) {
        for (auto& [path, f] : rec.fields) {
          if (f.type == field_type::file && f.file.size) {
            f.file.data = read_range(p.journal(id), static_cast<std::uint64_t>(f.file.journal_offset), f.file.size);
          }
        }
      }
      return rec;
    }
  }
  std::vector<std::string> ids;
  if (check_file(file)) {
    auto f = open_checked(file, H5F_ACC_RDONLY);
    // One lookup by name, not a listing: an experiment may link 100,000 runs.
    const bool plain = !id.empty() && id.find('/') == std::string::npos && id != "." && id != "..";
    if (plain && H5Lexists(f.id(), "runs", H5P_DEFAULT) > 0 &&
        H5Lexists(f.id(), ("runs/" + id).c_str(), H5P_DEFAULT) > 0) {
      return read_run_from(f.id(), p, id, with_bytes, &points);
    }
    H5Eclear2(H5E_DEFAULT);
    ids = run_ids_in_file(f.id());
  }
  for (const auto& j : journal_ids(p)) ids.push_back(j);
  std::string known;
  for (const auto& i : ids) known += (known.empty() ? "" : ", ") + i;
  throw usage_error("run '" + id + "' is not in '" + file + "' (runs there: " + (known.empty() ? "none" : known) + ")");
}

std::vector<double> read_array(const std::string& file, const array_info& a, std::vector<std::uint64_t>* shape) {
  const auto path = dirname_of(file) + "/" + a.file;
  auto f = h5::open_read(path);
  return h5::read_all(f.id(), "data", shape);
}

std::string create_run(const experiment_paths& p, journal_writer& out) {
  int top = 0;
  dir_lock lock(p);
  if (exists(p.file)) {
    auto f = open_checked(p.file, H5F_ACC_RDONLY);
    for (const auto& id : run_ids_in_file(f.id())) top = std::max(top, run_number(id));
  }
  for (const auto& id : journal_ids(p)) top = std::max(top, run_number(id));
  for (const auto& id : list_dir(p.dir + "/arrays")) top = std::max(top, run_number(id));
  for (const auto& name : list_dir(p.dir + "/runs")) top = std::max(top, run_number(name));  // "RUN-7.h5"
  const auto id = "RUN-" + std::to_string(top + 1);
  out = journal_writer::create(p.journal(id));
  fsync_path(p.dir, true);  // the journal's name survives a crash of the machine too
  return id;
}

namespace {
// Why a run cannot be resumed now: who holds it, and what to do.
std::string still_running(const std::string& file, const run_info& r) {
  const auto journal = experiment_paths(file).journal(r.id);
  std::string hosts;
  for (const auto& h : std::set<std::string>(r.hosts.begin(), r.hosts.end())) hosts += (hosts.empty() ? "" : ", ") + h;
  std::string who;
  if (const long pid = lock_holder(journal); pid > 0) {
    who = "process " + std::to_string(pid) + " on " + (this_host().empty() ? "this host" : this_host()) + " holds it";
  } else {
    who = "a process on another host holds it";
  }
  return "run " + r.id + " ('" + r.name + "') of '" + file + "' is still running: its journal " + journal +
         " is locked (" + who + (hosts.empty() ? "" : "; the run started on " + hosts) +
         "). Wait for that job to end, or kill its processes (after `kill -9` of mpirun its ranks can live on), " +
         "then resume again";
}
}  // namespace

std::string find_resumable(const std::string& file, const std::string& name, const std::string& requested) {
  const auto runs = list_runs(file);
  if (requested.starts_with("slurm-job:")) {
    // A requeued job continues its own run, never another job's.
    const auto job = requested.substr(10);
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      const auto j = it->context.find("slurm_job_id");
      if (it->name == name && j != it->context.end() && j->second == job &&
          (it->status == "killed" || it->status == "failed")) {
        return it->id;
      }
    }
    return {};
  }
  if (requested.empty() || requested == "last") {
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      if (it->name != name) continue;
      // A later run still held by a live process (after kill -9 of mpirun its
      // ranks can live on, holding the journal's lock) is what the user means
      // to resume: starting a new run would abandon its finished partitions.
      if (it->status == "running") throw usage_error("--resume: " + still_running(file, *it));
      if (it->status == "killed" || it->status == "failed") return it->id;
    }
    return {};
  }
  for (const auto& r : runs) {
    if (r.id != requested) continue;
    if (r.name != name) {
      throw usage_error("--resume " + requested + ": that run is named '" + r.name + "', this program starts '" + name +
                        "'; resume it with the program that started it");
    }
    if (r.status == "succeeded") {
      throw usage_error("--resume " + requested + ": the run succeeded, there is nothing to resume; run without " +
                        "--resume to start a new run");
    }
    if (r.status == "running") throw usage_error("--resume " + requested + ": " + still_running(file, r));
    return r.id;
  }
  std::string known;
  for (const auto& r : runs) known += (known.empty() ? "" : ", ") + r.id + " (" + r.name + ", " + r.status + ")";
  throw usage_error("--resume " + requested + ": no such run in '" + file +
                    "' (runs there: " + (known.empty() ? "none" : known) + ")");
}

void reopen_run(const experiment_paths& p, const std::string& id, journal_writer& out) {
  dir_lock lock(p);
  if (exists(p.journal(id))) {
    throw usage_error("cannot resume run " + id + ": " +
                      (journal_is_live(p.journal(id)) ? "another job is running it" : "its journal was not recovered") +
                      " (" + p.journal(id) + ")");
  }
  const auto tmp = p.journal(id) + ".resuming";
  if (exists(tmp)) {
    if (journal_is_live(tmp))
      throw usage_error("cannot resume run " + id + ": another job is resuming it (" + tmp + ")");
    ::unlink(tmp.c_str());  // left by a resume that was killed before it began
  }
  out = journal_writer::create(tmp);
}

void commit_reopened(const experiment_paths& p, const std::string& id, journal_writer& j) {
  j.sync();
  dir_lock lock(p);
  if (exists(p.journal(id))) throw usage_error("cannot resume run " + id + ": another job resumed it meanwhile");
  j.rename_to(p.journal(id));
  fsync_path(p.dir, true);
}




std::vector<index_entry> experiment_index(const std::string& file) {
  experiment_paths p(file);
  std::vector<index_entry> out;
  if (check_file(file)) {
    int major = format_major;
    auto f = open_checked(file, H5F_ACC_RDONLY, &major);
    if (major >= 2) {
      out = read_index(p.index(), committed_index(f.id(), file));
    } else {
      for (const auto& id : run_ids_in_file(f.id())) out.push_back(summarize(read_run_from(f.id(), p, id, false)));
    }
  }
  // Live runs and killed ones not recovered yet: from their journals.
  for (const auto& id : journal_ids(p)) {
    try {
      run_record rec = replay(p.journal(id), nullptr, false);
      if (rec.info.id.empty()) continue;
      if (!journal_is_live(p.journal(id)) && rec.info.status == "running") {
        rec.info.status = "killed";
        rec.info.reason = "not recovered yet: run `rankflow recover " + file + "` or start a run to recover it";
      }
      std::erase_if(out, [&](const index_entry& e) { return e.info.id == rec.info.id; });
      out.push_back(summarize(rec));
    } catch (const storage_error&) {  // gone (its run just finished), or not a journal (format_error)
    }
  }
  std::sort(out.begin(), out.end(), [](const index_entry& x, const index_entry& y) { return run_order(x.info.id, y.info.id); });
  return out;
}

std::vector<std::string> recover(const std::string& file) {
  experiment_paths p(file);
  std::vector<std::string> done;
  if (!exists(p.dir)) return done;
  dir_lock lock(p);
  remove_stale_copies(p);
  for (const auto& id : journal_ids(p)) {
    const auto j = p.journal(id);
    if (journal_is_live(j)) continue;
    bool torn = false;
    run_record rec;
    try {
      rec = replay(j, &torn, false);
    } catch (const format_error&) {
      struct stat st {};
      // Shorter than the journal magic: killed while creating it; else not ours.
      if (::stat(j.c_str(), &st) == 0 && st.st_size < 8) ::unlink(j.c_str());
      continue;
    }
    if (rec.info.id.empty()) {  // killed before its first record: nothing to keep
      ::unlink(j.c_str());
      continue;
    }
    if (rec.info.status == "running" || rec.info.status.empty()) {
      rec.info.status = "killed";
      rec.info.reason = "the job ended without stopping the run (killed, crashed or out of time); recovered what it " +
                        std::string("had made durable") + (torn ? " (a record cut short by the kill was dropped)" : "");
      double last = rec.info.start_time;
      for (const auto& [path, f] : rec.fields) last = std::max(last, f.updated);
      rec.info.end_time = last;
    }
    write_run_file(p, rec, j);
    commit_runs_locked(p, {summarize(rec)});
    ::unlink(j.c_str());
    done.push_back(id);
  }
  return done;
}

}  // namespace rankflow::tracking
