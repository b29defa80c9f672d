#include "journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rankflow::tracking {

namespace {

constexpr char magic[8] = {'R', 'F', 'J', 'R', 'N', 'L', '0', '1'};
constexpr std::size_t record_header = 8;

using detail::sys_error;  // core's (error.hpp)

// CRC-32C (Castagnoli): the SSE4.2 instruction where the CPU has it (about
// 10 GB/s, so checksumming never shows in a profile), else a table.
std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

std::uint32_t crc32c_table(const unsigned char* p, std::size_t n, std::uint32_t crc) {
  static const auto table = make_table();
  crc = ~crc;
  while (n--) crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(const unsigned char* p, std::size_t n, std::uint32_t crc) {
  std::uint64_t c = ~crc;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}
#endif

}  // namespace

void write_all(int fd, const char* p, std::size_t n, const std::string& path, const char* what) {
  while (n > 0) {
    const auto w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw storage_error(sys_error(std::string("cannot write ") + what, path));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return crc32c_hw(p, n, crc);
#endif
  return crc32c_table(p, n, crc);
}

journal_writer journal_writer::create(const std::string& path) {
  journal_writer j;
  j.fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (j.fd_ < 0) throw storage_error(sys_error("cannot create journal", path));
  if (::flock(j.fd_, LOCK_EX | LOCK_NB) != 0) throw storage_error(sys_error("cannot lock journal", path));
  j.path_ = path;
  j.buf_.assign(magic, sizeof magic);
  j.size_ = sizeof magic;
  j.flush();
  return j;
}

journal_writer::journal_writer(journal_writer&& o) noexcept
    : fd_(o.fd_),
      path_(std::move(o.path_)),
      buf_(std::move(o.buf_)),
      size_(o.size_),
      unsynced_(o.unsynced_),
      failed_(std::move(o.failed_)) {
  o.fd_ = -1;
}

journal_writer& journal_writer::operator=(journal_writer&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    buf_ = std::move(o.buf_);
    size_ = o.size_;
    unsynced_ = o.unsynced_;
    failed_ = std::move(o.failed_);
    o.fd_ = -1;
  }
  return *this;
}

journal_writer::~journal_writer() {
  if (fd_ < 0) return;
  try {
    if (failed_.empty()) flush();
  } catch (...) {  // a destructor must not throw; wait() reports write errors
  }
  ::close(fd_);
}

std::uint64_t journal_writer::append(const std::string& payload) {
  check_usable();
  if (payload.size() > UINT32_MAX) {
    throw storage_error("a tracking record of " + std::to_string(payload.size()) + " bytes is too large for journal '" +
                        path_ + "' (4 GiB at most)");
  }
  char h[record_header];
  const auto len = static_cast<std::uint32_t>(payload.size());
  const auto crc = crc32c(payload.data(), payload.size());
  std::memcpy(h, &len, 4);
  std::memcpy(h + 4, &crc, 4);
  const auto at = size_ + record_header;
  size_ += record_header + payload.size();
  if (payload.size() >= (std::size_t{64} << 10)) {
    // A large record (a block of points) goes to the kernel straight from
    // the caller's buffer: copying it into ours would only touch more memory.
    flush();
    iovec iov[2] = {{h, record_header}, {const_cast<char*>(payload.data()), payload.size()}};
    std::size_t left = record_header + payload.size();
    while (left > 0) {
      const auto w = ::writev(fd_, iov, 2);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail(sys_error("cannot write journal", path_));
      left -= static_cast<std::size_t>(w);
      auto done = static_cast<std::size_t>(w);
      for (auto& v : iov) {
        const auto d = std::min(done, v.iov_len);
        v.iov_base = static_cast<char*>(v.iov_base) + d;
        v.iov_len -= d;
        done -= d;
      }
    }
    unsynced_ = true;
    return at;
  }
  if (buf_.capacity() < (std::size_t{1} << 20)) buf_.reserve(std::size_t{1} << 20);
  buf_.append(h, record_header);
  buf_.append(payload);
  // Small records are gathered; a full buffer goes to the kernel (a kill
  // loses at most what was not yet asked to be durable anyway).
  if (buf_.size() >= (std::size_t{1} << 20)) flush();
  return at;
}

void journal_writer::flush() {
  check_usable();
  if (buf_.empty() || fd_ < 0) return;
  try {
    write_all(fd_, buf_.data(), buf_.size(), path_);
  } catch (const storage_error& e) {
    fail(e.what());
  }
  buf_.clear();
  unsynced_ = true;
}

void journal_writer::rename_to(const std::string& path) {
  check_usable();
  if (::rename(path_.c_str(), path.c_str()) != 0) throw storage_error(sys_error("cannot rename journal to", path));
  path_ = path;
}

void journal_writer::sync() {
  flush();
  if (unsynced_ && fd_ >= 0) {
    if (::fdatasync(fd_) != 0) fail(sys_error("cannot fsync journal", path_));
    unsynced_ = false;
  }
}

// After a failed write the file may hold part of a record, and the offsets
// this writer hands out would no longer match it: it refuses all later use
// rather than write after a hole (what was durable stays recoverable).
void journal_writer::fail(const std::string& why) {
  failed_ = why;
  throw storage_error(why);
}

void journal_writer::check_usable() const {
  if (!failed_.empty()) throw storage_error("journal '" + path_ + "' is unusable after an earlier error: " + failed_);
}

void journal_writer::close() {
  if (fd_ < 0) return;
  flush();
  ::close(fd_);
  fd_ = -1;
}

bool scan_journal(const std::string& path, const std::function<bool(op&)>& fn) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw storage_error(sys_error("cannot open journal", path));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};
  // A window over the file: [pos, len) of `buf` holds the bytes at file
  // offset `at`... onwards. Refilled in place, grown only for a larger record.
  thread_local std::string buf;
  struct stat st {};
  ::fstat(fd, &st);
  // The window: 4 MiB, or the whole journal when it is smaller (fresh memory
  // is not free: never touch more than the file needs).
  const std::size_t window = std::clamp<std::size_t>(static_cast<std::size_t>(st.st_size), 64, std::size_t{4} << 20);
  std::size_t pos = 0, len = 0;
  std::uint64_t at = 0;  // file offset of buf[pos]
  bool eof = false;
  auto need = [&](std::size_t n) {
    if (len - pos >= n) return true;
    if (pos > 0) {
      std::memmove(buf.data(), buf.data() + pos, len - pos);
      len -= pos;
      pos = 0;
    }
    if (buf.size() < std::max(n, window)) buf.resize(std::max(n, window));
    while (len < n && !eof) {
      const auto r = ::read(fd, buf.data() + len, buf.size() - len);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw storage_error(sys_error("cannot read journal", path));
      if (r == 0) eof = true;
      len += static_cast<std::size_t>(r);
    }
    return len - pos >= n;
  };
  if (!need(sizeof magic) || std::memcmp(buf.data(), magic, sizeof magic) != 0) {
    throw format_error("'" + path + "' is not a rankflow journal (bad magic)");
  }
  pos += sizeof magic;
  at += sizeof magic;
  op o;
  for (;;) {
    if (!need(record_header)) return len != pos;  // clean end, or a torn header
    std::uint32_t n = 0, crc = 0;
    std::memcpy(&n, buf.data() + pos, 4);
    std::memcpy(&crc, buf.data() + pos + 4, 4);
    // A zeroed or garbled tail (a crash of the machine, not of the process)
    // can pass a CRC check with length 0, or claim more than the file holds.
    if (n == 0 || n > static_cast<std::uint64_t>(st.st_size) - at - record_header) return true;
    if (!need(record_header + n)) return true;
    const char* payload = buf.data() + pos + record_header;
    if (crc32c(payload, n) != crc) return true;
    std::size_t p = 0;
    try {
      decode_into(std::string_view(payload, n), p, o);
    } catch (const format_error&) {
      return true;  // intact bytes that are not a record: treat as the end
    }
    if (o.kind == op_kind::file) {
      o.file.journal_offset += static_cast<std::int64_t>(at + record_header);
      o.file.data.clear();
    }
    pos += record_header + n;
    at += record_header + n;
    if (!fn(o)) return false;
  }
}

