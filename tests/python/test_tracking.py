# Tracking from Python, read back with h5py and the `rankflow` command.
import os
import subprocess

import h5py
import numpy as np
import pytest

import rankflow

RANKFLOW = os.environ.get("RANKFLOW_COMMAND", "rankflow")


def test_fields_series_files_and_arrays_round_trip(rt, fresh, tmp_path_factory):
    with rt.start_run("train", experiment=fresh, mode="sync") as run:
        run["params"] = {"lr": 0.1, "epochs": 3, "optimizer": "adam", "nesterov": True}
        run["sys/tags"].add(["python", "test"])
        if rt.is_scheduler:  # a series of one writer (every rank's points would interleave)
            for step in range(5):
                run["loss"].append(1.0 / (step + 1))
            run["artifacts/config"].upload_bytes(b"lr=0.1\n", "config.txt")
        run["notes"].append(f"rank {rt.rank} started")
        # Each rank writes its rows of a (size*2) x 3 array, collectively.
        block = np.arange(6, dtype=np.float64).reshape(2, 3) + 10 * rt.rank
        run.write_array("weights", block, [2 * rt.size, 3], [2 * rt.rank, 0])
        run.wait()
        assert run["params/lr"].fetch() == 0.1
        assert run["params/epochs"].fetch() == 3
        assert run["params/nesterov"].fetch() is True
        assert run["sys/tags"].fetch() == {"python", "test"}
        if rt.is_scheduler:
            assert run["loss"].fetch() == pytest.approx(0.2)
            assert run["loss"].fetch_values()["steps"] == [0, 1, 2, 3, 4]
            assert run["artifacts/config"].fetch() == b"lr=0.1\n"
            assert run["loss"].type == "FloatSeries"
        w = run["weights"].fetch()
        assert w.shape == (2 * rt.size, 3) and w[2 * rt.rank + 1, 2] == 5 + 10 * rt.rank
        run_id = run.id
    if rt.is_scheduler:
        with h5py.File(fresh, "r") as f:
            r = f["runs"][run_id]
            assert r.attrs["status"] == "succeeded"
        shown = subprocess.run([RANKFLOW, "show", fresh, run_id], capture_output=True, text=True, check=True).stdout
        assert "params/lr" in shown and "0.1" in shown and "loss" in shown


def test_type_errors_have_the_cpp_messages(rt, fresh):
    run = rt.start_run("types", experiment=fresh, mode="sync")
    run["params/lr"] = 0.1
    if rt.is_scheduler:
        with pytest.raises(rankflow.TypeError, match="Float field 'params/lr' cannot be assigned a String") as e:
            run["params/lr"] = "fast"
        assert isinstance(e.value, TypeError) and isinstance(e.value, rankflow.Error)
    with pytest.raises(rankflow.TypeError, match="field 'x' cannot be assigned a object"):
        run["x"] = object()
    with pytest.raises(rankflow.TypeError, match="'tags' cannot be assigned a list holding a int"):
        run["tags"] = ["a", 1]
    run["np/f"] = np.float32(0.5)   # NumPy scalars count as the numbers they hold
    run["np/i"] = np.int64(2**62 + 1)
    run["np/b"] = np.bool_(True)
    if rt.is_scheduler:
        run["big"].append(2**60 + 1)  # an IntSeries keeps 64 bits
        assert run["big"].fetch() == 2**60 + 1
        assert run["np/f"].fetch() == 0.5 and run["np/i"].fetch() == 2**62 + 1 and run["np/b"].fetch() is True
    with pytest.raises(rankflow.TypeError, match="cannot be stored: use float64"):
        run.write_array("c", np.zeros(2, dtype=np.complex128), [2], [0])
    run.stop()


def test_an_exception_in_the_block_fails_the_run(rt, fresh):
    with pytest.raises(ZeroDivisionError):
        with rt.start_run("dies", experiment=fresh) as run:
            run["x"] = 1
            run_id = run.id
            1 / 0
    if rt.is_scheduler:
        with h5py.File(fresh, "r") as f:
            r = f["runs"][run_id]
            assert r.attrs["status"] == "failed"
            assert "ZeroDivisionError" in r.attrs["reason"]
