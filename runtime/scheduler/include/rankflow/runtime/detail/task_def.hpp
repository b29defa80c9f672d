// The machinery behind define() and submit(): how a task's callable is
// wrapped, its arguments encoded and substituted, and how futures reach
// rank 0's engine. Not for users' code; included by rankflow/runtime/tasks.hpp.
#pragma once

#include <rankflow/runtime/task_types.hpp>

namespace rankflow {

namespace detail {

/// An artifact could not be substituted (missing, wrong type, unreadable
/// file): the task fails at once, without retries.
class substitution_error : public usage_error {
 public:
  using usage_error::usage_error;
};

/// Readable C++ type name ("std::string", "std::vector<double>").
std::string type_name(const std::type_info& t);

enum class arg_kind : std::uint8_t { value = 0, artifact = 1 };
struct arg_view {
  arg_kind kind = arg_kind::value;
  const char* data = nullptr;
  std::size_t size = 0;
};

/// Splits an encoded argument block; throws usage_error when malformed.
std::vector<arg_view> split_args(const char* data, std::size_t n);
/// Appends one argument: kind, length, payload written by `write`.
template <class Write>
void append_arg(bytes& out, arg_kind kind, Write&& write) {
  out.push_back(static_cast<char>(kind));
  const std::size_t at = out.size();
  out.resize(at + sizeof(std::uint64_t));
  write(out);
  const std::uint64_t len = out.size() - at - sizeof(std::uint64_t);
  std::memcpy(out.data() + at, &len, sizeof len);
}
void encode_artifact_ref(bytes& out, const artifact_ref& a);

/// The field an artifact() argument names, read from its source run's file.
/// `task` and `arg` name the argument in errors. Throws substitution_error.
tracking::field_record load_artifact(const arg_view& a, const std::optional<source>& fallback, const std::string& task,
                                     std::size_t arg, std::string* where);

/// The artifact's value as the parameter's type P, or a substitution_error
/// naming both types.
template <class P>
P artifact_as(const tracking::field_record& f, const std::string& what) {
  using tracking::field_record;
  const auto t = f.type;
  auto wrong = [&]() -> substitution_error {
    return substitution_error(what + " is a " + rankflow::type_name(t) +
                              " field, which cannot fill a parameter of type " + type_name(typeid(P)));
  };
  if constexpr (std::is_same_v<P, std::string>) {
    if (t == field_type::string) return f.atom.s;
    if (t == field_type::file) return f.file.data;
  } else if constexpr (std::is_same_v<P, bool>) {
    if (t == field_type::bool_) return f.atom.i != 0;
  } else if constexpr (std::is_floating_point_v<P>) {
    if (t == field_type::float_) return static_cast<P>(f.atom.d);
    if (t == field_type::int_) return static_cast<P>(f.atom.i);
  } else if constexpr (std::is_integral_v<P>) {
    if (t == field_type::int_) return static_cast<P>(f.atom.i);
  } else if constexpr (std::is_same_v<P, std::vector<std::string>>) {
    if (t == field_type::string_list || t == field_type::string_set) return f.atom.list;
    if (t == field_type::string_series) return f.series.s;
  } else if constexpr (std::is_same_v<P, std::set<std::string>>) {
    if (t == field_type::string_list || t == field_type::string_set) return {f.atom.list.begin(), f.atom.list.end()};
  } else if constexpr (std::is_same_v<P, std::vector<double>>) {
    if (t == field_type::float_series) return f.series.f;
    if (t == field_type::int_series) return {f.series.i.begin(), f.series.i.end()};
    if (t == field_type::array) return f.series.f;  // load_artifact reads the array's data into series.f
  } else if constexpr (std::is_same_v<P, std::vector<std::int64_t>>) {
    if (t == field_type::int_series) return f.series.i;
  } else if constexpr (std::is_same_v<P, timestamp>) {
    if (t == field_type::datetime) return from_unix_seconds(f.atom.d);
  } else if constexpr (std::is_same_v<P, std::vector<char>>) {
    if (t == field_type::file) return {f.file.data.begin(), f.file.data.end()};
  }
  throw wrong();
}

/// A task as every rank registers it: its signature (for checks on rank 0)
/// and a type-erased call that decodes arguments and encodes the result.
struct task_def {
  std::string name;
  std::vector<std::type_index> params;
  std::vector<std::string> param_names;
  std::type_index result = typeid(void);
  std::type_index result_vector = typeid(void);  ///< std::vector<result>: what a mapreduce combiner takes
  std::string result_name;
  /// Decodes the arguments (substituting artifacts), runs the function and
  /// appends the encoded result to `out`.
  std::function<void(task_context&, const std::vector<arg_view>&, const std::optional<source>&, bytes& out)> invoke;
  /// Encoded results -> the encoding of std::vector<result> (mapreduce).
  std::function<void(const std::vector<const std::string*>&, bytes& out)> join;
  task_options defaults;
};

// ---- signatures of callables
template <class F>
struct fn_traits : fn_traits<decltype(&std::remove_cvref_t<F>::operator())> {};
template <class R, class... A>
struct fn_traits<R (*)(A...)> {
  using result = R;
  using args = std::tuple<A...>;
};
template <class R, class... A>
struct fn_traits<R (*)(A...) noexcept> : fn_traits<R (*)(A...)> {};
template <class R, class... A>
struct fn_traits<R(A...)> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...)> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...) const> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...) noexcept> : fn_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct fn_traits<R (C::*)(A...) const noexcept> : fn_traits<R (*)(A...)> {};

