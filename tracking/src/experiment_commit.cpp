// How a run enters an experiment (format 2; docs/design.md, "Experiments at
// scale"): its own run file, written whole and renamed into place; its index
// entry and its link, committed together under the sidecar's lock by
// replacing the small experiment file. Also the conversion of format 1 files
// and the rebuilding of the run index.
#include "experiment_io.hpp"

#include <rankflow/core/log.hpp>

#include <chrono>

#include "run_index.hpp"

namespace rankflow::tracking {

namespace {

std::size_t upgrade_locked(const experiment_paths& p);

/// Closes a file being written (a run file, the experiment file's next
/// version) after a failure. HDF5 1.10 frees a file's insides when the flush
/// in H5Fclose fails (a full disk) yet keeps its id, and closes that id again
/// at exit: a segfault in H5F__close_cb; an id left open after a failed flush
/// crashes there too. So the flush must not fail: the file (being thrown away;
/// its path is unlinked by the caller) gets /dev/null in place of its
/// descriptor, where every write succeeds and reads find zeros, and is then
/// flushed and closed normally. Only if even that flush fails is the id left
/// open (closing it twice is the sure crash).
void abandon_copy(handle& f) noexcept {
  if (!f) return;
  const hid_t id = f.release();
  const hid_t fapl = H5Fget_access_plist(id);
  void* vfd = nullptr;
  if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(id, fapl, &vfd) >= 0 && vfd != nullptr) {
    const int sink = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (sink >= 0) {
      ::dup2(sink, *static_cast<int*>(vfd));  // also frees the file's blocks once its path is unlinked
      ::close(sink);
    } else {
      [[maybe_unused]] const int rc = ::ftruncate(*static_cast<int*>(vfd), 0);
    }
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0) H5Fclose(id);
  H5Eclear2(H5E_DEFAULT);
}

/// Builds a new version of `target` in `tmp` (same directory) and renames it
/// over `target`: `open` makes the HDF5 file at `tmp` (a copy of the target, or
/// a new file), `fill` writes into it. Whatever fails, the temporary goes and
/// `target` is untouched; once renamed, the directory entry is fsync'd too.
void replace_file(const std::string& target, const std::string& tmp, const std::function<handle()>& open,
                  const std::function<void(hid_t)>& fill) {
  struct remove_tmp {
    const std::string& path;
    bool armed = true;
    ~remove_tmp() {
      if (armed) ::unlink(path.c_str());
    }
  } guard{tmp};
  {
    handle f;
    struct close_on_error {
      handle& f;
      ~close_on_error() { abandon_copy(f); }  // f is empty once closed below
    } closer{f};
    f = open();
    fill(f.id());
    check(H5Fflush(f.id(), H5F_SCOPE_GLOBAL), "H5Fflush", tmp);
    // Released before the check: a failed H5Fclose must not be retried by
    // the handle's destructor (see abandon_copy).
    const herr_t closed = H5Fclose(f.release());
    check(closed, "H5Fclose", tmp);
  }
  fsync_path(tmp, false);
  if (::rename(tmp.c_str(), target.c_str()) != 0) throw storage_error(sys_error("cannot replace", target));
  guard.armed = false;
  fsync_path(dirname_of(target), true);
}

std::string temp_for(const std::string& dir, const std::string& name) {
  return dir + "/." + name + ".tmp-" + safe_host() + "-" + std::to_string(::getpid());
}


/// The commit's one change besides links: the index's committed length.
void set_committed_index(hid_t f, std::uint64_t length) {
  if (H5Aexists(f, "index_bytes") > 0) check(H5Adelete(f, "index_bytes"), "H5Adelete", "index_bytes");
  attr_num(f, "index_bytes", static_cast<std::int64_t>(length));
}

/// Links run `id` from the experiment file `f` (to its run file), unless it
/// is linked already (a resumed or recovered run).
void link_run(hid_t f, const experiment_paths& p, const std::string& id) {
  const auto link = "runs/" + id;
  if (H5Lexists(f, link.c_str(), H5P_DEFAULT) > 0) return;
  auto lcpl = lcpl_intermediate();
  check(H5Lcreate_external(p.run_file_relative(id).c_str(), ("/runs/" + id).c_str(), f, link.c_str(), lcpl.id(),
                           H5P_DEFAULT),
        "H5Lcreate_external", link);
}

/// Where the experiment file's next version is written.
std::string experiment_temp(const experiment_paths& p) {
  return p.dir + "/" + temp_copy_prefix(p) + safe_host() + "-" + std::to_string(::getpid());
}

/// Converts a format 1 file (see upgrade). Each run is read whole (its
/// series' points, its files' bytes, its ledger's results) and written into
/// its own file; the linking file then replaces the old one in one rename.
std::size_t upgrade_locked(const experiment_paths& p) {
  std::vector<std::string> ids;
  std::vector<index_entry> entries;
  {
    int major = format_major;
    auto f = open_checked(p.file, H5F_ACC_RDONLY, &major);
    if (major >= 2) return 0;
    ids = run_ids_in_file(f.id());
    for (const auto& id : ids) {
      const run_record rec = read_run_from(f.id(), p, id, true);
      write_run_file(p, rec, "");
      entries.push_back(summarize(rec));
    }
  }
  const auto length = append_index(p.index(), 0, entries);
  const auto tmp = experiment_temp(p);
  replace_file(
      p.file, tmp, [&] { return create_experiment_file(tmp); },
      [&](hid_t f) {
        for (const auto& id : ids) link_run(f, p, id);
        set_committed_index(f, length);
      });
  log::info() << "upgraded '" << p.file << "' from format 1 to " << format_major << "." << format_minor << ": "
              << ids.size() << " run(s) moved into " << p.dir << "/runs/ (once; stops no longer copy the file)";
  return ids.size();
}

}  // namespace

