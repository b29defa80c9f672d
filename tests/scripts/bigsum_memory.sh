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
# auto mode falls back to streaming (tiny column count keeps it quick).
run 2 "$BIGSUM" --rows 200000000000 --cols 1 --block-rows 100000000 --log-level info
printf '%s\n' "$OUT" | grep -q "streaming instead" || fail "auto did not fall back to stream: $OUT"
echo OK