template <class Tuple>
struct takes_context : std::false_type {};
template <class First, class... Rest>
struct takes_context<std::tuple<First, Rest...>> : std::is_same<std::remove_cvref_t<First>, task_context> {};

template <class Tuple>
struct drop_first {
  using type = std::tuple<>;
};
template <class First, class... Rest>
struct drop_first<std::tuple<First, Rest...>> {
  using type = std::tuple<Rest...>;
};

/// Stand-in for a void result on the wire.
struct void_result {
  template <class Ar>
  void serialize(Ar&, unsigned) {}
};
template <class R>
using wire_t = std::conditional_t<std::is_void_v<R>, void_result, std::decay_t<R>>;

template <class P>
std::decay_t<P> decode_param(const arg_view& a, const std::optional<source>& from, const std::string& task,
                             std::size_t i) {
  using T = std::decay_t<P>;
  if (a.kind == arg_kind::artifact) {
    std::string where;
    const auto field = load_artifact(a, from, task, i, &where);
    return artifact_as<T>(field, where);
  }
  return decode<T>(a.data, a.size);
}

template <class F, class R, class... P, std::size_t... I>
void invoke_with(F& f, bool with_ctx, task_context& ctx, const std::vector<arg_view>& args,
                 const std::optional<source>& from, bytes& out, std::index_sequence<I...>) {
  (void)with_ctx;
  auto call = [&]() -> decltype(auto) {
    if constexpr (takes_context<std::tuple<P...>>::value) {
      return f(ctx, decode_param<std::tuple_element_t<I + 1, std::tuple<P...>>>(args[I], from, *ctx.name_, I)...);
    } else {
      return f(decode_param<std::tuple_element_t<I, std::tuple<P...>>>(args[I], from, *ctx.name_, I)...);
    }
  };
  if constexpr (std::is_void_v<R>) {
    call();
    encode(out, void_result{});
  } else {
    encode(out, wire_t<R>(call()));
  }
}

template <class Tuple>
struct param_list;
template <class... P>
struct param_list<std::tuple<P...>> {
  static std::vector<std::type_index> types() { return {std::type_index(typeid(std::decay_t<P>))...}; }
  static std::vector<std::string> names() { return {type_name(typeid(std::decay_t<P>))...}; }
};

template <class F>
task_def make_task_def(std::string name, F fn, task_options defaults) {
  using traits = fn_traits<F>;
  using R = typename traits::result;
  using all = typename traits::args;
  constexpr bool ctx = takes_context<all>::value;
  using params = std::conditional_t<ctx, typename drop_first<all>::type, all>;
  task_def d;
  d.name = std::move(name);
  d.params = param_list<params>::types();
  d.param_names = param_list<params>::names();
  d.result = typeid(wire_t<R>);
  d.result_vector = typeid(std::vector<wire_t<R>>);
  d.result_name = std::is_void_v<R> ? "void" : type_name(typeid(wire_t<R>));
  d.defaults = std::move(defaults);
  d.invoke = [f = std::move(fn)](task_context& c, const std::vector<arg_view>& args, const std::optional<source>& from,
                                 bytes& out) mutable {
    constexpr std::size_t n = std::tuple_size_v<params>;
    if (args.size() != n) {
      throw usage_error("task '" + *c.name_ + "' takes " + std::to_string(n) + " arguments, got " +
                        std::to_string(args.size()));
    }
    [&]<class... P>(std::tuple<P...>*) {
      invoke_with<F, R, P...>(f, takes_context<all>::value, c, args, from, out, std::make_index_sequence<n>{});
    }(static_cast<all*>(nullptr));
  };
  d.join = [](const std::vector<const std::string*>& parts, bytes& out) {
    std::vector<wire_t<R>> v;
    v.reserve(parts.size());
    for (const auto* p : parts) v.push_back(decode<wire_t<R>>(p->data(), p->size()));
    encode(out, v);
  };
  return d;
}