/// The run's own file, written whole: no lock is needed, the id is the run's.
/// A stop costs what the run holds, however large the experiment is.
void write_run_file(const experiment_paths& p, const run_record& rec, const std::string& journal_path) {
  make_sidecar_dir(p.dir);
  const auto runs = p.dir + "/runs";
  if (::mkdir(runs.c_str(), 0755) != 0 && errno != EEXIST) throw storage_error(sys_error("cannot create", runs));
  const auto target = p.run_file(rec.info.id);
  const auto tmp = temp_for(runs, rec.info.id + ".h5");
  replace_file(
      target, tmp, [&] { return create_run_file(tmp, rec.info.id); },
      [&](hid_t f) {
        write_run(
            f, rec, p,
            [&](const file_info& fi) {
              return read_range(journal_path, static_cast<std::uint64_t>(fi.journal_offset), fi.size);
            },
            journal_path);
      });
}

/// The committed length of the run index, from the experiment file's root.
std::uint64_t committed_index(hid_t f, const std::string& file) {
  const auto n = read_attr_num<std::int64_t>(f, "index_bytes", 0);
  if (n < 0) throw format_error("'" + file + "' says its run index has " + std::to_string(n) + " bytes");
  return static_cast<std::uint64_t>(n);
}

/// With the sidecar's lock held: appends the runs' index entries and links
/// every run from a new copy of the experiment file (small: links and
/// attributes only), renamed over it. The copy's rename commits both.
void commit_runs_locked(const experiment_paths& p, const std::vector<index_entry>& entries) {
  std::uint64_t committed = 0;
  if (exists(p.file)) {
    int major = format_major;
    {
      auto f = open_checked(p.file, H5F_ACC_RDONLY, &major);
      if (major >= 2) committed = committed_index(f.id(), p.file);
    }
    if (major < 2) {
      upgrade_locked(p);  // the format 1 runs, each into its file and the index
      committed = committed_index(open_checked(p.file, H5F_ACC_RDONLY).id(), p.file);
    }
  }
  const auto length = append_index(p.index(), committed, entries);
  const auto tmp = experiment_temp(p);
  replace_file(
      p.file, tmp,
      [&] {
        if (!exists(p.file)) return create_experiment_file(tmp);
        copy_file(p.file, tmp);
        try {
          return open_checked(tmp, H5F_ACC_RDWR);
        } catch (const format_error& e) {
          std::string msg = e.what();
          for (auto at = msg.find(tmp); at != std::string::npos; at = msg.find(tmp)) msg.replace(at, tmp.size(), p.file);
          throw format_error(msg);
        }
      },
      [&](hid_t f) {
        for (const auto& e : entries) link_run(f, p, e.info.id);
        set_committed_index(f, length);
      });
}

void merge_run(const experiment_paths& p, const run_record& rec, const std::string& journal_path) {
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  const auto t0 = clock::now();
  write_run_file(p, rec, journal_path);
  const auto t1 = clock::now();
  dir_lock lock(p);
  const auto t2 = clock::now();
  commit_runs_locked(p, {summarize(rec)});
  // How long this stop waited for other jobs' commits: with many jobs in one
  // experiment (a Slurm array) the lock must cost each about one commit.
  log::debug() << "run " << rec.info.id << " stopped: run file " << ms(t0, t1) << " ms, waited " << ms(t1, t2)
               << " ms for the experiment's lock, commit " << ms(t2, clock::now()) << " ms";
}

std::size_t upgrade(const std::string& file) {
  experiment_paths p(file);
  if (!check_file(file)) return 0;
  dir_lock lock(p);
  return upgrade_locked(p);
}

std::size_t rebuild_index(const std::string& file) {
  experiment_paths p(file);
  if (!check_file(file)) return 0;
  dir_lock lock(p);
  std::vector<index_entry> entries;
  {
    int major = format_major;
    auto f = open_checked(file, H5F_ACC_RDONLY, &major);
    if (major < 2) return 0;
    for (const auto& id : run_ids_in_file(f.id())) entries.push_back(summarize(read_run_from(f.id(), p, id, false)));
  }
  // A new index from scratch, committed by the experiment file's rename:
  // a kill before it leaves the old (damaged) one, never a mix.
  const auto length = append_index(p.index(), 0, entries);
  const auto tmp = experiment_temp(p);
  replace_file(
      p.file, tmp,
      [&] {
        copy_file(p.file, tmp);
        return open_checked(tmp, H5F_ACC_RDWR);
      },
      [&](hid_t f) {
        set_committed_index(f, length);
      });
  return entries.size();
}

}  // namespace rankflow::tracking
