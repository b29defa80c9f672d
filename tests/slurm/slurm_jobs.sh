# The scripts in slurm/ on a real one-node Slurm (slurm/local-cluster.sh):
# bigsum.sbatch prints the same exact sum as mpirun and records the job in
# its run; sweep.sbatch's array tasks record one run each in one file.
source "$(dirname "$0")/../scripts/common.sh"
SRC=$1
CLUSTER="$SRC/slurm/local-cluster.sh"
# Its own directory and ports, so a cluster the user started is left alone.
export LOCAL_SLURM_DIR=/tmp/rankflow-slurm-ctest LOCAL_SLURM_TIMEOUT=120
export LOCAL_SLURM_CTLD_PORT=6917 LOCAL_SLURM_SLURMD_PORT=6918
if [ "$(id -u)" -ne 0 ] && ! command -v slurmctld > /dev/null; then
  echo "SKIP: Slurm is not installed and installing it needs root (apt-get)"
  exit 77
fi
bash "$CLUSTER" start || fail "the local Slurm cluster did not start"
trap 'bash "$CLUSTER" stop > /dev/null 2>&1' EXIT
eval "$(bash "$CLUSTER" env)"

rm -rf slurm-jobs && mkdir slurm-jobs && cd slurm-jobs || exit 1
export BIGSUM BIGSUM_ROWS=3000 BIGSUM_COLS=2000 RANKFLOW_EXPERIMENT=$PWD/slurm.h5
run 2 "$BIGSUM" --rows 3000 --cols 2000 --tracking-mode debug
[ "$RC" -eq 0 ] || fail "mpirun bigsum exited $RC: $OUT"
want=$(exact_sum)

out=$(timeout 300 sbatch --wait -n 2 -o bigsum-%j.out "$SRC/slurm/bigsum.sbatch" 2>&1)
rc=$?
job=$(printf '%s\n' "$out" | sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p')
[ "$rc" -eq 0 ] || fail "bigsum.sbatch: rc $rc: $out $(cat bigsum-*.out 2>/dev/null)"
got=$(sed -n 's/^Exact sum: //p' "bigsum-$job.out")
[ -n "$want" ] && [ "$got" = "$want" ] || fail "sbatch sum '$got' differs from mpirun's '$want': $(cat "bigsum-$job.out")"

out=$(timeout 300 sbatch --wait --array=0-3%2 -o 'sweep-%A_%a.out' "$SRC/slurm/sweep.sbatch" 2>&1)
rc=$?
array=$(printf '%s\n' "$out" | sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p')
[ "$rc" -eq 0 ] || fail "sweep.sbatch: rc $rc: $out $(cat sweep-*.out 2>/dev/null)"

/usr/bin/python3 - "$job" "$array" <<'PY' || fail "runs in slurm.h5 are not what the jobs did"
import sys, h5py
job, array = sys.argv[1], sys.argv[2]
runs = h5py.File("slurm.h5", "r")["runs"]
assert len(runs) == 5, list(runs)
first = [r for r in runs.values() if r.attrs.get("slurm_job_id") == job]
assert len(first) == 1 and first[0].attrs["ranks"] == 2 and first[0].attrs["status"] == "succeeded", job
assert "slurm_nodelist" in first[0].attrs
tasks = sorted((int(r.attrs["slurm_array_task_id"]), int(r["params/seed"][()]))
               for r in runs.values() if r.attrs.get("slurm_array_job_id") == array)
assert tasks == [(0, 0), (1, 1), (2, 2), (3, 3)], tasks
assert all(r.attrs["status"] == "succeeded" for r in runs.values())
print("bigsum job", job, "and array", array, "tracked: 5 runs")
PY
[ $? -eq 0 ] || exit 1
echo OK
