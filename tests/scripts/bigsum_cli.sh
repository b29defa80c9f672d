# --help, bad flags and bad values: clear messages, exit code 2 for mistakes.
source "$(dirname "$0")/common.sh"
run 2 "$BIGSUM" --help
[ "$RC" -eq 0 ] || fail "--help exited $RC"
for want in --rows --cols --seed --mode --block-rows --isa --max-workers --max-num-splits --log-level --progress; do
  printf '%s\n' "$OUT" | grep -q -- "$want" || fail "--help does not list $want: $OUT"
done
[ "$(printf '%s\n' "$OUT" | grep -c -- '--block-rows')" -eq 1 ] || fail "help printed more than once (every rank?): $OUT"

check_usage() {  # ARGS... -> exit 2 and a message naming the problem ($WANT)
  run 2 "$BIGSUM" "$@"
  [ "$RC" -eq 2 ] || fail "'$*' exited $RC, want 2: $OUT"
  printf '%s\n' "$OUT" | grep -q -- "$WANT" || fail "'$*' message lacks '$WANT': $OUT"
  echo "'$*' -> exit 2: $(printf '%s\n' "$OUT" | head -1)"
}
WANT="--bogus" check_usage --bogus
WANT="--rows" check_usage --rows -5
WANT="materialize" check_usage --mode fast
WANT="--max-workers" check_usage --max-workers=abc
WANT="auto|on|off" check_usage --progress sometimes
WANT="'sse9' is not one of auto, scalar, avx2, avx512" check_usage --isa sse9
# Every generator path this CPU has prints the same exact sum.
ref=""
for isa in auto scalar avx2 avx512; do
  run 2 "$BIGSUM" --rows 301 --cols 1777 --isa $isa --tracking-mode debug
  if [ "$RC" -eq 2 ]; then
    printf '%s\n' "$OUT" | grep -q "not every rank's CPU has it" || fail "--isa $isa refused without saying why: $OUT"
    echo "--isa $isa: not on this CPU (refused with exit 2)"
    continue
  fi
  [ "$RC" -eq 0 ] || fail "--isa $isa exited $RC: $OUT"
  [ "$isa" = auto ] || printf '%s\n' "$OUT" | grep -q ", $isa generator" || fail "--isa $isa not used: $OUT"
  s=$(exact_sum)
  echo "--isa $isa: $s"
  if [ -z "$ref" ]; then ref=$s; elif [ "$s" != "$ref" ]; then fail "--isa $isa sum $s differs from $ref"; fi
done
# Program without its own parser: rankflow's --help, then exit 0.
run 1 "$BIN/tests/throw_uncaught" --help
[ "$RC" -eq 0 ] && printf '%s\n' "$OUT" | grep -q -- "--max-num-splits" || fail "plain program --help: $RC $OUT"
echo OK
