// rankflow's error hierarchy as Python exceptions, with the same messages:
//   rankflow.Error (RuntimeError)
//     UsageError (also ValueError), ResourceError, MPIError, Interrupted,
//     TaskError (rank, host, item, partition, attempts, step, task_id, remote_traceback),
//     StorageError (also OSError) > FormatError, TrackingError > TypeError (also TypeError)
#include <rankflow/tracking/errors.hpp>

#include "module.hpp"
#include "values.hpp"

namespace rankflow::python {

namespace {

PyObject* make(py::module_& m, const char* name, PyObject* bases, const char* doc) {
  const std::string full = std::string("rankflow.") + name;
  PyObject* t = PyErr_NewExceptionWithDoc(full.c_str(), doc, bases, nullptr);
  if (!t) throw py::error_already_set();
  m.add_object(name, py::handle(t));  // the module holds the reference for the process
  return t;
}

PyObject* tuple_of(std::initializer_list<PyObject*> items) {
  PyObject* t = PyTuple_New(static_cast<Py_ssize_t>(items.size()));
  Py_ssize_t i = 0;
  for (PyObject* o : items) {
    Py_INCREF(o);
    PyTuple_SET_ITEM(t, i++, o);
  }
  return t;
}

PyObject *Error, *UsageError, *ResourceError, *MPIError, *Interrupted, *TaskError, *StorageError, *FormatError,
    *TrackingError, *TypeError_;

// "... Traceback ... ValueError: boom (rankflow::python::python_exception)":
// the C++ type name says nothing to a Python user.
std::string without_cpp_type(std::string s) {
  for (const char* suffix : {" (rankflow::python::python_exception)"}) {
    for (auto at = s.find(suffix); at != std::string::npos; at = s.find(suffix)) s.erase(at, std::strlen(suffix));
  }
  return s;
}

void raise(PyObject* type, const std::string& what) { PyErr_SetString(type, without_cpp_type(what).c_str()); }

void raise_task_error(const task_error& e) {
  const auto& d = e.info();
  py::object err =
      py::reinterpret_steal<py::object>(PyObject_CallFunction(TaskError, "s", without_cpp_type(e.what()).c_str()));
  if (!err) return;  // the call set a Python error already
  err.attr("step") = d.step;
  err.attr("rank") = d.rank;
  err.attr("host") = d.host;
  err.attr("item") = d.item;
  err.attr("partition") = d.partition;
  err.attr("attempts") = d.attempts;
  err.attr("task_id") = d.task_id;
  // The remote exception as the worker formatted it (its traceback), when
  // the failure was a Python exception.
  const std::string original = without_cpp_type(d.message);
  err.attr("remote_traceback") = original;
  PyErr_SetObject(TaskError, err.ptr());
}

}  // namespace

void bind_errors(py::module_& m) {
  Error = make(m, "Error", PyExc_RuntimeError, "Base of every rankflow error.");
  UsageError = make(m, "UsageError", tuple_of({Error, PyExc_ValueError}),
                    "A flag, argument or call that cannot be honoured; the message says what to do.");
  ResourceError = make(m, "ResourceError", Error, "Not enough memory, CPUs, GPUs or ranks for what was asked.");
  MPIError = make(m, "MPIError", Error, "An MPI call failed.");
  Interrupted = make(m, "Interrupted", Error,
                     "A time limit or cancellation signal (SIGTERM, SIGUSR1) stopped the call; resume with --resume.");
  TaskError = make(m, "TaskError", Error,
                   "A function failed on some rank: rank, host, item, partition, attempts, step and the remote "
                   "exception with its traceback (remote_traceback).");
  StorageError = make(m, "StorageError", tuple_of({Error, PyExc_OSError}),
                      "An experiment file could not be created, opened, read or written.");
  FormatError = make(m, "FormatError", StorageError, "A file is not an experiment file rankflow can read.");
  TrackingError = make(m, "TrackingError", Error, "Rank 0 refused a tracking operation.");
  TypeError_ = make(m, "TypeError", tuple_of({TrackingError, PyExc_TypeError}),
                    "A field was written with a value of another type than it holds.");

  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const task_error& e) {
      raise_task_error(e);
    } catch (const interrupted& e) {
      raise(Interrupted, e.what());
    } catch (const type_error& e) {
      raise(TypeError_, e.what());
    } catch (const tracking_error& e) {
      raise(TrackingError, e.what());
    } catch (const format_error& e) {
      raise(FormatError, e.what());
    } catch (const storage_error& e) {
      raise(StorageError, e.what());
    } catch (const usage_error& e) {
      raise(UsageError, e.what());
    } catch (const resource_error& e) {
      raise(ResourceError, e.what());
    } catch (const mpi_error& e) {
      raise(MPIError, e.what());
    } catch (const error& e) {
      raise(Error, e.what());
    } catch (const python_exception& e) {
      raise(Error, e.what());
    }
  });
}

}  // namespace rankflow::python
