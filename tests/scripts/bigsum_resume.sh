# Resume without Slurm: bigsum is kill -9'd (whole job) or sent SIGTERM at
# several moments, then run again with --resume until it finishes. Every
# final sum is bit-identical to an uninterrupted run's, the run keeps its id,
# its ledger holds each partition's success exactly once, and the per-partition
# series has no duplicate steps.
source "$(dirname "$0")/common.sh"
RF="$BIN/tracking/rankflow"
rm -rf resume && mkdir resume && cd resume || exit 1
ROWS=120000
COLS=40000
ARGS=(--rows $ROWS --cols $COLS --block-rows 40 --isa scalar)  # 3000 partitions, ~2.5 s at -n 2

run 2 "$BIGSUM" "${ARGS[@]}" --mode stream --tracking-mode debug
[ "$RC" -eq 0 ] || fail "reference bigsum exited $RC: $OUT"
want=$(exact_sum)
[ -n "$want" ] || fail "no exact sum in: $OUT"

# start LOG MODE [--resume]: bigsum in the background, once its run began; pid in $PID.
start() {
  local log=$1 mode=$2
  shift 2
  timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$BIGSUM" "${ARGS[@]}" --mode "$mode" --experiment "$EXP" \
    --progress off "$@" > "$log" 2>&1 &
  PID=$!
  wait_for "tracking to" "$log" 30 || { kill -9 $PID; fail "bigsum did not start: $(cat "$log")"; }
}

kill9() {  # the whole job at once, as a node failure or `scancel -s KILL` would
  pkill -9 -f "bigsum.*--experiment $EXP" 2>/dev/null
  kill -9 "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
}

# check LOG ID: the finished run's sum and record.
check() {
  local log=$1 id=$2
  got=$(sed -n 's/^Exact sum: //p' "$log")
  [ "$got" = "$want" ] || fail "$EXP: resumed sum '$got' differs from the uninterrupted '$want': $(cat "$log")"
  grep -q "Tracked as run $id " "$log" || fail "the resumed job did not continue $id: $(cat "$log")"
  /usr/bin/python3 - "$EXP" "$id" <<'PY' || fail "$EXP: the ledger or series of $id is wrong"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
run = f["runs"][sys.argv[2]]
assert run.attrs["status"] == "succeeded", run.attrs["status"]
led = run["_rankflow/ledger"]
ok = led["ok"][()].astype(bool)
parts = led["partition"][()][ok]
calls = led["call"][()][ok]
n = int(run["_rankflow/calls/partitions"][0])
assert n == 3000, n
sel = parts[calls == 1]
assert len(sel) == n and len(set(sel.tolist())) == n, (len(sel), len(set(sel.tolist())))
steps = run["timing/partition_ms/step"][()] if "timing/partition_ms" in run else np.array([])
assert len(steps) == len(set(steps.tolist())), "duplicate steps"
print(sys.argv[2], "ok:", n, "partitions once each;", int(run.attrs.get("resumes", "0")), "resume(s)")
PY
}

# Killed at 0.4 s (maybe before any partition finished), 1.2 s, and at 0.8 s
# and then again 0.5 s into the resumed job: each resumes from what the
# ledger holds. (schedule::blocked, bigsum's materialize mode, is resumed in
# resume_test.)
n=0
for delay in 0.4 1.2 0.8+0.5; do
  n=$((n + 1))
  EXP=$PWD/e$n.h5
  start first$n.txt stream
  sleep "${delay%+*}"
  kill9
  id=$(sed -n "s/.*run \(RUN-[0-9]*\) ('bigsum') tracking to.*/\1/p" first$n.txt)
  [ -n "$id" ] || fail "no run id in: $(cat first$n.txt)"
  if [ "${delay#*+}" != "$delay" ]; then
    start again$n.txt stream --resume
    grep -q "resuming run $id" again$n.txt || { kill9; fail "the first resume did not continue $id: $(cat again$n.txt)"; }
    sleep "${delay#*+}"
    kill9
    grep -q "^Exact sum" again$n.txt && fail "the resumed job finished before it was killed; make the test slower"
  fi
  run 2 "$BIGSUM" "${ARGS[@]}" --mode stream --experiment "$EXP" --resume
  printf '%s\n' "$OUT" > resumed$n.txt
  [ "$RC" -eq 0 ] || fail "resume after kill at ${delay}s exited $RC: $OUT"
  grep -q "resuming run $id" resumed$n.txt || fail "no resume of $id after kill at ${delay}s: $OUT"
  if [ "$delay" != 0.4 ]; then
    grep -q "partitions reused from the run's ledger" resumed$n.txt ||
      fail "nothing was reused after a kill at ${delay}s: $OUT"
  fi
  check resumed$n.txt "$id"
done

# The time-limit path: SIGTERM to the ranks. bigsum checkpoints (exit 75,
# run killed with the reason), then --resume finishes it.
EXP=$PWD/term.h5
start term.txt stream
sleep 1
pkill -TERM -f "^$BIGSUM .*--experiment $EXP"  # the ranks, as Slurm signals them
wait $PID
rc=$?
[ "$rc" -eq 75 ] || fail "SIGTERM: bigsum exited $rc, not 75: $(cat term.txt)"
id=$(sed -n "s/.*run \(RUN-[0-9]*\) ('bigsum') tracking to.*/\1/p" term.txt)
"$RF" runs "$EXP" | grep -q "^$id .*killed" || fail "SIGTERM: $id is not killed: $("$RF" runs "$EXP")"
"$RF" show "$EXP" "$id" | grep -q "interrupted by SIGTERM" || fail "SIGTERM: no reason in: $("$RF" show "$EXP" "$id")"
run 2 "$BIGSUM" "${ARGS[@]}" --mode stream --experiment "$EXP" --resume
printf '%s\n' "$OUT" > term-resumed.txt
[ "$RC" -eq 0 ] || fail "resume after SIGTERM exited $RC: $OUT"
grep -q "partitions reused from the run's ledger" term-resumed.txt || fail "nothing reused after SIGTERM: $OUT"
check term-resumed.txt "$id"
"$RF" show "$EXP" "$id" | grep -q "^  1 *stream *$ROWS *3000 *3000 *0 " ||
  fail "rankflow show lacks the ledger line: $("$RF" show "$EXP" "$id")"
echo OK
