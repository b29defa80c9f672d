// The append-only operation log behind every live run.
//
// A run's operations are appended to `<experiment>.d/<id>.journal` as records
// [u32 length][u32 CRC-32C][payload] and fsync'd at wait(); the HDF5 file is a
// view built from the journal when the run stops (or when a killed run is
// recovered). A record cut short by a kill fails its length or CRC check and
// ends the replay: everything before it is kept.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <rankflow/tracking/detail/store.hpp>

namespace rankflow::tracking {

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;

/// Appends records to a journal and holds an exclusive flock on it for as long
/// as the writer lives, which is how readers tell a live run from a dead one.
class journal_writer {
 public:
  journal_writer() = default;
  /// Creates `path` (it must not exist: run ids are unique).
  static journal_writer create(const std::string& path);
  journal_writer(journal_writer&& o) noexcept;
  journal_writer& operator=(journal_writer&& o) noexcept;
  ~journal_writer();

  /// Buffers one record; returns the file offset its payload will have.
  std::uint64_t append(const std::string& payload);
  /// Hands buffered records to the kernel (survives kill -9 of this process).
  void flush();
  /// flush() + fdatasync (survives a crash of the machine).
  void sync();
  bool dirty() const noexcept { return !buf_.empty() || unsynced_; }
  /// Records appended but not yet handed to the kernel.
  bool buffered() const noexcept { return !buf_.empty(); }
  const std::string& path() const noexcept { return path_; }
  /// Renames the journal file (it stays open and locked).
  void rename_to(const std::string& path);
  void close();

 private:
  int fd_ = -1;
  std::string path_;
  std::string buf_;
  [[noreturn]] void fail(const std::string& why);
  void check_usable() const;
  std::uint64_t size_ = 0;  ///< bytes in the file plus bytes buffered
  bool unsynced_ = false;
  std::string failed_;  ///< why the last write failed; the writer refuses use after that
};

/// A journal read back: its operations in order, with file artifacts' offsets
/// made absolute in the journal file.
struct journal_contents {
  std::vector<op> ops;
  bool torn = false;  ///< the last record was cut short (the writer was killed mid-write)
};
/// Calls fn(op) for every intact record in order, reading the journal through
/// one reused window (no copy of the whole file: memory stays flat however
/// many points a run has). File artifacts come with absolute offsets and no
/// bytes. Returns true when the last record was cut short. `fn` returns false
/// to stop early. Throws format_error when the file is not a journal.
bool scan_journal(const std::string& path, const std::function<bool(op&)>& fn);

/// Every intact record, in memory. `head_only` stops after the first (the
/// run's begin record).
journal_contents read_journal(const std::string& path, bool head_only = false);

/// Writes all of p[0, n) to fd (retrying short writes); throws storage_error
/// "cannot write <what>" naming `path`.
void write_all(int fd, const char* p, std::size_t n, const std::string& path, const char* what = "journal");

/// Reads `n` bytes at `offset` of a file (an artifact kept in a journal).
std::string read_range(const std::string& path, std::uint64_t offset, std::uint64_t n);

/// True when some process holds the journal's writer lock (its run is live).
bool journal_is_live(const std::string& path);

/// The process on this host holding an flock on `path` (from /proc/locks),
/// or 0 when none is seen here (no lock, or one held from another host over
/// a network file system). For messages: who to wait for or kill.
long lock_holder(const std::string& path);

/// This host's name ("" when unknown).
std::string this_host();

// ---- the sidecar's journals (experiment.cpp), private to run tracking

struct experiment_paths;

/// Reserves a new run id ("RUN-<n>", n one more than any id in the file or
/// its sidecar) and creates its journal, under the sidecar's lock so jobs
/// sharing a file never get the same id. Returns the id.
std::string create_run(const experiment_paths& p, journal_writer& out);

/// Resuming run `id` takes two steps, so that a kill in between never lets an
/// incomplete journal replace the run in the file: reopen_run creates a new
/// journal under a temporary name (`<id>.journal.resuming`; refused with
/// usage_error when another job is running or resuming the run), the caller
/// writes everything the run held into it, and commit_reopened fsyncs it and
/// gives it the journal's name.
void reopen_run(const experiment_paths& p, const std::string& id, journal_writer& out);
void commit_reopened(const experiment_paths& p, const std::string& id, journal_writer& j);

}  // namespace rankflow::tracking