journal_contents read_journal(const std::string& path, bool head_only) {
  journal_contents jc;
  jc.torn = scan_journal(path, [&](op& o) {
    jc.ops.push_back(o);
    return !head_only;
  });
  return jc;
}

std::string read_range(const std::string& path, std::uint64_t offset, std::uint64_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw storage_error(sys_error("cannot open", path));
  std::string out(n, '\0');
  std::uint64_t got = 0;
  while (got < n) {
    const auto r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      ::close(fd);
      throw storage_error("'" + path + "' ends before the artifact it should hold");
    }
    got += static_cast<std::uint64_t>(r);
  }
  ::close(fd);
  return out;
}

bool journal_is_live(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // Any failure to take the lock counts as live: merging a live run's
  // journal as killed would be far worse than leaving a dead one alone.
  const bool live = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
  ::close(fd);
  return live;
}

long lock_holder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  // Lines like "3: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's
  // line has "->" after the number and is not the holder.
  char dev[64];
  std::snprintf(dev, sizeof dev, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long long>(st.st_ino));
  std::ifstream in("/proc/locks");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string num, kind, adv, mode, pid, id;
    ls >> num >> kind;
    if (kind == "->") continue;
    ls >> adv >> mode >> pid >> id;
    if (kind == "FLOCK" && id == dev) return std::atol(pid.c_str());
  }
  return 0;
}

std::string this_host() {
  char h[256] = {};
  if (::gethostname(h, sizeof h - 1) != 0) return {};
  return h;
}

}  // namespace rankflow::tracking
