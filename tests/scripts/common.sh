# Shared by the script tests. BIN (build dir) and MPIEXEC come from ctest.
set -u
BIGSUM="$BIN/examples/bigsum/bigsum"
fail() { echo "FAIL: $*" >&2; exit 1; }
# run N ARGS...: mpiexec -n N ARGS..., output in $OUT, exit code in $RC. A hang
# is cut after RUN_TIMEOUT seconds (exit 124), which every caller treats as failure.
run() {
  local n=$1; shift
  OUT=$(timeout "${RUN_TIMEOUT:-120}" "$MPIEXEC" --oversubscribe -n "$n" "$@" 2>&1)
  RC=$?
}
exact_sum() { printf '%s\n' "$OUT" | sed -n 's/^Exact sum: //p'; }
# wait_for PATTERN FILE SECONDS: until FILE (a background job's log) holds PATTERN.
wait_for() {  # wait_for PATTERN FILE SECONDS
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    grep -q "$1" "$2" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
