"""Metaflow's BigSum in Python on rankflow: the sum of a rows x cols matrix of
uniform [0, 1) doubles, generated with NumPy, identical for any number of
ranks and bit-identical to the C++ bigsum with the same sizes and chunk.

    mpirun -n 4 python3 examples/python/bigsum.py --rows 4000 --cols 50000
    mpirun -n 4 python3 examples/python/bigsum.py --rows 4000 --cols 50000 --resume   # after a kill

rankflow's flags (--experiment, --resume, --retries, ...) are read and removed
from sys.argv by rankflow.Runtime(); argparse sees the rest.
"""
import argparse
import sys
import time

import numpy as np

import rankflow

GOLD = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1


def mix64(z):
    """SplitMix64's finaliser, on a NumPy uint64 array (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def mix64_int(z):
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def row(seed, i, j):
    """Row i of the matrix, columns j (a uint64 arange): element (i, j) is a
    counter-based function of (seed, i, j), as in examples/bigsum/bigsum.hpp."""
    key = mix64_int((seed + GOLD) & MASK) ^ ((i * 0xD1B54A32D192ED03) & MASK)
    z = mix64(np.uint64(key) + j * np.uint64(GOLD))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def row_sum(x):
    """The C++ row_sum's order: 8 running sums, combined pairwise, then the tail."""
    n8 = len(x) - len(x) % 8
    a = x[:n8].reshape(-1, 8).sum(axis=0) if n8 else np.zeros(8)
    tail = 0.0
    for v in x[n8:]:
        tail += v
    return float(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))) + tail


def main():
    rt = rankflow.Runtime()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--cols", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--block-rows", type=int, default=0, help="rows per partition (0: automatic)")
    args = ap.parse_args()
    if args.rows < 0 or args.cols < 1 or args.seed < 0:
        if rt.is_scheduler:
            print("bigsum.py: --rows must be >= 0, --cols >= 1 and --seed >= 0", file=sys.stderr)
        return 2

    with rt.start_run("bigsum-python") as run:
        if rt.is_scheduler:
            run["params"] = {"rows": args.rows, "cols": args.cols, "seed": args.seed, "ranks": rt.size}
        j = np.arange(args.cols, dtype=np.uint64)
        t0 = time.perf_counter()
        total = rt.mapreduce(rankflow.range(0, args.rows), lambda i: row_sum(row(args.seed, i, j)),
                             lambda a, b: a + b, chunk_size=args.block_rows, step="stream")
        seconds = time.perf_counter() - t0
        if rt.is_scheduler:
            run["result/sum"] = total
            run["result/sum_hex"] = total.hex()
            run["result/seconds"] = seconds
            print(f"Sum: {total:.6f} ({args.rows} x {args.cols} on {rt.size} ranks, {seconds:.2f} s)")
            print(f"Exact sum: {total.hex()}")
            print(f"tracked in {run.experiment} as {run.id}{' (resumed)' if run.resumed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
