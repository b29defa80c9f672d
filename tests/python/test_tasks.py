# Driver-mode tasks from Python: define, drive, submit, futures, resources
# and labels, a worker raising inside a task.
import os

import pytest

import rankflow


def test_tasks_run_and_return_in_the_driver(rt):
    rt.define("add", lambda a, b: a + b)
    rt.define("where", lambda ctx: (ctx["rank"], ctx["attempt"], ctx["members"]), context=True)
    got = {}

    def driver(s):
        futures = [s.submit("add", i, 10 * i) for i in range(20)]
        got["sums"] = [f.result() for f in futures]
        w = s.with_(cpu=1).submit("where")
        got["where"] = w.result(timeout=60)
        got["status"] = w.status

    rt.drive(driver)
    if rt.is_scheduler:
        assert got["sums"] == [11 * i for i in range(20)]
        rank, attempt, members = got["where"]
        assert (rank == 0) if rt.size == 1 else (1 <= rank < rt.size)
        assert attempt == 1 and members == 1
        assert got["status"] == "SUCCESS"


def test_a_task_that_raises_on_a_worker(rt):
    def bad(x):
        raise KeyError(f"no key {x}")

    rt.define("bad", bad)
    seen = {}

    def driver(s):
        f = s.submit("bad", "lr")
        with pytest.raises(rankflow.TaskError) as e:
            f.result()
        seen["err"] = e.value
        seen["ok"] = s.submit("add", 1, 2).result()

    rt.drive(driver)
    if rt.is_scheduler:
        err = seen["err"]
        assert "KeyError: 'no key lr'" in err.remote_traceback and "in bad" in err.remote_traceback
        assert err.task_id >= 0 and err.host
        assert seen["ok"] == 3  # the job goes on


def test_submit_errors_are_clear(rt):
    seen = {}

    def driver(s):
        with pytest.raises(rankflow.UsageError) as e:
            s.submit("nope", 1)
        seen["unknown"] = str(e.value)
        with pytest.raises(rankflow.ResourceError) as e:
            s.with_(cpu=10_000).submit("add", 1, 2)
        seen["big"] = str(e.value)
        with pytest.raises(rankflow.UsageError) as e:
            s.require("no-such-label").submit("add", 1, 2)
        seen["label"] = str(e.value)

    rt.drive(driver)
    if rt.is_scheduler:
        assert "nope" in seen["unknown"]
        assert "10000" in seen["big"]
        assert "no-such-label" in seen["label"]


def test_compositions_sequence_parallel_mapreduce(rt):
    rt.define("load", lambda n: list(range(n)))
    rt.define("scale", lambda xs, k: [x * k for x in xs])
    rt.define("total", lambda xs: sum(xs))
    rt.define("square", lambda x: x * x)
    rt.define("add_up", lambda parts, offset: sum(parts) + offset)
    got = {}

    def driver(s):
        seq = s.sequence([rankflow.call("load", 5), rankflow.call("scale", 10), rankflow.call("total")])
        got["seq"] = seq.collect()
        got["seq_all"] = seq.getall()
        par = s.parallel([rankflow.call("square", i).with_(cpu=1) for i in range(6)])
        got["par"] = par.getall()
        got["statuses"] = par.statuses
        mr = s.mapreduce([rankflow.call("square", i) for i in range(5)], rankflow.call("add_up", 1000))
        got["mr"] = mr.collect()
        got["len"] = len(mr)

    rt.drive(driver)
    if rt.is_scheduler:
        assert got["seq"] == 100 and got["seq_all"] == [[0, 1, 2, 3, 4], [0, 10, 20, 30, 40], 100]
        assert got["par"] == [0, 1, 4, 9, 16, 25] and set(got["statuses"]) == {"SUCCESS"}
        assert got["mr"] == 0 + 1 + 4 + 9 + 16 + 1000 and got["len"] == 6


def test_a_failed_step_stops_the_sequence_and_restart_reruns_it(rt, tmp_path_factory):
    # The gate opens when a file exists: the driver (rank 0) opens it before
    # restart(), and whichever rank runs the gate sees it (one machine).
    gate_file = f"gate_open_np{rt.size}"
    if rt.is_scheduler and os.path.exists(gate_file):
        os.remove(gate_file)

    def gate(x):
        if not os.path.exists(gate_file):
            raise RuntimeError("gate closed")
        return x + 1

    rt.define("gate", gate)
    rt.define("inc", lambda x: x + 1)
    got = {}

    def driver(s):
        seq = s.sequence([rankflow.call("inc", 1), rankflow.call("gate"), rankflow.call("inc")])
        seq.wait()
        got["failed"] = seq.failed()
        got["statuses"] = seq.statuses
        with pytest.raises(rankflow.TaskError) as e:
            seq.collect()
        got["why"] = str(e.value)
        open(gate_file, "w").close()
        seq.restart()
        got["after"] = seq.collect()
        got["statuses_after"] = seq.statuses

    rt.drive(driver)
    if rt.is_scheduler:
        os.remove(gate_file)
        assert got["failed"] == [1, 2]
        assert got["statuses"] == ["SUCCESS", "FAILURE", "FAILURE"]
        assert "not run" in got["why"] and "gate" in got["why"]
        assert got["after"] == 4 and got["statuses_after"] == ["SUCCESS"] * 3
