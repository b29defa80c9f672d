# The design card's own example: 64 ranks on a 2-core machine, same sum as -n 1.
source "$(dirname "$0")/common.sh"
RUN_TIMEOUT=500
run 1 "$BIGSUM" --rows 2000 --cols 2000
[ "$RC" -eq 0 ] || fail "-n 1: $OUT"
ref=$(exact_sum)
for mode in stream materialize; do
  start=$(date +%s)
  run 64 "$BIGSUM" --rows 2000 --cols 2000 --mode $mode
  [ "$RC" -eq 0 ] || fail "-n 64 --mode $mode exited $RC: $(printf '%s\n' "$OUT" | tail -20)"
  [ "$(exact_sum)" = "$ref" ] || fail "-n 64 $mode sum $(exact_sum) != -n 1 sum $ref"
  echo "-n 64 $mode: same sum $ref in $(( $(date +%s) - start )) s"
done
echo OK
