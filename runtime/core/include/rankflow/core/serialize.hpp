// Turning values into bytes and back, for results that cross ranks.
//
// Trivially copyable types (and vectors of them) are copied as raw bytes: a
// result vector of a million doubles is one memcpy, not a million archive
// calls. Everything else goes through Boost.Serialization's binary archive, so
// std::string, std::vector, std::pair, std::map and any user type with a
// serialize() member work; include the matching <boost/serialization/...>
// header for containers not included here.
#pragma once

#include <cstddef>
#include <cstring>
#include <istream>
#include <ostream>
#include <streambuf>
#include <type_traits>
#include <vector>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/map.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

namespace rankflow {

/// A byte buffer as sent between ranks.
using bytes = std::vector<char>;

namespace detail {

/// streambuf that appends to a `bytes` (no intermediate std::string copy).
class bytes_sink final : public std::streambuf {
 public:
  explicit bytes_sink(bytes& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.insert(out_.end(), s, s + n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  bytes& out_;
};

/// streambuf reading from a fixed memory range.
class bytes_source final : public std::streambuf {
 public:
  bytes_source(const char* data, std::size_t n) {
    char* p = const_cast<char*>(data);  // NOLINT: get area is never written through
    setg(p, p, p + n);
  }
};

template <class T>
inline constexpr bool is_raw_v = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>;

template <class T>
struct is_raw_vector : std::false_type {};
template <class T, class A>
struct is_raw_vector<std::vector<T, A>> : std::bool_constant<is_raw_v<T> && !std::is_same_v<T, bool>> {};

constexpr auto archive_flags = boost::archive::no_header | boost::archive::no_codecvt;

}  // namespace detail

/// Appends the encoding of `v` to `out`.
template <class T>
void encode(bytes& out, const T& v) {
  if constexpr (detail::is_raw_v<T>) {
    const auto* p = reinterpret_cast<const char*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  } else if constexpr (detail::is_raw_vector<T>::value) {
    const std::uint64_t n = v.size();
    const auto* pn = reinterpret_cast<const char*>(&n);
    out.insert(out.end(), pn, pn + sizeof n);
    const auto* p = reinterpret_cast<const char*>(v.data());
    out.insert(out.end(), p, p + n * sizeof(typename T::value_type));
  } else {
    detail::bytes_sink sink(out);
    std::ostream os(&sink);
    boost::archive::binary_oarchive ar(os, detail::archive_flags);
    ar << v;
  }
}

/// Decodes a value written by encode() from [data, data + n).
template <class T>
T decode(const char* data, std::size_t n) {
  if constexpr (detail::is_raw_v<T>) {
    T v;
    std::memcpy(static_cast<void*>(&v), data, sizeof(T));
    return v;
  } else if constexpr (detail::is_raw_vector<T>::value) {
    std::uint64_t count = 0;
    std::memcpy(&count, data, sizeof count);
    T v(count);
    if (count) std::memcpy(static_cast<void*>(v.data()), data + sizeof count, count * sizeof(typename T::value_type));
    (void)n;
    return v;
  } else {
    detail::bytes_source src(data, n);
    std::istream is(&src);
    boost::archive::binary_iarchive ar(is, detail::archive_flags);
    T v;
    ar >> v;
    return v;
  }
}

}  // namespace rankflow
