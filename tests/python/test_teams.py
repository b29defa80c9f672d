# Partitions on several ranks from Python (need={"ranks": k}, context=True):
# each partition runs on a team with a communicator mpi4py can use.
import numpy as np
import pytest
from mpi4py import MPI

import rankflow


def test_each_partition_runs_on_its_team(rt):
    if rt.size < 2:
        pytest.skip("needs 2 ranks")

    def look(ctx, i):
        comm = MPI.Comm.f2py(ctx.comm)
        assert comm.Get_size() == ctx.members == 2 and comm.Get_rank() == ctx.member
        total = comm.allreduce((ctx.member + 1) * i)
        ranks = comm.allgather(rt.rank)
        return total, ranks, ctx.partition

    out = rt.parallel_map(look, rankflow.range(0, 30), need={"ranks": 2}, context=True, chunk_size=4)
    if rt.is_scheduler:
        for i, (total, ranks, p) in enumerate(out):
            assert total == 3 * i and ranks[1] == ranks[0] + 1 and ranks[0] % 2 == 0 and p == i // 4


def test_a_member_failing_releases_the_one_waiting_and_mapreduce_takes_teams(rt):
    if rt.size < 2:
        pytest.skip("needs 2 ranks")

    def summed(ctx, i):
        if ctx.member == 1 and i == 6:
            raise ValueError("member 1 cannot do item 6")
        comm = MPI.Comm.f2py(ctx.comm)
        mine = np.array([float(i * (ctx.member + 1))])
        total = np.zeros(1)
        ctx.wait(comm.Iallreduce(mine, total))  # released, not left waiting, when member 1 fails
        return float(total[0])

    with pytest.raises(rankflow.TaskError) as e:
        rt.parallel_map(summed, rankflow.range(0, 16), need={"ranks": 2}, context=True, chunk_size=4, max_workers=1)
    assert "member 1 of 2 (rank" in str(e.value) and "ValueError: member 1 cannot do item 6" in str(e.value)
    got = rt.mapreduce(rankflow.range(7, 16), summed, lambda a, b: a + b, need={"ranks": 2}, context=True)
    assert got == sum(3.0 * i for i in range(7, 16))


def test_bad_needs_are_clear(rt):
    with pytest.raises(rankflow.ResourceError, match="needs .* ranks at once"):
        rt.parallel_map(lambda c, i: i, rankflow.range(0, 4), need={"ranks": rt.size + 1}, context=True)
    with pytest.raises(rankflow.UsageError, match="need has no 'cores'"):
        rt.parallel_map(lambda i: i, [1], need={"cores": 2})
    # context=True without teams: the context of a one-rank partition
    out = rt.parallel_map(lambda c, i: (c.members, c.partition), rankflow.range(0, 3), context=True, chunk_size=1)
    if rt.is_scheduler:
        assert out == [(1, 0), (1, 1), (1, 2)]
