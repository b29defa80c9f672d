# A time-limit signal mid-run: SIGUSR1 to mpirun (forwarded to every rank, as
# with `sbatch --signal=USR1@60` on the step) and SIGTERM to the ranks
# themselves (Slurm's time limit). bigsum stops within seconds with exit code
# 75, says why, and its run is recorded as killed with the signal as reason
# and the parameters it had tracked.
source "$(dirname "$0")/common.sh"
RF="$BIN/tracking/rankflow"
rm -rf interrupt && mkdir interrupt
n=0
for how in usr1-mpirun term-ranks; do
  n=$((n + 1))
  # 80000 x 80000 streamed: ~4 s of work on 2 cores, plenty of time to cut it.
  timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$BIGSUM" --mode stream --isa scalar --experiment interrupt/exp.h5 \
    > interrupt/out$n.txt 2>&1 &
  pid=$!
  for ((i = 0; i < 400; i++)); do
    grep -q "tracking to" interrupt/out$n.txt 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.7
  t0=$(date +%s%N)
  launcher=$(pgrep -P $pid | head -1)  # mpirun, under timeout
  [ -n "$launcher" ] || fail "$how: no mpirun under pid $pid"
  if [ "$how" = usr1-mpirun ]; then
    kill -USR1 "$launcher"
  else
    pkill -TERM -P "$launcher" -x bigsum || fail "$how: no bigsum processes to signal"
  fi
  wait $pid
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  [ "$rc" -eq 75 ] || fail "$how: exit code $rc, want 75: $(cat interrupt/out$n.txt)"
  grep -q "interrupted by SIG" interrupt/out$n.txt || fail "$how: no reason printed: $(cat interrupt/out$n.txt)"
  [ "$ms" -lt 10000 ] || fail "$how: took ${ms} ms to stop"
  echo "$how: stopped in ${ms} ms"
done
"$RF" runs interrupt/exp.h5
/usr/bin/python3 - <<'PY' || fail "runs not recorded as killed"
import h5py
runs = h5py.File("interrupt/exp.h5", "r")["runs"]
assert sorted(runs) == ["RUN-1", "RUN-2"], list(runs)
for rid, sig in (("RUN-1", "SIGUSR1"), ("RUN-2", "SIGTERM")):
    r = runs[rid]
    assert r.attrs["status"] == "killed", (rid, r.attrs["status"])
    assert sig in r.attrs["reason"], (rid, r.attrs["reason"])
    assert r["params/rows"][()] == 80000 and "result" not in r, rid
print("both runs killed, with the signal as reason")
PY
[ $? -eq 0 ] || exit 1
echo OK
