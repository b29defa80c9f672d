# Ranks making different collective calls (or one leaving main early) end the
# job non-zero, quickly, naming the calls; no result is printed (issue 12,
# items 2 and 5: these printed a wrong sum with exit 0, or hung forever).
source "$(dirname "$0")/common.sh"
RUN_TIMEOUT=60
for np in 2 3; do
  for mode in leave kind count; do
    start=$(date +%s)
    run "$np" "$BIN/tests/disagree" "$mode"
    took=$(($(date +%s) - start))
    [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || fail "disagree $mode -n $np exited $RC (124 = hung): $OUT"
    printf '%s\n' "$OUT" | grep -q "RESULT" && fail "disagree $mode -n $np printed a result: $OUT"
    printf '%s\n' "$OUT" | grep -q "ranks disagree on a collective call" || fail "no disagreement message: $OUT"
    case $mode in
      leave) want="the end of the program" ;;
      kind) want="mapreduce(range(0, 100))" ;;
      count) want="range(0, 99)" ;;
    esac
    printf '%s\n' "$OUT" | grep -qF "$want" || fail "disagree $mode -n $np: output lacks '$want': $OUT"
    echo "disagree $mode -n $np: exit $RC after ${took}s"
  done
done
echo OK
