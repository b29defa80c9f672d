// Tracking from Python, Neptune's way: run = rt.start_run("train");
// run["params/lr"] = 0.1; run["loss"].append(x); run.stop(). The same C++ Run
// underneath, so the same file format, durability, resume and error messages.
#include <chrono>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "module.hpp"
#include "values.hpp"

namespace rankflow::python {

namespace {

std::string type_of(py::handle v) { return py::str(py::type::of(v).attr("__name__")).cast<std::string>(); }

double unix_seconds(py::handle dt) { return dt.attr("timestamp")().cast<double>(); }

// Looked up at import (bind_tracking): see values.cpp's init_values.
py::object* datetime_ = nullptr;
py::object* fromtimestamp_ = nullptr;
py::object* utc_ = nullptr;
py::object* numpy_bool_ = nullptr;

bool is_datetime(py::handle v) { return py::isinstance(v, *datetime_); }

timestamp to_timestamp(py::handle dt) {
  return timestamp(std::chrono::duration_cast<timestamp::duration>(std::chrono::duration<double>(unix_seconds(dt))));
}

py::object from_timestamp(timestamp t) {
  return (*fromtimestamp_)(std::chrono::duration<double>(t.time_since_epoch()).count(), *utc_);
}

// Python's value to the field's C++ assignment. numpy scalars count as the
// number they hold (np.float32 is not a float, np.int64 not an int).
void assign(field_ref f, py::handle v, const std::string& path) {
  if (PyBool_Check(v.ptr()) || (numpy_bool_ && py::isinstance(v, *numpy_bool_))) {
    f = v.cast<bool>();
  } else if (PyLong_Check(v.ptr())) {
    f = v.cast<std::int64_t>();
  } else if (PyFloat_Check(v.ptr())) {
    f = v.cast<double>();
  } else if (PyUnicode_Check(v.ptr())) {
    f = v.cast<std::string>();
  } else if (is_datetime(v)) {
    f = to_timestamp(v);
  } else if (PyDict_Check(v.ptr())) {
    for (auto [k, x] : v.cast<py::dict>())
      assign(f[py::str(k).cast<std::string>()], x, path + "/" + py::str(k).cast<std::string>());
  } else if (py::isinstance<py::set>(v) || py::isinstance<py::frozenset>(v) || PyList_Check(v.ptr()) ||
             PyTuple_Check(v.ptr())) {
    std::vector<std::string> items;
    for (auto x : v) {
      if (!PyUnicode_Check(x.ptr())) {
        throw type_error("field '" + path + "' cannot be assigned a " + type_of(v) + " holding a " + type_of(x) +
                         ": lists (StringList) and sets (StringSet) hold str; assign numbers one field each");
      }
      items.push_back(x.cast<std::string>());
    }
    if (PyList_Check(v.ptr()) || PyTuple_Check(v.ptr())) {
      f = items;
    } else {
      f = std::set<std::string>(items.begin(), items.end());
    }
  } else if (py::hasattr(v, "dtype") && py::hasattr(v, "item") && py::len(v.attr("shape")) == 0) {
    assign(f, v.attr("item")(), path);  // a NumPy scalar or 0-d array: the Python number it holds
  } else if (py::hasattr(v, "__index__")) {
    f = v.attr("__index__")().cast<std::int64_t>();
  } else if (py::hasattr(v, "__float__")) {
    f = v.attr("__float__")().cast<double>();
  } else {
    throw type_error("field '" + path + "' cannot be assigned a " + type_of(v) +
                     ": assign an int, float, bool, str, datetime, a list or set of str, or a dict of these "
                     "(use .append() for series, .upload() for files, write_array() for arrays)");
  }
}

void append(field_ref f, py::handle v, std::optional<double> step, std::optional<double> ts, const std::string& path) {
  point_options o;
  if (step) o.step = *step;
  if (ts) o.timestamp = *ts;
  if (PyBool_Check(v.ptr())) {
    throw type_error("field '" + path + "': series hold numbers or strings, not bool");
  } else if (PyLong_Check(v.ptr())) {
    f.append(v.cast<std::int64_t>(), o);
  } else if (PyFloat_Check(v.ptr())) {
    f.append(v.cast<double>(), o);
  } else if (PyUnicode_Check(v.ptr())) {
    f.append(v.cast<std::string>(), o);
  } else if (py::hasattr(v, "dtype") && py::hasattr(v, "item") && py::len(v.attr("shape")) == 0) {
    append(f, v.attr("item")(), step, ts, path);
  } else if (py::hasattr(v, "__index__")) {
    f.append(v.attr("__index__")().cast<std::int64_t>(), o);
  } else if (py::hasattr(v, "__float__")) {
    f.append(v.attr("__float__")().cast<double>(), o);
  } else {
    throw type_error("field '" + path + "' cannot append a " + type_of(v) + ": series hold int, float or str points");
  }
}

py::object fetch(const field_ref& f, const std::string& path) {
  switch (f.type()) {
    case field_type::int_:
      return py::int_(f.fetch<std::int64_t>());
    case field_type::float_:
      return py::float_(f.fetch<double>());
    case field_type::bool_:
      return py::bool_(f.fetch<bool>());
    case field_type::string:
      return py::str(f.fetch<std::string>());
    case field_type::datetime:
      return from_timestamp(f.fetch<timestamp>());
    case field_type::string_set:
      return py::cast(f.fetch<std::set<std::string>>());
    case field_type::string_list:
      return py::cast(f.fetch<std::vector<std::string>>());
    case field_type::float_series:
    case field_type::int_series:
    case field_type::string_series: {
      // Neptune's fetch_last(): the last point's value.
      if (f.type() == field_type::string_series) {
        auto s = f.fetch_values<std::string>();
        if (s.size() == 0) return py::none();
        return py::str(s.values.back());
      }
      if (f.type() == field_type::int_series) {
        auto s = f.fetch_values<std::int64_t>();
        if (s.size() == 0) return py::none();
        return py::int_(s.values.back());
      }
      auto s = f.fetch_values<double>();
      if (s.size() == 0) return py::none();
      return py::float_(s.values.back());
    }
    case field_type::file:
      return py::bytes(f.fetch_bytes());
    case field_type::array: {
      std::vector<std::uint64_t> shape;
      auto data = f.fetch_array(&shape);
      py::array_t<double> a(std::vector<py::ssize_t>(shape.begin(), shape.end()));
      std::copy(data.begin(), data.end(), a.mutable_data());
      return a;
    }
    case field_type::none:
      break;
  }
  throw usage_error("field '" + path + "' does not exist in this run");
}

py::dict fetch_values(const field_ref& f) {
  py::dict d;
  if (f.type() == field_type::string_series) {
    auto s = f.fetch_values<std::string>();
    d["steps"] = s.steps;
    d["values"] = s.values;
    d["timestamps"] = s.timestamps;
  } else if (f.type() == field_type::int_series) {
    auto s = f.fetch_values<std::int64_t>();
    d["steps"] = s.steps;
    d["values"] = s.values;
    d["timestamps"] = s.timestamps;
  } else {
    auto s = f.fetch_values<double>();
    d["steps"] = s.steps;
    d["values"] = s.values;
    d["timestamps"] = s.timestamps;
  }
  return d;
}

template <class T>
void write_typed(Run& run, const std::string& name, py::array block, const std::vector<std::uint64_t>& global_shape,
                 const std::vector<std::uint64_t>& offset) {
  auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(block);
  std::vector<std::uint64_t> shape(a.shape(), a.shape() + a.ndim());
  std::span<const T> data(a.data(), static_cast<std::size_t>(a.size()));
  if (a.size() == 0) shape.clear();  // a rank with nothing to write
  py::gil_scoped_release nogil;
  run.write_array<T>(name, data, shape, global_shape, offset);
}

// A field and its path, for messages (field_ref keeps its path private).
// `alive` turns false when its Run is ended by Runtime.close(): the field
// must not reach the Run's freed state afterwards.
struct py_field {
  field_ref f_;
  std::string path;
  std::shared_ptr<bool> alive;
  field_ref& f() {
    if (!*alive) throw usage_error("field '" + path + "': its run ended when the Runtime closed");
    return f_;
  }
  const field_ref& f() const { return const_cast<py_field*>(this)->f(); }
};

// Holds the Run, and keeps the Runtime alive while it exists; the Runtime's
// close() ends the Run before MPI goes.
struct py_run {
  py::object owner;  // declared first, destroyed last: the Runtime outlives the Run
  std::optional<Run> r;
  py_runtime* owner_rt = nullptr;
  std::uint64_t closer = 0;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  Run& run() {
    if (!r) throw usage_error("this run ended when the Runtime closed");
    return *r;
  }
  py_field field(const std::string& path) { return py_field{run()[path], path, alive}; }
  ~py_run() {
    *alive = false;  // fields that outlive their Run object must not reach it
    if (owner_rt && r) owner_rt->forget(closer);
  }
};

}  // namespace

void bind_tracking(py::module_& m, py::class_<py_runtime>& cls) {
  datetime_ = new py::object(py::module_::import("datetime").attr("datetime"));
  fromtimestamp_ = new py::object(datetime_->attr("fromtimestamp"));
  utc_ = new py::object(py::module_::import("datetime").attr("timezone").attr("utc"));
  try {
    numpy_bool_ = new py::object(py::module_::import("numpy").attr("bool_"));
  } catch (py::error_already_set& e) {
    e.restore();
    PyErr_Clear();  // no NumPy: no NumPy scalars to meet either
  }
  py::class_<py_field>(m, "Field", "One field of a run: run[\"path\"].")
      .def(
          "__getitem__",
          [](const py_field& f, const std::string& sub) {
            return py_field{f.f()[sub], f.path + "/" + sub, f.alive};
          },
          py::keep_alive<0, 1>())
      .def("__setitem__",
           [](const py_field& f, const std::string& sub, py::object v) { assign(f.f()[sub], v, f.path + "/" + sub); })
      .def(
          "assign", [](const py_field& f, py::object v) { assign(f.f(), v, f.path); }, py::arg("value"))
      .def(
          "append",
          [](py_field& f, py::object v, std::optional<double> step, std::optional<double> timestamp) {
            append(f.f(), v, step, timestamp, f.path);
          },
          py::arg("value"), py::kw_only(), py::arg("step") = py::none(), py::arg("timestamp") = py::none(),
          "Appends a point to a series (FloatSeries, IntSeries or StringSeries).")
      .def("extend",
           [](py_field& f, py::iterable values) {
             for (auto v : values) append(f.f(), v, std::nullopt, std::nullopt, f.path);
           })
      .def(
          "add",
          [](py_field& f, py::object v) {
            if (PyUnicode_Check(v.ptr())) {
              f.f().add(v.cast<std::string>());
            } else {
              f.f().add(v.cast<std::vector<std::string>>());
            }
          },
          "Adds strings to a StringSet (tags).")
      .def(
          "upload", [](py_field& f, const std::string& path) { f.f().upload(path); }, py::arg("path"),
          "Stores the bytes of a file as a File artifact.")
      .def(
          "upload_bytes",
          [](py_field& f, py::bytes data, const std::string& filename) {
            f.f().upload_bytes(std::string(data), filename);
          },
          py::arg("data"), py::arg("filename") = "")
      .def(
          "fetch", [](const py_field& f) { return fetch(f.f(), f.path); },
          "The value (a series' last point, a File's bytes, an Array as a NumPy array).")
      .def(
          "fetch_values", [](const py_field& f) { return fetch_values(f.f()); },
          "A series' points: {'steps', 'values', 'timestamps'}.")
      .def(
          "download", [](const py_field& f, const std::string& dest) { f.f().download(dest); }, py::arg("dest"))
      .def_property_readonly("path", [](const py_field& f) { return f.path; })
      .def_property_readonly("type", [](const py_field& f) -> py::object {
        const auto t = f.f().type();
        if (t == field_type::none) return py::none();
        return py::str(type_name(t));
      });

  py::class_<py_run>(m, "Run",
                     "A tracked run (rt.start_run). Use as a context manager: it stops on exit, "
                     "or is marked failed when an exception leaves the block.")
      .def(
          "__getitem__", [](py_run& r, const std::string& path) { return r.field(path); }, py::keep_alive<0, 1>())
      .def("__setitem__", [](py_run& r, const std::string& path, py::object v) { assign(r.run()[path], v, path); })
      .def("__contains__", [](py_run& r, const std::string& path) { return r.run().has(path); })
      .def_property_readonly("id", [](py_run& r) { return r.run().id(); })
      .def_property_readonly("name", [](py_run& r) { return r.run().name(); })
      .def_property_readonly("experiment", [](py_run& r) { return r.run().experiment(); })
      .def_property_readonly("mode", [](py_run& r) { return std::string(to_string(r.run().mode())); })
      .def_property_readonly("active", [](py_run& r) { return r.run().active(); })
      .def_property_readonly("resumed", [](py_run& r) { return r.run().resumed(); })
      .def(
          "wait",
          [](py_run& r) {
            py::gil_scoped_release nogil;
            r.run().wait();
          },
          "Waits until everything this rank tracked is stored; raises what rank 0 refused.")
      .def("sync",
           [](py_run& r) {
             py::gil_scoped_release nogil;
             r.run().sync();
           })
      .def(
          "stop",
          [](py_run& r) {
            py::gil_scoped_release nogil;
            r.run().stop();
          },
          "Collective: ends the run (status succeeded).")
      .def(
          "fail",
          [](py_run& r, const std::string& reason) {
            py::gil_scoped_release nogil;
            r.run().fail(reason);
          },
          py::arg("reason"), "Collective: ends the run with status failed.")
      .def(
          "write_array",
          [](py_run& r, const std::string& name, py::array block, std::vector<std::uint64_t> global_shape,
             std::vector<std::uint64_t> offset) {
            const auto kind = block.dtype().kind();
            const auto size = block.dtype().itemsize();
            if (kind == 'f' && size == 8) return write_typed<double>(r.run(), name, block, global_shape, offset);
            if (kind == 'f' && size == 4) return write_typed<float>(r.run(), name, block, global_shape, offset);
            if (kind == 'i' && size == 8) return write_typed<std::int64_t>(r.run(), name, block, global_shape, offset);
            if (kind == 'i' && size == 4) return write_typed<std::int32_t>(r.run(), name, block, global_shape, offset);
            if (kind == 'u' && size == 1) return write_typed<std::uint8_t>(r.run(), name, block, global_shape, offset);
            throw type_error("write_array('" + name + "'): arrays of " + py::str(block.dtype()).cast<std::string>() +
                             " cannot be stored: use float64, float32, int64, int32 or uint8");
          },
          py::arg("name"), py::arg("block"), py::arg("global_shape"), py::arg("offset"),
          "Collective: every rank writes its block (a NumPy array) at `offset` of an array of `global_shape` with "
          "parallel HDF5.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](py_run& r, py::object type, py::object value, py::object) {
        if (!r.r || !r.run().active()) return false;
        if (!type.is_none()) {
          const std::string reason =
              py::str(type.attr("__name__")).cast<std::string>() + ": " + py::str(value).cast<std::string>();
          py::gil_scoped_release nogil;
          r.run().fail(reason);
        } else {
          py::gil_scoped_release nogil;
          r.run().stop();
        }
        return false;
      });

