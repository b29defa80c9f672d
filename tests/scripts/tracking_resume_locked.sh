# After kill -9 of mpirun, orphaned ranks can still hold the run's journal
# lock (issue 12, item 13). A plain --resume used to say the file "holds no
# killed or failed run" and start a new run, abandoning the finished
# partitions. It must fail, naming the run and the process holding it; once
# that process is gone, --resume continues the run to the exact sum.
source "$(dirname "$0")/common.sh"
rm -rf resume_locked && mkdir resume_locked && cd resume_locked || exit 1
EXP=$PWD/e.h5
ARGS=(--rows 120000 --cols 40000 --block-rows 40 --mode stream --progress off)
run 2 "$BIGSUM" "${ARGS[@]}" --tracking-mode debug
[ "$RC" -eq 0 ] || fail "reference bigsum exited $RC: $OUT"
want=$(exact_sum)

# The run is killed (the whole job, by process id) after it started...
timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$BIGSUM" "${ARGS[@]}" --experiment "$EXP" > first.txt 2>&1 &
PID=$!
wait_for "tracking to" first.txt 30 || { kill -9 $PID; fail "bigsum did not start: $(cat first.txt)"; }
sleep 0.8
ranks=$(ps -o pid= --ppid "$(pgrep -P $PID)" 2>/dev/null; pgrep -P $PID)
kill -9 $ranks $PID 2>/dev/null
wait $PID 2>/dev/null
J=$EXP.d/RUN-1.journal
[ -e "$J" ] || fail "no journal after the kill: $(ls -la "$EXP.d")"
# ...and a process still holds its journal's lock, as an orphaned rank would.
flock -o -x "$J" sleep 120 &
HOLDER=$!
# flock's child (sleep) is ended too: it would keep ctest's output pipe open.
stop_holder() { pkill -P $HOLDER 2>/dev/null; kill $HOLDER 2>/dev/null; }
trap stop_holder EXIT
for ((i = 0; i < 100; i++)); do flock -n -s "$J" true || break; sleep 0.05; done
flock -n -s "$J" true && fail "the helper did not lock $J"

run 2 "$BIGSUM" "${ARGS[@]}" --experiment "$EXP" --resume
printf '%s\n' "$OUT" > locked.txt
[ "$RC" -ne 0 ] || fail "--resume started although RUN-1 is locked: $OUT"
for piece in "RUN-1" "still running" "process $HOLDER" "kill"; do
  printf '%s\n' "$OUT" | grep -q "$piece" || fail "the error lacks '$piece': $OUT"
done
printf '%s\n' "$OUT" | grep -q "starting a new run" && fail "a new run was started: $OUT"
[ -e "$EXP.d/RUN-2.journal" ] && fail "a new run RUN-2 was created: $(ls -la "$EXP.d")"

stop_holder
wait $HOLDER 2>/dev/null
run 2 "$BIGSUM" "${ARGS[@]}" --experiment "$EXP" --resume
printf '%s\n' "$OUT" > resumed.txt
[ "$RC" -eq 0 ] || fail "--resume after the holder ended exited $RC: $OUT"
grep -q "resuming run RUN-1" resumed.txt || fail "RUN-1 was not resumed: $OUT"
[ "$(exact_sum)" = "$want" ] || fail "resumed sum $(exact_sum) differs from $want"
echo OK
