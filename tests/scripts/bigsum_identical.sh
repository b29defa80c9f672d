# bigsum prints the bit-identical sum for -n 1..4, both modes, and several block sizes.
source "$(dirname "$0")/common.sh"
ref=""
for args in "--rows 3001 --cols 1777" "--rows 3001 --cols 1777 --block-rows 1"; do
  ref=""
  for mode in materialize stream; do
    for n in 1 2 3 4; do
      run $n "$BIGSUM" $args --mode $mode
      [ "$RC" -eq 0 ] || fail "bigsum -n $n --mode $mode $args exited $RC: $OUT"
      s=$(exact_sum)
      [ -n "$s" ] || fail "no 'Exact sum' line: $OUT"
      printf '%s\n' "$OUT" | grep -q "$mode mode" || fail "mode $mode not used: $OUT"
      echo "n=$n mode=$mode $args: $s"
      if [ -z "$ref" ]; then ref=$s; elif [ "$s" != "$ref" ]; then fail "sum $s differs from $ref (-n $n, $mode, $args)"; fi
    done
  done
done
# A different seed gives a different matrix.
run 2 "$BIGSUM" --rows 3001 --cols 1777 --seed 7
[ "$RC" -eq 0 ] && [ "$(exact_sum)" != "$ref" ] || fail "seed 7 should change the sum"
echo OK
