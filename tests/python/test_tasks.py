# Driver-mode tasks from Python: define, drive, submit, futures, resources
# and labels, a worker raising inside a task.
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

    rt.drive(driver)
    if rt.is_scheduler:
        assert "nope" in seen["unknown"]
        assert "10000" in seen["big"]
