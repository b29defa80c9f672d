# A member blocked in a plain MPI call on a multi-rank task's communicator
# when another member fails: the task reports the failure at once, and the
# job ends with an error naming the blocked rank instead of hanging
# (docs/tasks.md, "Multi-rank tasks").
source "$(dirname "$0")/common.sh"
start=$SECONDS
run 3 "$BIN/tests/gang_blocked" --peer-timeout 1
took=$((SECONDS - start))
echo "exit $RC after ${took}s"
[ "$RC" -ne 0 ] || fail "the job exited 0 with a member blocked: $OUT"
printf '%s\n' "$OUT" | grep -q "task failed: .*member 1 of 2: member 1 failed before the barrier" ||
  fail "the future did not report member 1's error: $OUT"
printf '%s\n' "$OUT" | grep -q "members of multi-rank tasks never returned: task 'blocked'.*members on rank(s) [12] (host" ||
  fail "no error naming the blocked member's rank: $OUT"
printf '%s\n' "$OUT" | grep -q "blocked in an MPI call on the task's communicator" || fail "the error does not say why: $OUT"
printf '%s\n' "$OUT" | grep -q "^after drive" && fail "drive() returned with a member still blocked: $OUT"
[ "$took" -lt 40 ] || fail "took ${took}s to end"
echo OK
