// The pieces of the _rankflow extension module (the Python package rankflow
// wraps it): the Runtime as Python sees it, and the binders of each part.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rankflow/rankflow.hpp>

namespace rankflow::python {

namespace py = pybind11;

/// rankflow.Runtime: owns the C++ Runtime and the argv it parsed.
class py_runtime {
 public:
  explicit py_runtime(std::vector<std::string> argv);
  /// The Runtime; usage_error once close() ran.
  Runtime& rt();
  /// Finalises MPI (collective). Runs still open are stopped first (failed,
  /// with `reason`, when it is not empty), in the order they started, the
  /// same on every rank. The Runtime is unusable afterwards.
  void close(const std::string& reason = "");
  /// What close() must do before MPI goes: end an object that holds MPI
  /// resources (a Run). Returns a key for forget().
  std::uint64_t at_close(std::function<void(const std::string& reason)> f);
  void forget(std::uint64_t key) { closers_.erase(key); }
  bool closed() const noexcept { return !rt_; }
  /// argv without rankflow's flags (what sys.argv becomes).
  std::vector<std::string> remaining;

 private:
  std::vector<std::string> args_;
  std::vector<char*> ptrs_;
  int argc_ = 0;
  char** argv_ = nullptr;
  std::unique_ptr<Runtime> rt_;
  std::map<std::uint64_t, std::function<void(const std::string&)>> closers_;
  std::uint64_t next_closer_ = 0;
};

/// Calls fn(arg) for item i (the caller holds the GIL); returns the encoded result.
/// A Python exception becomes python_exception carrying its traceback.
/// With `spread`, arg is a tuple of the arguments (fn(*arg)).
std::string call_python(const py::object& fn, py::handle arg, std::int64_t i, bool spread = false);

void bind_errors(py::module_& m);
void bind_maps(py::module_& m, py::class_<py_runtime>& cls);
void bind_tasks(py::module_& m, py::class_<py_runtime>& cls);
void bind_tracking(py::module_& m, py::class_<py_runtime>& cls);

}  // namespace rankflow::python
