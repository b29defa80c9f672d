"""100,000 trivial Python tasks (issue 18's measure): rankflow's parallel_map
at chunk 1 and auto chunk against mpi4py.futures (Debian's python3-mpi4py)
at chunksize 1 and 1000, and a plain Python loop, in one run:

    mpirun -n 3 python3 bench/python_tasks.py [--tasks 100000] [--repeat 3]

(PYTHONPATH=build/python for the build tree.) mpi4py initialises MPI first;
rankflow's Runtime then uses it. Rank 0 prints one line per contender with the
best of --repeat wall times and the time per task; every contender computes
the same results, which are checked.
"""
import argparse
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

import rankflow


def task(x):
    return x + 1


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        MPI.COMM_WORLD.Barrier()
        t0 = time.perf_counter()
        out = fn()
        MPI.COMM_WORLD.Barrier()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-unchunked-mpi4py", action="store_true", help="it takes ~20 s per repeat")
    args = ap.parse_args()
    n = args.tasks
    rt = rankflow.Runtime(["python_tasks"])
    want = list(range(1, n + 1))
    rows = []

    def add(name, seconds, out):
        if rt.is_scheduler and out != want:  # results live on rank 0
            sys.exit(f"{name}: wrong results")
        rows.append((name, seconds))

    def mpi4py_map(chunksize):
        with MPICommExecutor(MPI.COMM_WORLD, root=0) as ex:
            if ex is not None:
                return list(ex.map(task, range(n), chunksize=chunksize))
        return want  # workers: nothing to check

    add("plain Python loop (rank 0)", *best_of(args.repeat, lambda: [task(i) for i in range(n)]))
    if not args.skip_unchunked_mpi4py:
        add("mpi4py.futures chunksize=1", *best_of(args.repeat, lambda: mpi4py_map(1)))
    add("mpi4py.futures chunksize=1000", *best_of(args.repeat, lambda: mpi4py_map(1000)))
    r = rankflow.range(0, n)
    add("rankflow parallel_map chunk_size=1",
        *best_of(args.repeat, lambda: rt.parallel_map(task, r, chunk_size=1)))
    add("rankflow parallel_map auto chunk", *best_of(args.repeat, lambda: rt.parallel_map(task, r)))
    if rt.is_scheduler:
        print(f"{n} trivial tasks on {rt.size} ranks ({MPI.Get_library_version().splitlines()[0]}), best of "
              f"{args.repeat}:")
        for name, s in rows:
            print(f"  {name:38s} {s:9.3f} s  {s / n * 1e6:9.2f} us/task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
