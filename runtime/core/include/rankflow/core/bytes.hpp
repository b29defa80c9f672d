// The one byte codec of rankflow's own binary records and messages (journal
// records, tracking messages, replies): fixed-size values as their bytes,
// strings and lists length-prefixed with a uint32. The reader trusts nothing:
// every read is bounds-checked, and a count read from the data is checked
// against the bytes left before anything is sized by it, so damaged input
// costs an exception, never memory or a read past the end.
//
// Layouts are little-endian (the static_assert below); the byte order of every
// record is documented in docs/format.md.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace rankflow::detail {

static_assert(std::endian::native == std::endian::little, "rankflow's records assume a little-endian machine");

template <class Out>
void put_raw(Out& out, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  out.insert(out.end(), c, c + n);
}
template <class T, class Out>
void put(Out& out, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  put_raw(out, &v, sizeof(T));
}
template <class Out>
void put_str(Out& out, std::string_view s) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
  put_raw(out, s.data(), s.size());
}
template <class Out>
void put_strs(Out& out, const std::vector<std::string>& v) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(v.size()));
  for (const auto& s : v) put_str(out, s);
}
/// The elements only; the count is the caller's (it may be shared by arrays).
template <class T, class Out>
void put_array(Out& out, const std::vector<T>& v) {
  put_raw(out, v.data(), v.size() * sizeof(T));
}

/// Reads from `data` at `pos` (advanced as it reads). `Error` is the exception
/// a short or damaged record throws, with `what` as its message: each layer
/// names its own failure (tracking: format_error).
template <class Error>
class byte_reader {
 public:
  byte_reader(std::string_view data, std::size_t& pos, const char* what) : d_(data), pos_(pos), what_(what) {}

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, d_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = get<std::uint32_t>();
    need(n);
    std::string s(d_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<std::string> strs() {
    const auto n = count(4);  // each string takes at least its 4-byte length
    std::vector<std::string> v;
    v.reserve(n);
    for (std::size_t k = 0; k < n; ++k) v.push_back(str());
    return v;
  }
  template <class T>
  void array(std::vector<T>& v, std::size_t n) {
    // n comes from the record: compare before multiplying, which could wrap.
    if (n > left() / sizeof(T)) fail();
    v.resize(n);
    if (n) std::memcpy(v.data(), d_.data() + pos_, n * sizeof(T));  // an empty vector's data() may be null
    pos_ += n * sizeof(T);
  }
  /// A uint32 element count whose elements take at least `min_bytes` each:
  /// refused when the bytes left cannot hold that many.
  std::size_t count(std::size_t min_bytes) {
    const std::size_t n = get<std::uint32_t>();
    if (min_bytes && n > left() / min_bytes) fail();
    return n;
  }
  /// `n` raw bytes, as a view into the data.
  std::string_view bytes(std::size_t n) {
    need(n);
    std::string_view s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  /// Bytes not read yet.
  std::size_t left() const noexcept { return d_.size() - pos_; }
  [[noreturn]] void fail() const { throw Error(what_); }

 private:
  void need(std::size_t n) const {
    if (n > d_.size() - pos_) fail();  // pos_ <= size always: no wrap
  }
  std::string_view d_;
  std::size_t& pos_;
  const char* what_;
};

}  // namespace rankflow::detail
