// The byte encoding of tracking operations: journal records and messages to
// rank 0 (see docs/format.md, "Journals"). decode() trusts nothing: a
// truncated or damaged record is a format_error.
#include <rankflow/tracking/detail/store.hpp>

#include <rankflow/core/bytes.hpp>

namespace rankflow::tracking {

// ---------------------------------------------------------------- encoding --

namespace {

using detail::put;
using detail::put_array;
using detail::put_raw;
using detail::put_str;
using detail::put_strs;

struct reader : detail::byte_reader<format_error> {
  reader(std::string_view d, std::size_t& pos) : byte_reader(d, pos, "tracking record is truncated or damaged") {}
};

template <class Out>
void put_atom(Out& out, const atom_value& a) {
  put<std::uint8_t>(out, static_cast<std::uint8_t>(a.type));
  switch (a.type) {
    case field_type::int_:
    case field_type::bool_:
      put<std::int64_t>(out, a.i);
      break;
    case field_type::float_:
    case field_type::datetime:
      put<double>(out, a.d);
      break;
    case field_type::string:
      put_str(out, a.s);
      break;
    case field_type::string_set:
    case field_type::string_list:
      put_strs(out, a.list);
      break;
    default:
      break;
  }
}

atom_value get_atom(reader& r) {
  atom_value a;
  a.type = static_cast<field_type>(r.get<std::uint8_t>());
  switch (a.type) {
    case field_type::int_:
    case field_type::bool_:
      a.i = r.get<std::int64_t>();
      break;
    case field_type::float_:
    case field_type::datetime:
      a.d = r.get<double>();
      break;
    case field_type::string:
      a.s = r.str();
      break;
    case field_type::string_set:
    case field_type::string_list:
      a.list = r.strs();
      break;
    default:
      throw format_error("tracking record holds an unknown atom type " + std::to_string(int(a.type)));
  }
  return a;
}

template <class Out>
void put_info(Out& out, const run_info& i) {
  put_str(out, i.id);
  put_str(out, i.name);
  put_str(out, i.status);
  put<double>(out, i.start_time);
  put<std::int32_t>(out, i.ranks);
  put_strs(out, i.hosts);
  put_str(out, i.command_line);
  put_str(out, i.version);
  put_str(out, i.mode);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(i.context.size()));
  for (const auto& [k, v] : i.context) {
    put_str(out, k);
    put_str(out, v);
  }
}

template <class Out>
void put_ledger(Out& out, const ledger_batch& b) {
  const auto& c = b.call;
  put<std::int64_t>(out, c.call);
  // The call's signature rides after a NUL in the step's string, so the
  // record layout (and journals written before it) stay as they were.
  put_str(out, c.signature.empty() ? c.step : c.step + '\0' + c.signature);
  put<std::int64_t>(out, c.items);
  put<std::int64_t>(out, c.chunk);
  put<std::int64_t>(out, c.partitions);
  put<std::uint64_t>(out, b.entries.size());
  for (const auto& e : b.entries) {
    put<std::int64_t>(out, e.partition);
    put<std::int64_t>(out, e.first);
    put<std::int64_t>(out, e.last);
    put<std::int32_t>(out, e.rank);
    put<double>(out, e.start);
    put<double>(out, e.end);
    put<std::int32_t>(out, e.attempts);
    put<std::uint8_t>(out, e.ok ? 1 : 0);
    put_str(out, e.error);
    put<std::uint64_t>(out, e.result.size());
    put_raw(out, e.result.data(), e.result.size());
  }
}

void get_info(reader& r, run_info& i) {
  i.id = r.str();
  i.name = r.str();
  i.status = r.str();
  i.start_time = r.get<double>();
  i.ranks = r.get<std::int32_t>();
  i.hosts = r.strs();
  i.command_line = r.str();
  i.version = r.str();
  i.mode = r.str();
  i.context.clear();
  const auto n = r.get<std::uint32_t>();
  for (std::uint32_t k = 0; k < n; ++k) {
    auto key = r.str();
    i.context[key] = r.str();
  }
}

// A ledger record's call and entries; result bytes are copied from `data`.
void get_ledger(reader& r, std::string_view data, std::size_t& pos, ledger_batch& b) {
  auto& c = b.call;
  c.call = r.get<std::int64_t>();
  c.step = r.str();
  if (const auto nul = c.step.find('\0'); nul != std::string::npos) {
    c.signature = c.step.substr(nul + 1);
    c.step.resize(nul);
  }
  c.items = r.get<std::int64_t>();
  c.chunk = r.get<std::int64_t>();
  c.partitions = r.get<std::int64_t>();
  const auto n = r.get<std::uint64_t>();
  // An entry takes at least 61 bytes: more entries than that cannot be
  // there, and resizing to a damaged count would allocate ~150 bytes each.
  constexpr std::size_t min_entry = 3 * 8 + 4 + 2 * 8 + 4 + 1 + 4 + 8;
  if (n > r.left() / min_entry) throw format_error("tracking record is truncated or damaged");
  auto& v = b.entries;
  v.resize(n);
  for (auto& e : v) {
    e.call = c.call;
    e.partition = r.get<std::int64_t>();
    e.first = r.get<std::int64_t>();
    e.last = r.get<std::int64_t>();
    e.rank = r.get<std::int32_t>();
    e.start = r.get<double>();
    e.end = r.get<double>();
    e.attempts = r.get<std::int32_t>();
    e.ok = r.get<std::uint8_t>() != 0;
    e.error = r.str();
    const auto size = r.get<std::uint64_t>();
    if (size > data.size() - pos) throw format_error("tracking record is truncated or damaged");
    e.result.assign(data.data() + pos, size);
    pos += size;
  }
}

}  // namespace

