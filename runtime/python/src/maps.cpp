// parallel_map, mapreduce and foreach for Python functions. Every rank runs
// the same script and so holds the same function and items: only results
// travel (values.hpp). The GIL is released while rankflow schedules, sends
// and waits, and taken for each call of the user's function.
#include <chrono>
#include <numeric>
#include <thread>

#include <pybind11/stl.h>

#include "module.hpp"
#include "values.hpp"

namespace rankflow::python {

namespace {

// map_options::need from a dict {"cpu", "memory_mb", "gpu", "ranks"}.
std::optional<resources> need_of(const std::optional<py::dict>& need, const char* call) {
  if (!need) return std::nullopt;
  resources r;
  for (auto [k, v] : *need) {
    const auto key = py::str(k).cast<std::string>();
    const auto n = v.cast<std::int64_t>();
    if (key == "cpu") {
      r.cpu = static_cast<int>(n);
    } else if (key == "memory_mb") {
      r.memory_mb = n;
    } else if (key == "gpu") {
      r.gpu = static_cast<int>(n);
    } else if (key == "ranks") {
      r.ranks = static_cast<int>(n);
    } else {
      throw usage_error(std::string(call) + ": need has no '" + key + "': use cpu, memory_mb, gpu and ranks");
    }
  }
  return r;
}

// The partition a function runs in (context=True): valid during the call.
struct py_partition {
  const partition_context* c = nullptr;
};

map_options options(std::int64_t chunk_size, int retries, const std::string& sched, const std::string& step,
                    bool results_on_all_ranks, std::size_t max_workers, std::optional<bool> backups, bool record,
                    const char* call) {
  map_options o;
  o.chunk_size = chunk_size;
  o.retries = retries;
  if (sched == "dynamic") {
    o.sched = schedule::dynamic;
  } else if (sched == "blocked") {
    o.sched = schedule::blocked;
  } else {
    throw usage_error(std::string(call) + ": schedule must be \"dynamic\" or \"blocked\", got \"" + sched + "\"");
  }
  o.step = step;
  o.results_on_all_ranks = results_on_all_ranks;
  o.max_workers = max_workers;
  o.backups = backups;
  o.record = record;
  return o;
}

void check_callable(const py::object& fn, const char* call, const char* what) {
  if (!PyCallable_Check(fn.ptr())) {
    throw py::type_error(std::string(call) + ": " + what + " must be callable, got " +
                         py::str(py::type::of(fn).attr("__name__")).cast<std::string>());
  }
}

// Items every rank holds: a sequence with len() and indexing.
std::int64_t length_of(const py::object& items, const char* call) {
  if (!PySequence_Check(items.ptr()) || !py::hasattr(items, "__len__")) {
    throw py::type_error(std::string(call) +
                         ": items must be a rankflow.range or a sequence every rank holds (list, "
                         "tuple, NumPy array), got " +
                         py::str(py::type::of(items).attr("__name__")).cast<std::string>() + ": make it a list first");
  }
  return static_cast<std::int64_t>(py::len(items));
}

py::list decoded(std::vector<std::string>&& out) {
  py::list l(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    l[i] = decode_value(out[i]);
    std::string().swap(out[i]);
  }
  return l;
}

// fn(item), or fn(context, item) when the call passes the partition's context.
std::string call_python_in(const py::object& fn, const partition_context* c, py::handle arg, std::int64_t i) {
  if (!c) return call_python(fn, arg, i);
  py::object ctx = py::cast(py_partition{c});
  return call_python(fn, py::make_tuple(ctx, arg), i, true);
}

py::list run_map(py_runtime& self, const py::object& fn, const py::object& items, const map_options& o,
                 bool foreach_call, bool context) {
  Runtime& rt = self.rt();
  const char* call = foreach_call ? "foreach" : "parallel_map";
  check_callable(fn, call, "fn");
  std::vector<std::string> out;
  if (py::isinstance<range>(items) && context && !foreach_call) {
    const auto r = items.cast<range>();
    auto f = [&fn](const partition_context& c, std::int64_t i) {
      py::gil_scoped_acquire gil;
      return call_python_in(fn, &c, py::int_(i), i);
    };
    py::gil_scoped_release nogil;
    out = rt.parallel_map(r, f, o);
  } else if (py::isinstance<range>(items)) {
    const auto r = items.cast<range>();
    auto f = [&fn](std::int64_t i) {
      py::gil_scoped_acquire gil;
      return call_python(fn, py::int_(i), i);
    };
    py::gil_scoped_release nogil;
    if (foreach_call) {
      std::vector<std::int64_t> idx(static_cast<std::size_t>(r.size()));
      std::iota(idx.begin(), idx.end(), r.first);
      out = rt.foreach (idx, f, o);
    } else {
      out = rt.parallel_map(r, f, o);
    }
  } else {
    const std::int64_t n = length_of(items, call);
    auto item_at = [&items](std::int64_t i) {
      try {
        return py::object(items[py::int_(i)]);
      } catch (py::error_already_set& e) {
        throw python_exception("items[" + std::to_string(i) + "]: " + format_exception(e));
      }
    };
    auto f = [&fn, &item_at](std::int64_t i) {
      py::gil_scoped_acquire gil;
      return call_python(fn, item_at(i), i);
    };
    auto fc = [&fn, &item_at](const partition_context& c, std::int64_t i) {
      py::gil_scoped_acquire gil;
      return call_python_in(fn, &c, item_at(i), i);
    };
    py::gil_scoped_release nogil;
    if (context && !foreach_call) {
      out = rt.parallel_map(range(0, n), fc, o);
    } else if (foreach_call) {
      std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
      std::iota(idx.begin(), idx.end(), std::int64_t{0});
      out = rt.foreach (idx, f, o);
    } else {
      out = rt.parallel_map(range(0, n), f, o);
    }
  }
  return decoded(std::move(out));
}

}  // namespace

void bind_maps(py::module_& m, py::class_<py_runtime>& cls) {
  py::class_<py_partition>(m, "PartitionContext",
                           "The partition a parallel_map/mapreduce function runs in (context=True); with "
                           "need={'ranks': k}, the team of k ranks running it.")
      .def_property_readonly("member", [](const py_partition& p) { return p.c->member(); })
      .def_property_readonly("members", [](const py_partition& p) { return p.c->members(); })
      .def_property_readonly("partition", [](const py_partition& p) { return p.c->partition(); })
      .def_property_readonly(
          "comm", [](const py_partition& p) { return static_cast<std::int64_t>(MPI_Comm_c2f(p.c->comm())); },
          "The team's communicator as a Fortran handle: MPI.Comm.f2py(ctx.comm) in mpi4py.")
      .def(
          "abandoned", [](const py_partition& p) { return p.c->abandoned(); },
          "True once another member failed this partition.")
      .def(
          "wait",
          [](const py_partition& p, py::object request) {
            // An mpi4py Request: like request.Wait(), but raises once another
            // member failed, instead of waiting for it forever.
            for (int spins = 0;; ++spins) {
              if (request.attr("Test")().cast<bool>()) return;
              if (p.c->abandoned()) {
                throw error("partition " + std::to_string(p.c->partition()) +
                            " abandoned: another member of its team failed");
              }
              if (spins > 100) {
                py::gil_scoped_release nogil;
                std::this_thread::sleep_for(std::chrono::microseconds(200));
              }
            }
          },
          py::arg("request"), "Waits for an mpi4py request on comm, raising rankflow.Error if another member failed.");

  cls.def(
         "parallel_map",
         [](py_runtime& self, py::object fn, py::object items, std::int64_t chunk_size, int retries,
            const std::string& sched, const std::string& step, bool results_on_all_ranks, std::size_t max_workers,
            std::optional<bool> backups, bool record, std::optional<py::dict> need, bool context) {
           auto o = options(chunk_size, retries, sched, step, results_on_all_ranks, max_workers, backups, record,
                            "parallel_map");
           o.need = need_of(need, "parallel_map");
           return run_map(self, fn, items, o, false, context);
         },
         py::arg("fn"), py::arg("items"), py::kw_only(), py::arg("chunk_size") = 0, py::arg("retries") = 0,
         py::arg("schedule") = "dynamic", py::arg("step") = "", py::arg("results_on_all_ranks") = false,
         py::arg("max_workers") = 0, py::arg("backups") = py::none(), py::arg("record") = true,
         py::arg("need") = py::none(), py::arg("context") = false,
         "fn(item) for every item (a rankflow.range or a sequence every rank holds). Collective. The results, in "
         "order, on rank 0 (every rank with results_on_all_ranks); [] elsewhere.")
      .def(
          "foreach",
          [](py_runtime& self, py::object items, py::object fn, int retries, const std::string& step,
             std::size_t max_workers, bool record) {
            auto o = options(1, retries, "dynamic", step, false, max_workers, std::nullopt, record, "foreach");
            return run_map(self, fn, items, o, true, false);
          },
          py::arg("items"), py::arg("fn"), py::kw_only(), py::arg("retries") = 0, py::arg("step") = "",
          py::arg("max_workers") = 0, py::arg("record") = true,
          "Metaflow's foreach: fn(item) for each item as its own split, at most --max-workers ranks at once.")
      .def(
          "mapreduce",
          [](py_runtime& self, py::object r, py::object map_fn, py::object reduce_fn, std::int64_t chunk_size,
             int retries, const std::string& sched, const std::string& step, std::size_t max_workers,
             std::optional<bool> backups, bool record, std::optional<py::dict> need, bool context) {
            Runtime& rt = self.rt();
            check_callable(map_fn, "mapreduce", "map_fn");
            check_callable(reduce_fn, "mapreduce", "reduce_fn");
            if (!py::isinstance<range>(r)) {
              throw py::type_error("mapreduce: the items must be a rankflow.range, got " +
                                   py::str(py::type::of(r).attr("__name__")).cast<std::string>());
            }
            const auto items = r.cast<range>();
            auto o = options(chunk_size, retries, sched, step, false, max_workers, backups, record, "mapreduce");
            o.need = need_of(need, "mapreduce");
            auto map = [&map_fn](std::int64_t i) {
              py::gil_scoped_acquire gil;
              return value{call_python(map_fn, py::int_(i), i)};
            };
            // reduce_fn also runs on rank 0 alone, where partials meet in the
            // tree: an exception there would leave the other ranks waiting.
            // It becomes a failed value instead, which every later reduce
            // passes on and every rank raises once the result is broadcast.
            const int rank = rt.rank();
            const std::string host = rt.host();
            auto reduce = [&reduce_fn, rank, &host](value a, value b) {
              if (is_failed(a.b)) return a;
              if (is_failed(b.b)) return b;
              py::gil_scoped_acquire gil;
              try {
                return value{encode_value(reduce_fn(decode_value(a.b), decode_value(b.b)), "reduce_fn's result")};
              } catch (py::error_already_set& e) {
                return value{failed_value("reduce_fn raised on rank " + std::to_string(rank) + " (host " + host +
                                          "): " + format_exception(e))};
              } catch (const python_exception& e) {
                return value{
                    failed_value("reduce_fn on rank " + std::to_string(rank) + " (host " + host + "): " + e.what())};
              }
            };
            auto map_in = [&map_fn](const partition_context& c, std::int64_t i) {
              py::gil_scoped_acquire gil;
              return value{call_python_in(map_fn, &c, py::int_(i), i)};
            };
            value v;
            {
              py::gil_scoped_release nogil;
              v = context ? rt.mapreduce(items, map_in, reduce, o) : rt.mapreduce(items, map, reduce, o);
            }
            if (is_failed(v.b)) throw python_exception("mapreduce: " + failure_of(v.b));
            return decode_value(v.b);
          },
          py::arg("items"), py::arg("map_fn"), py::arg("reduce_fn"), py::kw_only(), py::arg("chunk_size") = 0,
          py::arg("retries") = 0, py::arg("schedule") = "dynamic", py::arg("step") = "", py::arg("max_workers") = 0,
          py::arg("backups") = py::none(), py::arg("record") = true, py::arg("need") = py::none(),
          py::arg("context") = false,
          "reduce_fn(... map_fn(i) ...) over a rankflow.range, on every rank. Partitions are folded left to right "
          "and combined in a fixed tree over partition index: the same result (bit for bit) for any number of "
          "ranks. An empty range gives None.");
}

}  // namespace rankflow::python