  cls.def(
      "start_run",
      [](py::object self, const std::string& name, const std::string& experiment, std::optional<std::string> mode,
         std::optional<std::string> resume, std::map<std::string, std::string> inputs, const std::string& sweep,
         std::optional<bool> provenance) {
        auto& rt = self.cast<py_runtime&>().rt();
        run_options o;
        o.experiment = experiment;
        if (mode) o.mode = parse_tracking_mode(*mode);
        o.resume = resume;
        o.inputs = std::move(inputs);
        o.sweep = sweep;
        o.provenance = provenance;
        auto r = std::make_unique<py_run>();
        {
          py::gil_scoped_release nogil;
          r->r.emplace(rt.start_run(name, o));
        }
        r->owner = self;
        r->owner_rt = &self.cast<py_runtime&>();
        py_run* raw = r.get();
        r->closer = r->owner_rt->at_close([raw](const std::string& reason) {
          *raw->alive = false;
          py::gil_scoped_release nogil;
          if (!reason.empty() && raw->r->active()) raw->r->fail(reason);
          raw->r.reset();  // stops a run still active, as in C++
        });
        return r;
      },
      py::arg("name"), py::kw_only(), py::arg("experiment") = "", py::arg("mode") = py::none(),
      py::arg("resume") = py::none(), py::arg("inputs") = std::map<std::string, std::string>{}, py::arg("sweep") = "",
      py::arg("provenance") = py::none(),
      "Collective: starts a tracked run (--experiment, default rankflow.h5). Until it stops, parallel_map, "
      "mapreduce and foreach record their partitions, and --resume continues a killed run.");
}

}  // namespace rankflow::python
