# A Python program killed with kill -9 and resumed (issue 18): bigsum.py,
# tracked, is killed (one rank's python3, then the whole job) part way, and
# run again with --resume: the sum is bit-identical to an uninterrupted run's
# and to the C++ bigsum's, the run keeps its id, and its ledger holds each
# partition's success exactly once. Also runs examples/python/sweep.py.
# Args: the source directory.
source "$(dirname "$0")/common.sh"
SRC=$1
PY=${PYTHON:-/usr/bin/python3}
export PYTHONPATH=$BIN/python
rm -rf python_resume && mkdir python_resume && cd python_resume || exit 1
ARGS=(--rows 8000 --cols 100000 --block-rows 8)  # 1000 partitions, ~4-8 s at -n 2 on 2 cores

run 2 "$PY" "$SRC/examples/python/bigsum.py" "${ARGS[@]}" --tracking-mode debug
[ "$RC" -eq 0 ] || fail "reference bigsum.py exited $RC: $OUT"
want=$(exact_sum)
[ -n "$want" ] || fail "no exact sum in: $OUT"
run 2 "$BIGSUM" "${ARGS[@]}" --mode stream --tracking-mode debug --progress off
[ "$(exact_sum)" = "$want" ] || fail "C++ bigsum's sum '$(exact_sum)' differs from bigsum.py's '$want'"

EXP=$PWD/killed.h5
# start LOG [ARGS]: bigsum.py in the background, WAIT seconds after its run
# began (the whole job takes several times that); pid in $PID.
start() {
  local log=$1
  shift
  timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$PY" "$SRC/examples/python/bigsum.py" "${ARGS[@]}" \
    --experiment "$EXP" "$@" > "$log" 2>&1 &
  PID=$!
  wait_for "tracking to" "$log" 60 || { kill -9 $PID; fail "bigsum.py did not start: $(cat "$log")"; }
  sleep "${WAIT:-1}"
}
# The ranks' python3 processes (not timeout's or mpiexec's command lines).
ranks() { pgrep -f "^$PY $SRC/examples/python/bigsum.py .*--experiment $EXP"; }

# 1. One rank's python3 dies (kill -9 of the last one): the job ends, not hangs.
WAIT=1 start first.log
victim=$(ranks | tail -1)
[ -n "$victim" ] || fail "bigsum.py was not running: $(cat first.log)"
kill -9 "$victim"
wait "$PID"
rc=$?
[ "$rc" -ne 0 ] || fail "the job exited 0 after a rank was killed: $(cat first.log)"
grep -q "^Exact sum" first.log && fail "the killed job printed a sum: $(cat first.log)"
# 2. Resumed, and the whole job killed again part way.
WAIT=0.5 start second.log --resume
pkill -9 -f "^$PY $SRC/examples/python/bigsum.py .*--experiment $EXP"
kill -9 "$PID" 2>/dev/null
wait "$PID" 2>/dev/null
# 3. Resumed to the end.
run 2 "$PY" "$SRC/examples/python/bigsum.py" "${ARGS[@]}" --experiment "$EXP" --resume
[ "$RC" -eq 0 ] || fail "the resumed bigsum.py exited $RC: $OUT"
got=$(exact_sum)
[ "$got" = "$want" ] || fail "resumed sum '$got' differs from the uninterrupted '$want': $OUT"
printf '%s\n' "$OUT" | grep -q "tracked in .* as RUN-1 (resumed)" || fail "the run was not resumed: $OUT"
printf '%s\n' "$OUT" | grep -q "partitions reused from the run's ledger" || fail "nothing was reused: $OUT"
"$PY" - "$EXP" <<'PY' || fail "$EXP: the ledger is wrong"
import sys, h5py
run = h5py.File(sys.argv[1], "r")["runs/RUN-1"]
assert run.attrs["status"] == "succeeded", run.attrs["status"]
assert int(run.attrs["resumes"]) >= 1, dict(run.attrs)
led = run["_rankflow/ledger"]
ok = led["ok"][()].astype(bool)
parts = led["partition"][()][ok]
assert len(parts) == 1000 == len(set(parts.tolist())), (len(parts), len(set(parts.tolist())))
print("RUN-1 ok: 1000 partitions once each,", int(run.attrs["resumes"]), "resume(s)")
PY
"$BIN/tracking/rankflow" show "$EXP" RUN-1 | grep -q "result/sum_hex" || fail "rankflow show does not list the result"

# The sweep example: every split tracked, the best recorded.
run 3 "$PY" "$SRC/examples/python/sweep.py" --experiment "$PWD/sweep.h5"
[ "$RC" -eq 0 ] || fail "sweep.py exited $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "^sweep: 12 splits; best lr" || fail "sweep.py: $OUT"
"$BIN/tracking/rankflow" show "$PWD/sweep.h5" RUN-1 | grep -q "best/loss" || fail "sweep.h5 has no best/loss"
echo OK
