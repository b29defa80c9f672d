// Python values as bytes, for results that travel between ranks and for the
// ledger. Plain numbers, booleans, None, str and bytes take a one-byte tag and
// their raw bytes (no pickle round trip for the common trivial result);
// anything else is pickled with protocol 5 (NumPy arrays keep their buffer in
// one piece). Every function here needs the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace rankflow::python {

namespace py = pybind11;

/// A Python exception raised inside rankflow's C++ code (a user's function,
/// pickle), carried as text: the exception, with the traceback, formatted on
/// the rank it happened on. Python objects cannot cross the engine (the GIL is
/// released there) nor ranks.
class python_exception : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Looks up what this file uses from Python (pickle, traceback). Called once,
/// when the module is imported.
void init_values();

/// The Python exception being handled, formatted with its traceback ("Traceback
/// (most recent call last): ... ValueError: boom"), and cleared.
std::string format_exception(py::error_already_set& e);

/// Encodes v (see the file comment). `what` names the value in an error
/// ("the result of item 7"). Throws python_exception when v cannot be pickled.
std::string encode_value(py::handle v, const std::string& what);
py::object decode_value(const std::string& b);

/// A value standing for an exception (mapreduce's reduce_fn): `why` as text.
std::string failed_value(const std::string& why);
bool is_failed(const std::string& b) noexcept;
std::string failure_of(const std::string& b);

/// A Python value as a C++ value that mapreduce's tree and the ledger can
/// hold: its encoding; empty means "no value" (mapreduce of an empty range).
struct value {
  std::string b;
  template <class Ar>
  void serialize(Ar& ar, unsigned) {
    ar& b;
  }
};

}  // namespace rankflow::python
