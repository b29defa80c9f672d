# Failures that nobody catches end the whole job quickly, naming rank and cause.
source "$(dirname "$0")/common.sh"
RUN_TIMEOUT=60
start=$(date +%s)
run 3 "$BIN/tests/throw_uncaught"
took=$(( $(date +%s) - start ))
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || fail "throw_uncaught exited $RC (124 = hung): $OUT"
for want in "rank 2" "disk quota exceeded" "task_error"; do
  printf '%s\n' "$OUT" | grep -q -- "$want" || fail "output lacks '$want': $OUT"
done
echo "throw_uncaught: exit $RC after ${took}s"
start=$(date +%s)
run 3 "$BIN/tests/rank_unwinds"
took=$(( $(date +%s) - start ))
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || fail "rank_unwinds exited $RC (124 = hung): $OUT"
printf '%s\n' "$OUT" | grep -q "aborting all 3 ranks" || fail "no abort message: $OUT"
echo "rank_unwinds: exit $RC after ${took}s"
echo OK
