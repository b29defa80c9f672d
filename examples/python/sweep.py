"""A parameter sweep with foreach (Metaflow's foreach), in Python: one split
per (learning rate, decay) pair; each split tracks its loss curve from the
rank that runs it, and rank 0 records the best. The Python twin of
examples/sweep/main.cpp.

    mpirun -n 4 python3 examples/python/sweep.py --experiment sweep.h5
    rankflow show sweep.h5 RUN-1
"""
import itertools
import sys

import rankflow


def main():
    rt = rankflow.Runtime()
    grid = list(itertools.product([0.01, 0.05, 0.1, 0.3], [0.0, 0.5, 0.9]))
    with rt.start_run("sweep") as run:
        if rt.is_scheduler:
            run["params/grid_size"] = len(grid)

        def split(point):
            lr, decay = point
            base = f"splits/lr_{lr:.2f}_decay_{decay:.1f}"
            run[base] = {"lr": lr, "decay": decay, "rank": rt.rank}
            # A toy optimiser on f(w) = (w - 2)^2 with momentum `decay`.
            w = v = loss = 0.0
            for step in range(50):
                v = decay * v - lr * 2 * (w - 2)
                w += v
                loss = (w - 2) ** 2
                run[f"{base}/loss"].append(loss, step=step)
            return loss, rt.rank

        results = rt.foreach(grid, split)
        if rt.is_scheduler:
            best = min(range(len(grid)), key=lambda k: results[k][0])
            (lr, decay), (loss, rank) = grid[best], results[best]
            run["best"] = {"lr": lr, "decay": decay, "loss": loss}
            print(f"sweep: {len(grid)} splits; best lr {lr:.2f} decay {decay:.1f}, final loss {loss:.3g} "
                  f"(split ran on rank {rank})")
            print(f"tracked in {run.experiment} as {run.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
