# kill -9 of a whole tracked job at several moments. After each kill: the
# earlier finished run is intact, the killed run's points up to its last
# wait() are recovered (by `rankflow recover` or by the next run's start),
# with contiguous steps, and its status says it was killed.
source "$(dirname "$0")/common.sh"
DEMO="$BIN/tests/track_demo"
RF="$BIN/tracking/rankflow"
rm -rf kill && mkdir kill
EXP=kill/exp.h5
run 2 "$DEMO" all --experiment "$EXP"
[ "$RC" -eq 0 ] || fail "first run exited $RC: $OUT"
"$RF" export "$EXP" RUN-1 --format json -o kill/before.json || fail "export failed"

kill_job() {
  pkill -9 -f "track_demo (loop|all) --experiment $EXP" 2>/dev/null
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

: > kill/expect.txt
n=0
# "start": right after the run began; then 0, 0.3 and 1.5 s after the first wait().
for point in start 0 0.3 1.5; do
  n=$((n + 1))
  timeout 60 "$MPIEXEC" --oversubscribe -n 2 "$DEMO" loop --experiment "$EXP" > kill/log$n.txt 2>&1 &
  pid=$!
  wait_for "started" kill/log$n.txt 30 || { kill_job $pid; fail "loop $n did not start: $(cat kill/log$n.txt)"; }
  if [ "$point" != start ]; then
    wait_for "durable" kill/log$n.txt 30 || { kill_job $pid; fail "loop $n made nothing durable: $(cat kill/log$n.txt)"; }
    sleep "$point"
  fi
  last=$(sed -n 's/^durable //p' kill/log$n.txt | tail -1)
  kill_job $pid
  id=$(sed -n 's/^run \(RUN-[0-9]*\) started$/\1/p' kill/log$n.txt)
  [ -n "$id" ] || fail "no run id in loop $n: $(cat kill/log$n.txt)"
  echo "$id ${last:--1}" >> kill/expect.txt
  # Until recovered, the CLI shows the run as killed from its journal.
  "$RF" runs "$EXP" | grep -q "^$id .*killed" || fail "rankflow runs does not show $id killed: $("$RF" runs "$EXP")"
  # Alternate the two ways of recovering: the command, or the next run's start.
  if [ $((n % 2)) -eq 1 ]; then
    "$RF" recover "$EXP" | grep -q "recovered $id" || fail "rankflow recover did not recover $id"
  fi
done
# A job killed at a random moment of a short run (possibly while it writes
# the file): whatever it left, the file opens and the earlier runs are intact.
for delay in 0.2 0.6; do
  timeout 60 "$MPIEXEC" --oversubscribe -n 2 "$DEMO" all --experiment "$EXP" > kill/short.txt 2>&1 &
  pid=$!
  sleep $delay
  kill_job $pid
done
"$RF" recover "$EXP" > /dev/null || fail "final recover failed"
"$RF" export "$EXP" RUN-1 --format json -o kill/after.json || fail "export after kills failed"
cmp -s kill/before.json kill/after.json || fail "RUN-1 changed: $(diff kill/before.json kill/after.json | head)"

/usr/bin/python3 - "$EXP" kill/expect.txt <<'PY' || fail "recovered runs are wrong"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
for line in open(sys.argv[2]):
    rid, last = line.split()
    last = int(last)
    run = f["runs"][rid]
    assert run.attrs["status"] == "killed", (rid, run.attrs["status"])
    assert "killed" in run.attrs["reason"] or "ended without stopping" in run.attrs["reason"], run.attrs["reason"]
    for r in (0, 1):
        key = f"loop/r{r}"
        if last < 0 and key not in run:
            continue
        steps = run[key]["step"][...]
        values = run[key]["value"][...]
        assert len(steps) >= last + 1, (rid, r, len(steps), last)
        assert (steps == range(len(steps))).all(), (rid, r, "steps not contiguous")
        assert (values == steps).all(), (rid, r, "values differ from steps")
    print(rid, "killed after durable", last, "-> recovered", len(run["loop/r0"]["step"]) if "loop/r0" in run else 0, "points")
PY
[ $? -eq 0 ] || exit 1
echo OK