// ---- encoding a submitted argument for parameter `i` of a task (rank 0)
[[noreturn]] void throw_arg_mismatch(const task_def& d, std::size_t i, const std::string& given);

template <class A>
void encode_arg(bytes& out, const task_def& d, std::size_t i, const A& a) {
  using T = std::decay_t<A>;
  if constexpr (std::is_same_v<T, artifact_ref>) {
    append_arg(out, arg_kind::artifact, [&](bytes& o) { encode_artifact_ref(o, a); });
  } else {
    const std::type_index want = d.params[i];
    if (want == typeid(T)) {
      append_arg(out, arg_kind::value, [&](bytes& o) { encode(o, a); });
    } else if constexpr (std::is_convertible_v<const T&, std::string_view> && !std::is_same_v<T, std::string>) {
      if (want != typeid(std::string)) throw_arg_mismatch(d, i, type_name(typeid(T)));
      append_arg(out, arg_kind::value, [&](bytes& o) { encode(o, std::string(std::string_view(a))); });
    } else if constexpr (std::is_arithmetic_v<T>) {
      // 3 for a double parameter, 0.5f for a double, ...: convert as C++ would.
      bool done = false;
      auto as = [&]<class U>(U*) {
        if (!done && want == typeid(U)) {
          append_arg(out, arg_kind::value, [&](bytes& o) { encode(o, static_cast<U>(a)); });
          done = true;
        }
      };
      as(static_cast<double*>(nullptr));
      as(static_cast<float*>(nullptr));
      as(static_cast<int*>(nullptr));
      as(static_cast<long*>(nullptr));
      as(static_cast<long long*>(nullptr));
      as(static_cast<unsigned*>(nullptr));
      as(static_cast<unsigned long*>(nullptr));
      as(static_cast<unsigned long long*>(nullptr));
      as(static_cast<short*>(nullptr));
      as(static_cast<bool*>(nullptr));
      if (!done) throw_arg_mismatch(d, i, type_name(typeid(T)));
    } else {
      throw_arg_mismatch(d, i, type_name(typeid(T)));
    }
  }
}

/// Encodes `args` for parameters [first, first + sizeof...(A)) of `d`.
template <class... A>
void encode_args(bytes& out, const task_def& d, std::size_t first, const A&... args) {
  std::size_t i = first;
  (encode_arg(out, d, i++, args), ...);
}

/// Per-submit changes to a task's defaults (require(), with(), retries(), from()).
struct overrides {
  std::optional<resources> need;
  std::vector<std::string> labels;
  std::optional<int> retries;
  std::optional<double> backoff_s;
  std::optional<source> from;
  void merge(const overrides& o);
};

struct task_rec;
struct group_state;
class task_engine;
struct call_access;

/// What futures and groups reach their engine through: cleared when the
/// drive() ends, after which they read the results they hold.
struct engine_handle {
  task_engine* engine = nullptr;
};

/// rank 0: waits for `rec` (until `deadline`, or forever when null); true when it ended.
bool wait_task(const engine_handle& e, const std::shared_ptr<task_rec>& rec,
               const std::chrono::steady_clock::time_point* deadline);
task_status status_of(const engine_handle& e, const task_rec& rec);
/// The result's bytes of a task that succeeded; throws its task_error otherwise.
const std::string& result_of(const engine_handle& e, const task_rec& rec);
int rank_of(const engine_handle& e, const task_rec& rec);
int attempts_of(const engine_handle& e, const task_rec& rec);
std::uint64_t id_of(const task_rec& rec);
const std::string& name_of(const task_rec& rec);

}  // namespace detail

}  // namespace rankflow
