// _rankflow: the C++ runtime as a Python extension (pybind11). One
// implementation: every call goes to the same rankflow::Runtime a C++ program
// uses; only Python values are encoded on the way (values.hpp).
#include "module.hpp"

#include <pybind11/stl.h>

#include "values.hpp"

namespace rankflow::python {

py_runtime::py_runtime(std::vector<std::string> argv) : args_(std::move(argv)) {
  if (args_.empty()) args_.emplace_back("python3");
  for (auto& a : args_) ptrs_.push_back(a.data());
  ptrs_.push_back(nullptr);
  argc_ = static_cast<int>(args_.size());
  argv_ = ptrs_.data();
  rt_ = std::make_unique<Runtime>(argc_, argv_);
  for (int i = 0; i < argc_; ++i) remaining.emplace_back(argv_[i]);
}

Runtime& py_runtime::rt() {
  if (!rt_) throw usage_error("this rankflow.Runtime was closed (MPI is finalised): make one Runtime per program");
  return *rt_;
}

std::uint64_t py_runtime::at_close(std::function<void(const std::string&)> f) {
  closers_.emplace(++next_closer_, std::move(f));
  return next_closer_;
}

void py_runtime::close(const std::string& reason) {
  auto closers = std::move(closers_);
  closers_.clear();
  for (auto& [key, f] : closers) f(reason);
  rt_.reset();
}

std::string call_python(const py::object& fn, py::handle arg, std::int64_t i, bool spread) {
  try {
    return encode_value(spread ? fn(*py::reinterpret_borrow<py::tuple>(arg)) : fn(arg),
                        "the result of item " + std::to_string(i));
  } catch (py::error_already_set& e) {
    throw python_exception(format_exception(e));
  }
}

}  // namespace rankflow::python

namespace py = pybind11;
using rankflow::python::py_runtime;

PYBIND11_MODULE(_rankflow, m) {
  m.doc() = "rankflow's C++ runtime (use the rankflow package)";
  rankflow::python::init_values();
  rankflow::python::bind_errors(m);

  py::class_<rankflow::range>(m, "range", "The half-open index range [first, last), as Python's range(first, last).")
      .def(py::init<std::int64_t, std::int64_t>(), py::arg("first"), py::arg("last"))
      .def_readonly("first", &rankflow::range::first)
      .def_readonly("last", &rankflow::range::last)
      .def("__len__", &rankflow::range::size)
      .def("__repr__", [](const rankflow::range& r) {
        return "rankflow.range(" + std::to_string(r.first) + ", " + std::to_string(r.last) + ")";
      });

  py::class_<py_runtime> rt(m, "Runtime");
  rt.def(py::init<std::vector<std::string>>(), py::arg("argv"))
      .def_readonly("remaining_argv", &py_runtime::remaining)
      .def_property_readonly("rank", [](py_runtime& s) { return s.rt().rank(); })
      .def_property_readonly("size", [](py_runtime& s) { return s.rt().size(); })
      .def_property_readonly("is_scheduler", [](py_runtime& s) { return s.rt().is_scheduler(); })
      .def_property_readonly("host", [](py_runtime& s) { return s.rt().host(); })
      .def_property_readonly("hosts", [](py_runtime& s) { return s.rt().hosts(); })
      .def_property_readonly("closed", &py_runtime::closed)
      .def("close", &py_runtime::close, py::arg("reason") = "",
           "Finalises MPI (collective: every rank calls it). Open runs are stopped first, or failed with `reason`.");
  rankflow::python::bind_maps(m, rt);
  rankflow::python::bind_tasks(m, rt);
  rankflow::python::bind_tracking(m, rt);

  // An uncaught Python exception on one rank must not leave the others
  // waiting in a collective call forever (rankflow/__init__.py's excepthook).
  m.def("_abort", [](int code) { MPI_Abort(MPI_COMM_WORLD, code); });
  m.def("_initialized", [] {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    return up && !down;
  });
}
