# A member of a parallel_map team blocked in a plain MPI call on the
# partition's communicator when another member fails: the job ends with exit
# 70 and an error naming the failure and the blocked rank instead of hanging
# (docs/usage.md, "Partitions on several ranks").
source "$(dirname "$0")/common.sh"
for who in leader follower; do
  start=$SECONDS
  run 2 "$BIN/tests/team_blocked" "$who" --peer-timeout 1
  took=$((SECONDS - start))
  echo "$who fails: exit $RC after ${took}s"
  [ "$RC" -eq 70 ] || fail "$who fails: exit $RC, not 70: $OUT"
  if [ "$who" = leader ]; then
    printf '%s\n' "$OUT" | grep -q "partition [0-9]*: member 0 failed: member 0 failed.*rank(s) 1 (member 1, host" ||
      fail "no error naming blocked rank 1: $OUT"
  else
    printf '%s\n' "$OUT" | grep -q "partition [0-9]*: member 1 failed: member 1 failed.*rank(s) 0 (member 0, host" ||
      fail "no error naming blocked rank 0: $OUT"
  fi
  printf '%s\n' "$OUT" | grep -q "blocked in an MPI call on partition_context::comm()" || fail "the error does not say why: $OUT"
  printf '%s\n' "$OUT" | grep -q "^after the call" && fail "the call returned with a member blocked: $OUT"
  [ "$took" -lt 40 ] || fail "$who fails: took ${took}s to end"
done
echo OK
