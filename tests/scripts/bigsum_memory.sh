# materialize that cannot fit stops at once, before allocating, with a clear message.
source "$(dirname "$0")/common.sh"
start=$(date +%s)
run 2 "$BIGSUM" --rows 3000000 --cols 3000000 --mode materialize
[ "$RC" -eq 3 ] || fail "exit $RC, want 3: $OUT"
for want in "needs 72.0 TB" "available on each of 2 ranks" "add ranks or nodes, or use --mode stream"; do
  printf '%s\n' "$OUT" | grep -q -- "$want" || fail "message lacks '$want': $OUT"
done
[ $(( $(date +%s) - start )) -lt 30 ] || fail "took too long to refuse"
echo "$OUT"
# auto mode falls back to streaming: a matrix 20% larger than this machine's
# available memory (a few seconds of streaming).
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
rows=$(( avail_kb * 1024 * 12 / 10 / 8 / 1000 + 1 ))
run 2 "$BIGSUM" --rows $rows --cols 1000
[ "$RC" -eq 0 ] || fail "auto mode exited $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "streaming instead" || fail "auto did not fall back to stream: $OUT"
printf '%s\n' "$OUT" | grep -q "stream mode" || fail "not streamed: $OUT"
echo OK
