#include "journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace rankflow::tracking {

namespace {

constexpr char magic[8] = {'R', 'F', 'J', 'R', 'N', 'L', '0', '1'};
constexpr std::size_t record_header = 8;

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

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

void write_all(int fd, const char* p, std::size_t n, const std::string& path) {
  while (n > 0) {
    const auto w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw storage_error(sys_error("cannot write journal", path));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

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
    : fd_(o.fd_), path_(std::move(o.path_)), buf_(std::move(o.buf_)), size_(o.size_), unsynced_(o.unsynced_) {
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
    o.fd_ = -1;
  }
  return *this;
}

journal_writer::~journal_writer() {
  if (fd_ < 0) return;
  try {
    flush();
  } catch (...) {  // a destructor must not throw; wait() reports write errors
  }
  ::close(fd_);
}

std::uint64_t journal_writer::append(const std::string& payload) {
  char h[record_header];
  const auto len = static_cast<std::uint32_t>(payload.size());
  const auto crc = crc32c(payload.data(), payload.size());
  std::memcpy(h, &len, 4);
  std::memcpy(h + 4, &crc, 4);
  buf_.append(h, record_header);
  const auto at = size_ + record_header;
  buf_.append(payload);
  size_ += record_header + payload.size();
  // Large buffers go to the kernel at once: memory stays bounded, and a kill
  // loses at most what was not yet asked to be durable anyway.
  if (buf_.size() >= (std::size_t{8} << 20)) flush();
  return at;
}

void journal_writer::flush() {
  if (buf_.empty() || fd_ < 0) return;
  write_all(fd_, buf_.data(), buf_.size(), path_);
  buf_.clear();
  unsynced_ = true;
}

void journal_writer::sync() {
  flush();
  if (unsynced_ && fd_ >= 0) {
    if (::fdatasync(fd_) != 0) throw storage_error(sys_error("cannot fsync journal", path_));
    unsynced_ = false;
  }
}

void journal_writer::close() {
  if (fd_ < 0) return;
  sync();
  ::close(fd_);
  fd_ = -1;
}

namespace {
std::string read_file(const std::string& path, std::size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw storage_error(sys_error("cannot open journal", path));
  std::string out;
  char buf[1 << 16];
  while (out.size() < limit) {
    const auto r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  return out;
}
}  // namespace

journal_contents read_journal(const std::string& path, bool head_only) {
  const auto data = read_file(path, head_only ? (std::size_t{1} << 20) : SIZE_MAX);
  if (data.size() < sizeof magic || std::memcmp(data.data(), magic, sizeof magic) != 0) {
    throw format_error("'" + path + "' is not a rankflow journal (bad magic)");
  }
  journal_contents jc;
  std::size_t pos = sizeof magic;
  while (pos < data.size()) {
    if (data.size() - pos < record_header) {
      jc.torn = true;
      break;
    }
    std::uint32_t len = 0, crc = 0;
    std::memcpy(&len, data.data() + pos, 4);
    std::memcpy(&crc, data.data() + pos + 4, 4);
    if (data.size() - pos - record_header < len || crc32c(data.data() + pos + record_header, len) != crc) {
      jc.torn = true;
      break;
    }
    const std::string_view payload(data.data() + pos + record_header, len);
    std::size_t p = 0;
    auto o = decode(payload, p);
    if (o.kind == op_kind::file) {
      o.file.journal_offset += static_cast<std::int64_t>(pos + record_header);
      o.file.data.clear();
    }
    jc.ops.push_back(std::move(o));
    pos += record_header + len;
    if (head_only) break;
  }
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
  const bool live = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return live;
}

}  // namespace rankflow::tracking
