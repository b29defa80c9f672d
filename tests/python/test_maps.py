# parallel_map, foreach and mapreduce from Python: results and order,
# bit-identical mapreduce for any rank count, errors with the remote
# traceback, bad arguments with clear errors.
import math
import re
import threading

import numpy as np
import pytest

import rankflow


def square(i):
    return i * i


def test_parallel_map_over_a_range_in_order(rt):
    out = rt.parallel_map(square, rankflow.range(0, 1000))
    if rt.is_scheduler:
        assert out == [i * i for i in range(1000)]
    else:
        assert out == []


def test_parallel_map_over_a_list_with_every_chunk(rt):
    words = [f"w{i}" for i in range(97)]
    for chunk in (0, 1, 5, 200):
        out = rt.parallel_map(str.upper, words, chunk_size=chunk, results_on_all_ranks=True)
        assert out == [w.upper() for w in words]  # on every rank


def test_results_of_every_kind_travel(rt):
    def kinds(i):
        return [None, True, 1.5, -(2**70), "é", b"\x00x", (i, [i]), {"k": i}, np.arange(i, dtype=np.float32)][i % 9]

    out = rt.parallel_map(kinds, rankflow.range(0, 27), chunk_size=2, results_on_all_ranks=True)
    for i, v in enumerate(out):
        want = kinds(i)
        if isinstance(want, np.ndarray):
            assert v.dtype == np.float32 and np.array_equal(v, want)
        else:
            assert v == want and type(v) is type(want)


def test_foreach_runs_each_item_as_a_split(rt):
    out = rt.foreach(["a", "bb", "ccc"], len, max_workers=2)
    if rt.is_scheduler:
        assert out == [1, 2, 3]
    out = rt.foreach(rankflow.range(10, 13), lambda i: -i)
    if rt.is_scheduler:
        assert out == [-10, -11, -12]


def test_a_reduce_fn_that_raises_fails_the_call_on_every_rank(rt):
    # reduce_fn also runs on rank 0 alone, where partials from the workers
    # meet: its exception must reach every rank, not leave them waiting.
    def values(i):
        return "seven" if i == 7 else float(i)

    with pytest.raises(rankflow.Error) as e:
        rt.mapreduce(rankflow.range(0, 40), values, lambda a, b: a + b, chunk_size=3)
    msg = str(e.value)
    assert "mapreduce: reduce_fn raised on rank" in msg and "TypeError" in msg
    # The job goes on.
    assert rt.mapreduce(rankflow.range(0, 4), float, lambda a, b: a + b) == 6.0


def tree_sum(values_by_partition):
    """rankflow's reduction tree, written out: sibling partitions combine as
    soon as both exist; what is left folds left to right."""
    levels = []
    for index, v in enumerate(values_by_partition):
        level = 0
        while True:
            if len(levels) <= level:
                levels.append({})
            nodes = levels[level]
            sib = index ^ 1
            if sib not in nodes:
                nodes[index] = v
                break
            v = nodes.pop(sib) + v if index & 1 else v + nodes.pop(sib)
            index >>= 1
            level += 1
    rest = sorted((j << k, v) for k, nodes in enumerate(levels) for j, v in nodes.items())
    acc = rest[0][1]
    for _, v in rest[1:]:
        acc = acc + v
    return acc


def test_mapreduce_is_bit_identical_for_any_rank_count(rt):
    n, chunk = 100_000, 777
    f = lambda i: math.sin(i) / (i + 1.0)  # noqa: E731
    got = rt.mapreduce(rankflow.range(0, n), f, lambda a, b: a + b, chunk_size=chunk)
    # The partitions folded left to right, combined in the fixed tree: what
    # any number of ranks must give, bit for bit.
    parts = []
    for p in range(0, n, chunk):
        acc = f(p)
        for i in range(p + 1, min(p + chunk, n)):
            acc = acc + f(i)
        parts.append(acc)
    assert got.hex() == tree_sum(parts).hex()
    assert rt.mapreduce(rankflow.range(5, 5), f, lambda a, b: a + b) is None


def test_a_python_exception_comes_back_with_rank_host_and_traceback(rt):
    def boom(i):
        if i == 7:
            raise ValueError(f"item {i} is bad")
        return i

    with pytest.raises(rankflow.TaskError) as e:
        rt.parallel_map(boom, rankflow.range(0, 20), chunk_size=3)
    err = e.value
    assert err.item == 7 and err.partition == 2 and err.attempts == 1
    assert 0 <= err.rank < rt.size and err.host
    assert "Traceback (most recent call last)" in err.remote_traceback
    assert "ValueError: item 7 is bad" in err.remote_traceback
    assert "in boom" in err.remote_traceback
    assert "rankflow::python" not in str(err)
    assert isinstance(err, rankflow.Error) and isinstance(err, RuntimeError)


def test_retries_rerun_a_failed_partition(rt):
    seen = set()

    def flaky(i):
        if i == 3 and ("tried", rt.rank) not in seen and rt.rank == 0:
            seen.add(("tried", rt.rank))
            raise RuntimeError("first try fails")
        return i

    out = rt.parallel_map(flaky, rankflow.range(0, 10), chunk_size=1, retries=1, max_workers=1)
    if rt.is_scheduler:
        assert out == list(range(10))


def test_a_result_that_cannot_travel_is_a_clear_error(rt):
    lock = threading.Lock()
    with pytest.raises(rankflow.TaskError) as e:
        rt.parallel_map(lambda i: lock, rankflow.range(0, 4))
    assert re.search(r"the result of item \d \(lock\) cannot be sent between ranks: TypeError: cannot pickle", str(e.value))
    assert "Return values pickle can serialise" in str(e.value)


def test_bad_arguments_are_clear_errors(rt):
    with pytest.raises(TypeError, match="fn must be callable, got int"):
        rt.parallel_map(5, [1, 2])
    with pytest.raises(TypeError, match="items must be a rankflow.range or a sequence"):
        rt.parallel_map(square, (i for i in range(3)))
    with pytest.raises(rankflow.UsageError, match='schedule must be "dynamic" or "blocked"'):
        rt.parallel_map(square, [1], schedule="static")
    with pytest.raises(rankflow.UsageError, match="retries must be >= 0"):
        rt.parallel_map(square, [1], retries=-1)
    with pytest.raises(TypeError, match="must be a rankflow.range"):
        rt.mapreduce([1, 2], square, max)
    with pytest.raises(TypeError):
        rt.parallel_map(square, [1], chunk_size="big")
