// Driver-mode tasks from Python (omega-ml's tasks): rt.define(name, fn),
// rt.drive(driver), s.submit(name, *args) -> Future. A Python task is one C++
// task taking its arguments as one encoded tuple and returning its encoded
// result, so placement, resources, labels, retries and the ledger are the
// C++ ones. Tasks run on worker threads: each call takes the GIL.
#include <pybind11/stl.h>

#include "module.hpp"
#include "values.hpp"

namespace rankflow::python {

namespace {

// A Python object released with the GIL held, whichever thread drops the
// last copy of the C++ task that holds it.
std::shared_ptr<py::object> hold(py::object o) {
  return {new py::object(std::move(o)), [](py::object* p) {
            if (!Py_IsInitialized()) return;  // the interpreter is gone: leak
            py::gil_scoped_acquire gil;
            delete p;
          }};
}

struct py_future {
  Future<std::string> f;
};

// The driver's Scheduler while drive() runs; its changes (with_, require,
// retries) are Submitters.
struct py_scheduler {
  Scheduler* s = nullptr;
  Submitter sub;
  std::shared_ptr<bool> live;
  Submitter& use() {
    if (!*live) throw usage_error("this Scheduler belongs to a drive() that has ended: submit inside the driver");
    return sub;
  }
};

py::dict context_of(const task_context& c) {
  py::dict d;
  d["threads"] = c.threads();
  d["gpus"] = c.gpus();
  d["rank"] = c.rank();
  d["host"] = c.host();
  d["name"] = c.name();
  d["id"] = c.id();
  d["attempt"] = c.attempt();
  d["member"] = c.member();
  d["members"] = c.members();
  // For mpi4py: MPI.Comm.f2py(ctx["comm"]) is the task's communicator.
  d["comm"] = static_cast<std::int64_t>(MPI_Comm_c2f(c.comm()));
  return d;
}

// The C++ task a Python task is also defined as, for mapreduce's combiner.
std::string combiner_name(const std::string& name) { return name + "[combine]"; }

// A rankflow.call (the package's class: name, args, need, labels, retries)
// as the C++ call of one step. The first step of a sequence and every
// parallel or map call get an empty `previous`; later steps get the previous
// result from the runtime; a combiner gets the map results.
call to_call(py::handle c, bool after_previous, bool combiner) {
  const auto name = c.attr("name").cast<std::string>();
  const std::string encoded = encode_value(c.attr("args"), "the arguments of task '" + name + "'");
  call out = combiner         ? call(combiner_name(name), encoded)
             : after_previous ? call(name, encoded)
                              : call(name, std::string(), encoded);
  if (!c.attr("need").is_none()) {
    auto [cpu, mem, gpu, ranks] = c.attr("need").cast<std::tuple<int, std::int64_t, int, int>>();
    out.with(resources{cpu, mem, gpu, ranks});
  }
  for (auto l : c.attr("labels")) out.require(l.cast<std::string>());
  if (!c.attr("retry").is_none()) {
    auto [n, backoff] = c.attr("retry").cast<std::tuple<int, double>>();
    out.retries(n, backoff);
  }
  return out;
}

std::vector<call> to_calls(const py::list& calls, bool sequence) {
  std::vector<call> out;
  for (std::size_t i = 0; i < calls.size(); ++i) out.push_back(to_call(calls[i], sequence && i > 0, false));
  return out;
}

// Calls a Python task (GIL held): fn([context,] *first, *args); returns
// its encoded result. A Python exception becomes python_exception.
std::string run_task(const py::object& fn, bool context, const task_context& ctx, py::list first,
                     const std::string& args) {
  try {
    py::list a;
    if (context) a.append(context_of(ctx));
    for (auto x : first) a.append(x);
    for (auto x : py::tuple(decode_value(args))) a.append(x);
    return encode_value(fn(*a), "the result of task '" + ctx.name() + "'");
  } catch (py::error_already_set& e) {
    throw python_exception(format_exception(e));
  }
}

py::list decoded_all(std::vector<std::string>&& v) {
  py::list l;
  for (auto& b : v) l.append(decode_value(b));
  return l;
}

}  // namespace

void bind_tasks(py::module_& m, py::class_<py_runtime>& cls) {
  py::class_<py_future>(m, "Future", "A task's result to come (Celery's AsyncResult).")
      .def(
          "result",
          [](py_future& f, std::optional<double> timeout) {
            std::string b;
            bool ended = true;
            {
              py::gil_scoped_release nogil;
              if (timeout) ended = f.f.wait_for(std::chrono::duration<double>(*timeout));
              if (ended) b = f.f.get();
            }
            if (!ended) {
              PyErr_SetString(PyExc_TimeoutError, ("task '" + f.f.task() + "' (id " + std::to_string(f.f.id()) +
                                                   ") did not end within " + std::to_string(*timeout) + " s")
                                                      .c_str());
              throw py::error_already_set();
            }
            return decode_value(b);
          },
          py::arg("timeout") = py::none(),
          "Waits for the task and returns its result; raises TaskError (rank, host, remote traceback) if it failed.")
      .def("ready", [](py_future& f) { return f.f.ready(); })
      .def("wait",
           [](py_future& f) {
             py::gil_scoped_release nogil;
             f.f.wait();
           })
      .def_property_readonly("status", [](py_future& f) { return std::string(to_string(f.f.status())); })
      .def_property_readonly("rank", [](py_future& f) { return f.f.rank(); })
      .def_property_readonly("attempts", [](py_future& f) { return f.f.attempts(); })
      .def_property_readonly("id", [](py_future& f) { return f.f.id(); })
      .def_property_readonly("task", [](py_future& f) { return f.f.task(); });

  py::class_<group>(m, "Group", "The tasks of a sequence, parallel or mapreduce composition.")
      .def("__len__", &group::size)
      .def_property_readonly("statuses",
                             [](const group& g) {
                               std::vector<std::string> out;
                               for (auto st : g.statuses()) out.emplace_back(to_string(st));
                               return out;
                             })
      .def("ready", &group::ready)
      .def(
          "wait",
          [](const group& g, std::optional<double> timeout) {
            py::gil_scoped_release nogil;
            if (!timeout) {
              g.wait();
              return true;
            }
            return g.wait_for(std::chrono::duration<double>(*timeout));
          },
          py::arg("timeout") = py::none(), "Waits for every task (at most `timeout` s); True when all ended.")
      .def(
          "future",
          [](const group& g, std::size_t i) {
            if (i >= g.size())
              throw py::index_error("task " + std::to_string(i) + " of a group of " + std::to_string(g.size()));
            return py_future{g.future<std::string>(i)};
          },
          py::arg("i"))
      .def(
          "getall",
          [](const group& g) {
            std::vector<std::string> v;
            {
              py::gil_scoped_release nogil;
              v = g.getall<std::string>();
            }
            return decoded_all(std::move(v));
          },
          "Every task's result, in order; raises the first failure.")
      .def(
          "collect",
          [](const group& g) {
            std::string b;
            {
              py::gil_scoped_release nogil;
              b = g.collect<std::string>();
            }
            return decode_value(b);
          },
          "The last step's result (a sequence), or the combiner's (a mapreduce).")
      .def("failed", &group::failed, "Indices of the tasks that failed or could not run.")
      .def(
          "restart",
          [](group& g) {
            py::gil_scoped_release nogil;
            g.restart();
          },
          "Runs the failed parts again, keeping every result that succeeded.");

  py::class_<py_scheduler>(m, "Scheduler", "What the driver submits with (rank 0, inside rt.drive).")
      .def(
          "sequence",
          [](py_scheduler& s, py::list calls) {
            auto c = to_calls(calls, true);
            Submitter& sub = s.use();
            py::gil_scoped_release nogil;
            return sub.sequence(std::move(c));
          },
          py::arg("calls"), "omega-ml's sequence: each step's result is the first argument of the next.")
      .def(
          "parallel",
          [](py_scheduler& s, py::list calls) {
            auto c = to_calls(calls, false);
            Submitter& sub = s.use();
            py::gil_scoped_release nogil;
            return sub.parallel(std::move(c));
          },
          py::arg("calls"), "Independent tasks, run in parallel.")
      .def(
          "mapreduce",
          [](py_scheduler& s, py::list calls, py::handle combine) {
            auto c = to_calls(calls, false);
            auto k = to_call(combine, false, true);
            Submitter& sub = s.use();
            py::gil_scoped_release nogil;
            return sub.mapreduce(std::move(c), std::move(k));
          },
          py::arg("calls"), py::arg("combine"),
          "The calls in parallel, then `combine` with the list of their results as its first argument.")
      .def(
          "submit",
          [](py_scheduler& s, const std::string& name, py::args args) {
            const std::string encoded = encode_value(args, "the arguments of task '" + name + "'");
            Submitter& sub = s.use();
            py::gil_scoped_release nogil;
            return py_future{sub.submit<std::string>(name, std::string(), encoded)};
          },
          py::arg("name"), "Queues task `name` with the given arguments; returns its Future.")
      .def(
          "with_",
          [](py_scheduler& s, int cpu, std::int64_t memory_mb, int gpu, int ranks) {
            return py_scheduler{s.s, s.use().with(resources{cpu, memory_mb, gpu, ranks}), s.live};
          },
          py::kw_only(), py::arg("cpu") = 1, py::arg("memory_mb") = 0, py::arg("gpu") = 0, py::arg("ranks") = 1,
          "Submits with these resources per task (ranks > 1: a multi-rank task).")
      .def(
          "require",
          [](py_scheduler& s, const std::string& label) {
            return py_scheduler{s.s, s.use().require(label), s.live};
          },
          py::arg("label"))
      .def(
          "retries",
          [](py_scheduler& s, int n, double backoff_s) {
            return py_scheduler{s.s, s.use().retries(n, backoff_s), s.live};
          },
          py::arg("n"), py::arg("backoff_s") = 0.5)
      .def("wait_all",
           [](py_scheduler& s) {
             s.use();
             py::gil_scoped_release nogil;
             s.s->wait_all();
           })
      .def_property_readonly("in_flight", [](py_scheduler& s) {
        s.use();
        return s.s->in_flight();
      });

  cls.def(
         "define",
         [](py_runtime& self, const std::string& name, py::object fn, bool context, int retries, double backoff_s,
            int cpu, std::int64_t memory_mb, int gpu, int ranks, std::vector<std::string> labels) {
           if (!PyCallable_Check(fn.ptr())) throw py::type_error("define('" + name + "'): fn must be callable");
           task_options o;
           o.need = resources{cpu, memory_mb, gpu, ranks};
           o.labels = std::move(labels);
           o.retries = retries;
           o.backoff_s = backoff_s;
           auto f = hold(std::move(fn));
           // As a task or a step: `previous` is empty, or a sequence's
           // previous result (encoded), passed first.
           self.rt().define(
               name,
               [f, context](task_context& ctx, std::string previous, std::string args) {
                 py::gil_scoped_acquire gil;
                 py::list first;
                 if (!previous.empty()) first.append(decode_value(previous));
                 return run_task(*f, context, ctx, std::move(first), args);
               },
               o);
           // As a mapreduce composition's combiner: the map results first, as a list.
           self.rt().define(
               combiner_name(name),
               [f, context](task_context& ctx, std::vector<std::string> results, std::string args) {
                 py::gil_scoped_acquire gil;
                 py::list values, first;
                 for (const auto& r : results) values.append(decode_value(r));
                 first.append(values);
                 return run_task(*f, context, ctx, std::move(first), args);
               },
               std::move(o));
         },
         py::arg("name"), py::arg("fn"), py::kw_only(), py::arg("context") = false, py::arg("retries") = 0,
         py::arg("backoff_s") = 0.5, py::arg("cpu") = 1, py::arg("memory_mb") = 0, py::arg("gpu") = 0,
         py::arg("ranks") = 1, py::arg("labels") = std::vector<std::string>{},
         "Registers task `name` on every rank (before drive). With context=True, fn gets a dict first: threads, "
         "gpus, rank, host, name, id, attempt, member, members and comm (MPI.Comm.f2py(comm) in mpi4py).")
      .def(
          "drive",
          [](py_runtime& self, py::object driver) {
            if (!PyCallable_Check(driver.ptr())) throw py::type_error("drive: driver must be callable");
            auto live = std::make_shared<bool>(true);
            Runtime& rt = self.rt();
            py::gil_scoped_release nogil;
            rt.drive([&](Scheduler& s) {
              py::gil_scoped_acquire gil;
              try {
                driver(py_scheduler{&s, s, live});
              } catch (py::error_already_set& e) {
                *live = false;
                throw python_exception("the driver raised: " + format_exception(e));
              }
              *live = false;
            });
          },
          py::arg("driver"),
          "Driver mode. Collective: rank 0 runs driver(scheduler); every other rank serves tasks until it "
          "returns.");
}

}  // namespace rankflow::python
