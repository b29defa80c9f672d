# --help, bad flags and bad values: clear messages, exit code 2 for mistakes.
source "$(dirname "$0")/common.sh"
run 2 "$BIGSUM" --help
[ "$RC" -eq 0 ] || fail "--help exited $RC"
for want in --rows --cols --seed --mode --block-rows --max-workers --max-num-splits --log-level --progress; do
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
# Program without its own parser: rankflow's --help, then exit 0.
run 1 "$BIN/tests/throw_uncaught" --help
[ "$RC" -eq 0 ] && printf '%s\n' "$OUT" | grep -q -- "--max-num-splits" || fail "plain program --help: $RC $OUT"
echo OK
