#include "run_index.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>

#include <rankflow/core/bytes.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/tracking/errors.hpp>

#include "journal.hpp"

namespace rankflow::tracking {

namespace {

constexpr char magic[8] = {'R', 'F', 'I', 'N', 'D', 'X', '0', '1'};
constexpr std::uint8_t entry_version = 1;

using detail::put;
using detail::put_str;

struct reader : detail::byte_reader<format_error> {
  reader(std::string_view d, std::size_t& pos) : byte_reader(d, pos, "run index record is truncated or damaged") {}
};

bool is_atom(field_type t) {
  switch (t) {
    case field_type::int_:
    case field_type::float_:
    case field_type::bool_:
    case field_type::string:
    case field_type::datetime:
    case field_type::string_set:
    case field_type::string_list:
      return true;
    default:
      return false;
  }
}

// A file descriptor that closes itself.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string index_entry::sweep() const {
  if (auto it = info.context.find("sweep"); it != info.context.end() && !it->second.empty()) return it->second;
  if (auto it = info.context.find("slurm_array_job_id"); it != info.context.end() && !it->second.empty()) {
    return "slurm-" + it->second;
  }
  return "";
}

namespace {

// At most this many bytes of a text value (a String, or a list's items) go
// into the index; the run's file keeps the whole value. One run's long text
// field must not make every query over 100,000 runs read megabytes.
constexpr std::size_t index_text_cap = 256;

std::string clip_utf8(const std::string& s, std::size_t cap) {
  if (s.size() <= cap) return s;
  std::size_t n = cap;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // not inside a character
  return s.substr(0, n);
}

// What of sys/provenance/ the index keeps: what runs are found by (which
// revision, a dirty tree, which build, a warning). The environment, hosts,
// modules and versions (kilobytes per run) stay in the run's file.
bool indexed_path(const std::string& path) {
  if (!path.starts_with("sys/provenance/")) return true;
  return path == "sys/provenance/source/revision" || path == "sys/provenance/source/dirty" ||
         path == "sys/provenance/executable/hash" || path == "sys/provenance/warning";
}

}  // namespace

index_entry summarize(const run_record& rec) {
  index_entry e;
  e.info = rec.info;
  for (const auto& [path, f] : rec.fields) {
    if (!indexed_path(path)) continue;
    if (is_atom(f.type)) {
      atom_value a = f.atom;
      a.s = clip_utf8(a.s, index_text_cap);
      std::size_t kept = 0, bytes = 0;
      while (kept < a.list.size() && bytes + a.list[kept].size() <= index_text_cap) bytes += a.list[kept++].size();
      a.list.resize(kept);
      e.scalars.emplace_back(path, std::move(a));
    } else if (is_series(f.type)) {
      e.series.push_back({path, f.type, f.points, f.last_step, f.summary});
      e.series.back().summary.last_text = clip_utf8(f.summary.last_text, index_text_cap);
    }
  }
  return e;
}

std::string encode_entry(const index_entry& e) {
  std::string out;
  put<std::uint8_t>(out, entry_version);
  encode_info(e.info, out);  // a begin record's fields; then what the end adds
  put_str(out, e.info.reason);
  put<double>(out, e.info.end_time);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(e.scalars.size()));
  for (const auto& [path, a] : e.scalars) {
    put_str(out, path);
    encode_atom(a, out);
  }
  put<std::uint32_t>(out, static_cast<std::uint32_t>(e.series.size()));
  for (const auto& s : e.series) {
    put_str(out, s.path);
    put<std::uint8_t>(out, static_cast<std::uint8_t>(s.type));
    put<std::uint64_t>(out, s.count);
    put<double>(out, s.last_step);
    put<std::uint8_t>(out, s.summary.has_number ? 1 : 0);
    put<double>(out, s.summary.last);
    put<double>(out, s.summary.min);
    put<double>(out, s.summary.max);
    put_str(out, s.summary.last_text);
  }
  return out;
}

