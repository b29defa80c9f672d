# Two jobs tracking into the same experiment file at the same time both work:
# they get different run ids and both runs are complete in the file.
source "$(dirname "$0")/common.sh"
DEMO="$BIN/tests/track_demo"
RF="$BIN/tracking/rankflow"
rm -rf two && mkdir two
for k in 1 2 3; do
  timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$DEMO" all --experiment two/exp.h5 > two/job$k.txt 2>&1 &
  pids="${pids:-} $!"
done
for p in $pids; do wait $p || fail "a job failed: $(cat two/job*.txt)"; done
ids=$(cat two/job*.txt | sed -n 's/^run \(RUN-[0-9]*\) done$/\1/p' | sort | tr '\n' ' ')
[ "$ids" = "RUN-1 RUN-2 RUN-3 " ] || fail "run ids: '$ids' $(cat two/job*.txt)"
/usr/bin/python3 - <<'PY' || fail "runs incomplete"
import h5py, numpy as np
f = h5py.File("two/exp.h5", "r")
assert sorted(f["runs"]) == ["RUN-1", "RUN-2", "RUN-3"], list(f["runs"])
for rid in f["runs"]:
    run = f["runs"][rid]
    assert run.attrs["status"] == "succeeded"
    assert len(run["ranks/r1/loss/step"]) == 100
    assert (run["arrays/grid"][...][3] == [3000, 3001, 3002, 3003]).all()
print("three concurrent jobs, three complete runs")
PY
echo OK