template <class Out>
void encode_to(const op& o, Out& out) {
  put<std::uint8_t>(out, static_cast<std::uint8_t>(o.kind));
  put<std::int32_t>(out, o.rank);
  put<double>(out, o.time);
  put_str(out, o.path);
  switch (o.kind) {
    case op_kind::begin:
      put_info(out, o.info);
      break;
    case op_kind::end:
      put_str(out, o.info.status);
      put_str(out, o.info.reason);
      put<double>(out, o.info.end_time);
      break;
    case op_kind::assign:
      put_atom(out, o.atom);
      break;
    case op_kind::append: {
      const auto& p = o.points;
      const auto n = p.size();
      put<std::uint8_t>(out, static_cast<std::uint8_t>(p.type));
      put<std::uint64_t>(out, n);
      put_array(out, p.steps);
      put_array(out, p.timestamps);
      if (p.type == field_type::float_series) put_array(out, p.f);
      if (p.type == field_type::int_series) put_array(out, p.i);
      if (p.type == field_type::string_series) {
        for (const auto& s : p.s) put_str(out, s);
      }
      break;
    }
    case op_kind::add:
      put_strs(out, o.items);
      break;
    case op_kind::file:
      put_str(out, o.file.filename);
      put<std::uint64_t>(out, o.file.data.size());
      put_raw(out, o.file.data.data(), o.file.data.size());
      break;
    case op_kind::array:
      put_str(out, o.array.dtype);
      put<std::uint32_t>(out, static_cast<std::uint32_t>(o.array.shape.size()));
      put_array(out, o.array.shape);
      put_str(out, o.array.file);
      break;
    case op_kind::ledger:
      put_ledger(out, o.ledger);
      break;
    case op_kind::ledger_restart:
      put<std::int64_t>(out, o.ledger.call.call);
      put_strs(out, o.items);
      break;
  }
}

void encode(const op& o, std::string& out) { encode_to(o, out); }
void encode_atom(const atom_value& a, std::string& out) { put_atom(out, a); }
atom_value decode_atom(std::string_view data, std::size_t& pos) {
  reader r(data, pos);
  return get_atom(r);
}
void encode_info(const run_info& i, std::string& out) { put_info(out, i); }
run_info decode_info(std::string_view data, std::size_t& pos) {
  reader r(data, pos);
  run_info i;
  get_info(r, i);
  return i;
}
void encode(const op& o, bytes& out) { encode_to(o, out); }

op decode(std::string_view data, std::size_t& pos) {
  op o;
  decode_into(data, pos, o);
  return o;
}

void decode_into(std::string_view data, std::size_t& pos, op& o) {
  reader r(data, pos);
  const auto kind = r.get<std::uint8_t>();
  if (kind < 1 || kind > 9) throw format_error("tracking record of unknown kind " + std::to_string(kind));
  o.kind = static_cast<op_kind>(kind);
  o.rank = r.get<std::int32_t>();
  o.time = r.get<double>();
  o.path = r.str();
  switch (o.kind) {
    case op_kind::begin:
      get_info(r, o.info);
      break;
    case op_kind::end:
      o.info.status = r.str();
      o.info.reason = r.str();
      o.info.end_time = r.get<double>();
      break;
    case op_kind::assign:
      o.atom = get_atom(r);
      break;
    case op_kind::append: {
      auto& p = o.points;
      p.type = static_cast<field_type>(r.get<std::uint8_t>());
      if (!is_series(p.type)) throw format_error("append record with a non-series type");
      const auto n = r.get<std::uint64_t>();
      if (n > data.size()) throw format_error("tracking record is truncated or damaged");
      r.array(p.steps, n);
      r.array(p.timestamps, n);
      p.f.clear();
      p.i.clear();
      p.s.clear();
      if (p.type == field_type::float_series) r.array(p.f, n);
      if (p.type == field_type::int_series) r.array(p.i, n);
      if (p.type == field_type::string_series) {
        p.s.reserve(std::min<std::uint64_t>(n, r.left() / 4));
        for (std::uint64_t k = 0; k < n; ++k) p.s.push_back(r.str());
      }
      break;
    }
    case op_kind::add:
      o.items = r.strs();
      break;
    case op_kind::file: {
      o.file.filename = r.str();
      const auto n = r.get<std::uint64_t>();
      if (n > data.size() - pos) throw format_error("tracking record is truncated or damaged");
      o.file.journal_offset = static_cast<std::int64_t>(pos);  // relative to `data`; the journal rebases it
      o.file.size = n;
      o.file.data.assign(data.data() + pos, n);
      pos += n;
      break;
    }
    case op_kind::array: {
      o.array.dtype = r.str();
      const auto n = r.get<std::uint32_t>();
      r.array(o.array.shape, n);
      o.array.file = r.str();
      break;
    }
    case op_kind::ledger:
      get_ledger(r, data, pos, o.ledger);
      break;
    case op_kind::ledger_restart: {
      o.ledger.call = {};
      o.ledger.entries.clear();
      o.ledger.call.call = r.get<std::int64_t>();
      if (o.ledger.call.call < 1) throw format_error("tracking record restarts call #" + std::to_string(o.ledger.call.call));
      o.items = r.strs();
      break;
    }
  }
}

}  // namespace rankflow::tracking
