# bigsum given what a hostile (or tired) user types: every case below once
# printed a wrong sum with exit 0, crashed, or said something unrelated
# (issue 12, items 1, 3, 4, 15 and 17).
source "$(dirname "$0")/common.sh"
RUN_TIMEOUT=60
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1

# expect CODE PATTERN ARGS...: bigsum -n 2 ARGS exits CODE and prints PATTERN.
expect() {
  local code=$1 want=$2; shift 2
  run 2 "$BIGSUM" "$@"
  [ "$RC" -eq "$code" ] || fail "bigsum $* exited $RC, expected $code: $OUT"
  printf '%s\n' "$OUT" | grep -qF -- "$want" || fail "bigsum $*: output lacks '$want': $OUT"
  printf '%s\n' "$OUT" | grep -q "^Exact sum" && [ "$code" -ne 0 ] && fail "bigsum $* printed a sum: $OUT"
  echo "ok: bigsum $* -> $RC"
}

# Item 3: a chunk of INT64_MAX is one partition of every row, not 0 partitions.
expect 0 "1 partitions" --rows 100 --cols 10 --block-rows 9223372036854775807 --experiment a.h5
ref=$(exact_sum)
# The same single partition as --block-rows 100 (the chunk fixes the
# summation tree, so that is the sum it must equal, bit for bit).
expect 0 "1 partitions" --rows 100 --cols 10 --block-rows 100 --experiment a.h5
[ "$(exact_sum)" = "$ref" ] || fail "--block-rows INT64_MAX gave $ref, --block-rows 100 $(exact_sum)"

# Item 4: sizes whose byte counts wrap are refused, never written past a buffer.
expect 2 "larger than this machine can address" --rows 1 --cols 2305843009213693952 --experiment a.h5
expect 3 "add ranks or nodes, or use --mode stream" --rows 2305843009213693952 --cols 4 --mode materialize --experiment a.h5
expect 3 "use fewer columns" --rows 1 --cols 1152921504606846975 --mode stream --experiment a.h5

# Item 15: numbers out of range are errors at the flag, not clamped or wrapped.
expect 2 "'99999999999999999999' is out of range" --rows 99999999999999999999
expect 2 "'18446744073709551616' is out of range" --seed 18446744073709551616
expect 2 "'-1' is not a whole number" --seed -1
# Item 17: plain messages for plain mistakes.
expect 2 "--rows: '0' is out of range: give rows from 1" --rows 0
expect 2 "--rows: '-5' is out of range" --rows -5
expect 2 "--rows: 'abc' is not a whole number" --rows abc
expect 2 "--block-rows: '-1' is out of range" --block-rows -1
expect 2 "directory 'a/b/c' does not exist" --rows 10 --cols 10 --experiment a/b/c/x.h5
[ ! -e a/b ] || fail "--experiment a/b/c/x.h5 created directories"

# Item 1: resuming with another seed is refused; the run keeps seed 42, and
# resuming with seed 42 gives the uninterrupted run's exact sum.
# kill_after PATTERN ARGS...: a bigsum -n 2 job killed -9 a second after its log shows PATTERN.
kill_after() {
  local pattern=$1; shift
  timeout 60 "$MPIEXEC" --oversubscribe -n 2 "$BIGSUM" "$@" >job.log 2>&1 &
  local job=$!
  wait_for "$pattern" job.log 20 || fail "the job did not get to '$pattern': $(cat job.log)"
  sleep 1
  kill -9 "$job"
  pkill -9 -f "bigsum --rows 120000" || true
  wait "$job" 2>/dev/null
  sleep 0.5
}
args=(--rows 120000 --cols 40000 --block-rows 40 --mode stream --isa scalar --experiment r.h5)
run 2 "$BIGSUM" "${args[@]}" --seed 42 --experiment ref.h5
[ "$RC" -eq 0 ] || fail "reference run failed: $OUT"
ref=$(exact_sum)
kill_after "run RUN-1" "${args[@]}" --seed 42
expect 2 "params/seed was 42 in run RUN-1, now 7" "${args[@]}" --seed 7 --resume RUN-1
"$BIN/tracking/rankflow" show r.h5 RUN-1 | grep -E "params/seed +Int +42" >/dev/null ||
  fail "the refused resume changed params/seed: $("$BIN/tracking/rankflow" show r.h5 RUN-1)"
expect 0 "" "${args[@]}" --seed 42 --resume RUN-1
[ "$(exact_sum)" = "$ref" ] || fail "resumed sum $(exact_sum) differs from the uninterrupted $ref"

# Asked for explicitly (--on-change restart), resuming with seed 7 runs every
# call afresh and records seed 7. Killed again at the worst moment (after
# the restart is journaled, with partitions of both seeds in the journal),
# the run resumes to seed 7's exact sum and never reuses a seed-42 partition.
run 2 "$BIGSUM" "${args[@]}" --seed 7 --experiment ref7.h5
[ "$RC" -eq 0 ] || fail "seed 7 reference run failed: $OUT"
ref7=$(exact_sum)
[ "$ref7" != "$ref" ] || fail "seeds 7 and 42 gave the same sum"
kill_after "run RUN-2" "${args[@]}" --seed 42
kill_after "every call of run RUN-2 runs afresh" "${args[@]}" --seed 7 --resume RUN-2 --on-change restart
grep -q "params/seed was 42 in run RUN-2, now 7" job.log || fail "the restart did not name the change: $(cat job.log)"
"$BIN/tracking/rankflow" show r.h5 RUN-2 | grep -E "params/seed +Int +7" >/dev/null ||
  fail "the killed restart did not keep seed 7: $("$BIN/tracking/rankflow" show r.h5 RUN-2)"
expect 0 "partitions reused" "${args[@]}" --seed 7 --resume RUN-2
[ "$(exact_sum)" = "$ref7" ] || fail "restarted, killed and resumed sum $(exact_sum) differs from seed 7's $ref7"
expect 2 "--on-change expects 'refuse' or 'restart'" "${args[@]}" --on-change nonsense
echo OK
