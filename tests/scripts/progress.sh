# Progress off a terminal: rank 0 logs a line every --progress-interval seconds
# with Metaflow-style prefixes; --progress=off (and auto for short calls) is quiet.
source "$(dirname "$0")/common.sh"
run 2 "$BIGSUM" --rows 20000 --cols 4000 --mode stream --progress on --progress-interval 0.01
[ "$RC" -eq 0 ] || fail "exit $RC: $OUT"
lines=$(printf '%s\n' "$OUT" | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} \[bigsum/stream/- \(rank 0, pid [0-9]+\)\] progress: [0-9]+/2000 partitions')
[ "$lines" -ge 2 ] || fail "expected progress lines with the log prefix, got $lines: $OUT"
printf '%s\n' "$OUT" | grep -q "progress: 2000/2000 partitions (100%).*done" || fail "no final progress line: $OUT"
printf '%s\n' "$OUT" | grep -q "rank 1.*progress" && fail "a worker printed progress: $OUT"
# Materialised, generation has its own progress (step "generate") before the sum's.
run 2 "$BIGSUM" --rows 20000 --cols 4000 --mode materialize --isa scalar --progress on --progress-interval 0.01
[ "$RC" -eq 0 ] || fail "exit $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "\[bigsum/generate/- (rank 0, pid [0-9]*)\] progress: 2000/2000 partitions (100%).*done" ||
  fail "no progress for the generation: $OUT"
printf '%s\n' "$OUT" | grep -q "\[bigsum/sum/- (rank 0, pid [0-9]*)\] progress: 2000/2000 partitions (100%).*done" ||
  fail "no progress for the sum: $OUT"
run 2 "$BIGSUM" --rows 20000 --cols 4000 --mode stream --progress off --progress-interval 0.01
printf '%s\n' "$OUT" | grep -q "progress:" && fail "--progress off still printed: $OUT"
run 2 "$BIGSUM" --rows 2000 --cols 400 --mode stream --progress auto
printf '%s\n' "$OUT" | grep -q "progress:" && fail "auto printed progress for a short call: $OUT"
echo "$lines progress lines; OK"
