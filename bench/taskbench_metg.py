#!/usr/bin/python3
"""METG(50%) from bench/taskbench_bench.cpp's JSON (Google Benchmark's
--benchmark_out): for each graph, the efficiency of each system at each task
size is its rate (kernel iterations per second) over the best rate any system
reached for that graph at its two largest task sizes in the same run (Task
Bench's peak); METG(50%) is the
task granularity (wall time x ranks / tasks, in microseconds) at which the
efficiency falls to 50%, interpolated between the two sizes around it.

Usage: taskbench_metg.py RESULT.json [--table]"""
import json, math, sys
from collections import defaultdict

d = json.load(open(sys.argv[1]))
ranks = d["context"].get("mpi_ranks", "?")
rows = defaultdict(list)  # (graph, system) -> [(iterations, task_us, rate)]
for b in d["benchmarks"]:
    if not b["name"].startswith("BM_taskbench") or b.get("run_type") == "aggregate":
        continue
    graph, system = b["label"].split()
    rows[(graph, system)].append((b["iterations"], b["task_us"], b["rate"]))

def metg(points, peak):
    # From the largest tasks down: the first size below 50% and the one above it.
    pts = sorted(points, key=lambda p: p[1])  # by granularity
    effs = [(us, rate / peak) for _, us, rate in pts]
    for (us_lo, e_lo), (us_hi, e_hi) in zip(effs, effs[1:]):
        if e_lo < 0.5 <= e_hi:
            # log-linear in granularity
            f = (0.5 - e_lo) / (e_hi - e_lo)
            return math.exp(math.log(us_lo) + f * (math.log(us_hi) - math.log(us_lo)))
    if effs and effs[0][1] >= 0.5:
        return effs[0][0]  # at or below the smallest size measured
    return float("nan")

print(f"Task Bench METG(50%) at -n {ranks} (microseconds of task granularity; lower is better)")
for graph in ("trivial", "stencil", "tasks"):
    # Task Bench's peak: the best rate at the two largest task sizes (small
    # tasks are left out: the processor overlaps short independent chains,
    # which no task runtime can count on).
    sizes = sorted({it for s in ("rankflow", "mpi") for it, _, _ in rows.get((graph, s), [])})[-2:]
    peak = max((r for s in ("rankflow", "mpi") for it, _, r in rows.get((graph, s), []) if it in sizes), default=0)
    if not peak:
        continue
    out = []
    for system in ("rankflow", "mpi"):
        pts = rows.get((graph, system), [])
        m = metg(pts, peak)
        out.append(f"{system} {m:.1f} us" if m == m else f"{system} not reached")
    print(f"  {graph:8s} " + ", ".join(out))
    if "--table" in sys.argv:
        for system in ("rankflow", "mpi"):
            for it, us, rate in sorted(rows.get((graph, system), [])):
                print(f"    {system:8s} {int(it):>8d} iterations: {us:9.2f} us/task, efficiency {rate / peak:5.2f}")
