#!/bin/bash
# The driver-mode and tracking examples run and print what they promise, at
# one rank (the driver runs the tasks itself) and at several.
. "$(dirname "$0")/common.sh"
EX="$BIN/examples"
TOOL="$BIN/tracking/rankflow"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

for n in 1 3; do
  run $n "$EX/rankflow-tasks"
  [ "$RC" = 0 ] || fail "rankflow-tasks -n $n exited $RC: $OUT"
  for want in "load: " "sequence: loss" "parallel: lr 0.50 -> slope 3.000 intercept 1.000" \
              "mapreduce: sum 1/i^2 = 1.644933067"; do
    grep -qF "$want" <<<"$OUT" || fail "rankflow-tasks -n $n lacks '$want': $OUT"
  done
  workers=$(grep -c "^  rank " <<<"$OUT")
  [ "$workers" = $((n > 1 ? n - 1 : 1)) ] || fail "rankflow-tasks -n $n lists $workers workers: $OUT"
  # Its run records every task of the drive() in the ledger (call -1, one row
  # per attempt, named), on the ranks that ran them.
  id=RUN-$((n == 1 ? 1 : 2))
  LEDGER=$("$TOOL" show rankflow.h5 "$id" --ledger 2>&1) || fail "rankflow show --ledger: $LEDGER"
  grep -qE "^  -1 +drive +17 +17 +17 +0 " <<<"$LEDGER" || fail "-n $n: no drive call of 17 tasks: $LEDGER"
  [ "$(grep -cE "^  -1 +[0-9]+ task (load|fit|loss|partial_sum|add_up) " <<<"$LEDGER")" = 17 ] ||
    fail "-n $n: not 17 named task rows: $LEDGER"
  if [ "$n" -gt 1 ]; then
    grep -qE "^  -1 +[0-9]+ task [a-z_]+ +0 " <<<"$LEDGER" && fail "-n $n: a task on rank 0 (the driver): $LEDGER"
  fi
done

# A label given to one rank only (MPMD): the labelled task runs there.
OUT=$(timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$EX/rankflow-tasks" : -n 1 "$EX/rankflow-tasks" --labels bigmem 2>&1)
grep -q "default,.*,bigmem" <<<"$OUT" || fail "no worker lists the bigmem label: $OUT"
grep -q "^bigmem task ran on rank 2$" <<<"$OUT" || fail "bigmem task did not run on rank 2: $OUT"

for n in 1 2; do
  run $n "$EX/rankflow-model_report" --experiment "project$n.h5"
  [ "$RC" = 0 ] || fail "model_report -n $n exited $RC: $OUT"
  grep -q "^Model My model name uses the following features: a, b, c (rank $((n - 1)))$" <<<"$OUT" ||
    fail "model_report -n $n: no substituted features: $OUT"
  grep -q "^Model Other model uses the following features: a, b, c" <<<"$OUT" || fail "submit-time source: $OUT"
  grep -q "as expected: .*artifact 'labels' not found in run RUN-1.*it has: features, params/alpha" <<<"$OUT" ||
    fail "missing artifact error: $OUT"
done

run 3 "$EX/rankflow-sweep" --experiment sweep.h5
[ "$RC" = 0 ] || fail "sweep exited $RC: $OUT"
grep -q "^sweep: 12 splits; best lr 0.30 decay 0.0" <<<"$OUT" || fail "sweep result: $OUT"
SHOW=$("$TOOL" show sweep.h5 RUN-1 2>&1) || fail "rankflow show: $SHOW"
[ "$(grep -c '/loss  *FloatSeries  *50 points' <<<"$SHOW")" = 12 ] || fail "not 12 loss curves of 50 points: $SHOW"
[ "$(grep -c '/rank  *Int' <<<"$SHOW")" = 12 ] || fail "not 12 split ranks: $SHOW"
grep -q "best/lr  *Float  *0.3" <<<"$SHOW" || fail "best/lr: $SHOW"
echo "examples OK"
