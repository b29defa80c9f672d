#include "values.hpp"

#include <cstring>

namespace rankflow::python {

namespace {

// Tags of encode_value. Raw numbers are host-endian: every rank of one job
// runs the same binary on the same architecture.
constexpr char tag_failed = '!';  // failed_value: never decoded to a Python value
constexpr char tag_none = 'n', tag_true = 'T', tag_false = 'F', tag_float = 'd', tag_int = 'q', tag_str = 's',
               tag_bytes = 'b', tag_pickle = 'p';

// Python objects looked up once, at import (init_values), with the GIL held
// and on one thread: a function-local static initialised on first use would
// deadlock, since the import inside it releases the GIL while its guard
// blocks a second thread that holds the GIL. Never destroyed, so nothing is
// released after the interpreter has finalised.
py::object* pickle_dumps_ = nullptr;
py::object* pickle_loads_ = nullptr;
py::object* format_exception_ = nullptr;
py::object& pickle_dumps() { return *pickle_dumps_; }
py::object& pickle_loads() { return *pickle_loads_; }

}  // namespace

void init_values() {
  pickle_dumps_ = new py::object(py::module_::import("pickle").attr("dumps"));
  pickle_loads_ = new py::object(py::module_::import("pickle").attr("loads"));
  format_exception_ = new py::object(py::module_::import("traceback").attr("format_exception"));
}

std::string format_exception(py::error_already_set& e) {
  std::string text;
  try {
    py::list lines = (*format_exception_)(e.type(), e.value(), e.trace());
    for (auto& l : lines) text += py::cast<std::string>(l);
  } catch (...) {
    text = e.what();
  }
  e.restore();
  PyErr_Clear();
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string encode_value(py::handle v, const std::string& what) {
  std::string out;
  if (v.is_none()) return std::string(1, tag_none);
  if (PyBool_Check(v.ptr())) return std::string(1, v.ptr() == Py_True ? tag_true : tag_false);
  if (PyFloat_CheckExact(v.ptr())) {
    const double d = PyFloat_AS_DOUBLE(v.ptr());
    out.resize(1 + sizeof d);
    out[0] = tag_float;
    std::memcpy(out.data() + 1, &d, sizeof d);
    return out;
  }
  if (PyLong_CheckExact(v.ptr())) {
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow == 0 && !(x == -1 && PyErr_Occurred())) {
      const std::int64_t i = x;
      out.resize(1 + sizeof i);
      out[0] = tag_int;
      std::memcpy(out.data() + 1, &i, sizeof i);
      return out;
    }
    PyErr_Clear();  // a big int: pickle keeps it exact
  }
  if (PyUnicode_CheckExact(v.ptr())) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(v.ptr(), &n);
    if (s) {
      out.reserve(1 + static_cast<std::size_t>(n));
      out.push_back(tag_str);
      out.append(s, static_cast<std::size_t>(n));
      return out;
    }
    PyErr_Clear();  // lone surrogates: pickle handles them
  }
  if (PyBytes_CheckExact(v.ptr())) {
    out.push_back(tag_bytes);
    out.append(PyBytes_AS_STRING(v.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(v.ptr())));
    return out;
  }
  try {
    py::bytes b = pickle_dumps()(v, 5);
    char* data = nullptr;
    Py_ssize_t n = 0;
    PyBytes_AsStringAndSize(b.ptr(), &data, &n);
    out.reserve(1 + static_cast<std::size_t>(n));
    out.push_back(tag_pickle);
    out.append(data, static_cast<std::size_t>(n));
    return out;
  } catch (py::error_already_set& e) {
    const std::string why = format_exception(e);
    const auto last = why.rfind('\n');
    throw python_exception(
        what + " (" + py::str(py::type::of(v).attr("__qualname__")).cast<std::string>() +
        ") cannot be sent between ranks: " + (last == std::string::npos ? why : why.substr(last + 1)) +
        ". Return values pickle can serialise (numbers, str, tuples, lists, dicts, NumPy arrays, "
        "module-level classes)");
  }
}

std::string failed_value(const std::string& why) { return tag_failed + why; }
bool is_failed(const std::string& b) noexcept { return !b.empty() && b[0] == tag_failed; }
std::string failure_of(const std::string& b) { return b.substr(1); }

py::object decode_value(const std::string& b) {
  if (b.empty()) return py::none();
  const char* d = b.data() + 1;
  const std::size_t n = b.size() - 1;
  switch (b[0]) {
    case tag_none:
      return py::none();
    case tag_true:
      return py::bool_(true);
    case tag_false:
      return py::bool_(false);
    case tag_float: {
      double x = 0;
      std::memcpy(&x, d, sizeof x);
      return py::float_(x);
    }
    case tag_int: {
      std::int64_t x = 0;
      std::memcpy(&x, d, sizeof x);
      return py::int_(x);
    }
    case tag_str:
      return py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(d, static_cast<Py_ssize_t>(n), "strict"));
    case tag_bytes:
      return py::bytes(d, n);
    case tag_pickle:
      return pickle_loads()(py::memoryview::from_memory(d, static_cast<Py_ssize_t>(n)));
    default:
      throw std::runtime_error("rankflow: malformed Python value (tag " + std::to_string(static_cast<int>(b[0])) + ")");
  }
}

}  // namespace rankflow::python