index_entry decode_entry(std::string_view data) {
  std::size_t pos = 0;
  reader r(data, pos);
  if (const auto v = r.get<std::uint8_t>(); v != entry_version) {
    throw format_error("run index record of version " + std::to_string(v) + " (this rankflow reads version " +
                       std::to_string(entry_version) + ")");
  }
  index_entry e;
  e.info = decode_info(data, pos);
  e.info.reason = r.str();
  e.info.end_time = r.get<double>();
  const std::size_t scalars = r.count(5);  // a path's length and an atom's type at least
  e.scalars.reserve(scalars);
  for (std::size_t k = 0; k < scalars; ++k) {
    auto path = r.str();
    e.scalars.emplace_back(std::move(path), decode_atom(data, pos));
  }
  const std::size_t series = r.count(4 + 1 + 8 + 8 + 1 + 24 + 4);
  e.series.resize(series);
  for (auto& s : e.series) {
    s.path = r.str();
    s.type = static_cast<field_type>(r.get<std::uint8_t>());
    if (!is_series(s.type)) r.fail();
    s.count = r.get<std::uint64_t>();
    s.last_step = r.get<double>();
    s.summary.has_number = r.get<std::uint8_t>() != 0;
    s.summary.last = r.get<double>();
    s.summary.min = r.get<double>();
    s.summary.max = r.get<double>();
    s.summary.last_text = r.str();
  }
  if (r.left() != 0) r.fail();
  return e;
}

std::uint64_t append_index(const std::string& path, std::uint64_t committed, const std::vector<index_entry>& entries) {
  fd_guard f{::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)};
  if (f.fd < 0) throw storage_error(detail::sys_error("cannot open the run index", path));
  // An index shorter than what was committed was cut or deleted by someone
  // else: appending after zeros would hide every earlier run from readers.
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw storage_error(detail::sys_error("cannot stat the run index", path));
  if (static_cast<std::uint64_t>(st.st_size) < committed) {
    throw format_error("the experiment's run index '" + path + "' holds " + std::to_string(st.st_size) +
                       " bytes, fewer than the " + std::to_string(committed) +
                       " its experiment file committed (cut or deleted): `rankflow upgrade` rebuilds it from the "
                       "run files; this run's journal is kept until then");
  }
  // What lies past the committed length was appended by a stop that was
  // killed before it committed: no reader counts it, so it goes.
  if (committed < sizeof magic) committed = 0;
  if (::ftruncate(f.fd, static_cast<off_t>(committed)) != 0) {
    throw storage_error(detail::sys_error("cannot truncate the run index", path));
  }
  std::string buf;
  if (committed == 0) buf.assign(magic, sizeof magic);
  for (const auto& e : entries) {
    const std::string payload = encode_entry(e);
    const auto len = static_cast<std::uint32_t>(payload.size());
    const std::uint32_t crc = crc32c(payload.data(), payload.size());
    put(buf, len);
    put(buf, crc);
    buf += payload;
  }
  if (::lseek(f.fd, static_cast<off_t>(committed), SEEK_SET) < 0) {
    throw storage_error(detail::sys_error("cannot seek in the run index", path));
  }
  write_all(f.fd, buf.data(), buf.size(), path, "the run index");
  if (::fsync(f.fd) != 0) throw storage_error(detail::sys_error("cannot fsync the run index", path));
  return committed + buf.size();
}

std::vector<index_entry> read_index(const std::string& path, std::uint64_t committed) {
  std::vector<index_entry> out;
  if (committed == 0) return out;
  auto damaged = [&](const std::string& why) {
    return format_error("the experiment's run index '" + path + "' " + why +
                        "; `rankflow upgrade` rebuilds it from the run files");
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw damaged(std::string("is missing (") + std::strerror(errno) + ")");
  if (static_cast<std::uint64_t>(st.st_size) < committed) throw damaged("is shorter than the experiment file says");
  const std::string data = read_range(path, 0, committed);
  if (data.size() < sizeof magic || std::memcmp(data.data(), magic, sizeof magic) != 0) {
    throw damaged("is not a rankflow run index (bad magic)");
  }
  std::unordered_map<std::string, std::size_t> where;  // run id -> position in `out`
  std::size_t pos = sizeof magic;
  while (pos < data.size()) {
    if (data.size() - pos < 8) throw damaged("ends inside a record header");
    std::uint32_t len = 0, crc = 0;
    std::memcpy(&len, data.data() + pos, 4);
    std::memcpy(&crc, data.data() + pos + 4, 4);
    pos += 8;
    if (len > data.size() - pos) throw damaged("has a record longer than the index");
    const std::string_view payload(data.data() + pos, len);
    if (crc32c(payload.data(), payload.size()) != crc) throw damaged("has a damaged record (CRC mismatch)");
    pos += len;
    index_entry e;
    try {
      e = decode_entry(payload);
    } catch (const format_error& x) {
      throw damaged(std::string("holds a record it cannot read: ") + x.what());
    }
    auto [it, fresh] = where.emplace(e.info.id, out.size());
    if (fresh) {
      out.push_back(std::move(e));
    } else {
      out[it->second] = std::move(e);
    }
  }
  return out;
}

}  // namespace rankflow::tracking
