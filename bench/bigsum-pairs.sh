#!/bin/bash
# rankflow's bigsum against the hand-written MPI program (bench/bigsum_handwritten.c),
# pair by pair in one sitting (issue #17 item 6): each pair runs both programs
# back to back, alternating which goes first, and reports the whole command's
# wall time as a user sees it (mpirun start to exit) and each program's own
# generation and sum times.
#   bench/bigsum-pairs.sh BUILD_DIR [RANKS] [ROWS] [COLS] [PAIRS]
# RF_ARGS adds flags to bigsum (RF_ARGS="--tracking-mode debug": untracked, as the
# hand-written program is). Root needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
set -u
BUILD=$(cd "${1:?BUILD_DIR}" && pwd)
N=${2:-2} ROWS=${3:-20000} COLS=${4:-20000} PAIRS=${5:-9}
HW=${HW:-$BUILD/bench/bigsum_handwritten} RF=$BUILD/examples/bigsum/bigsum  # HW=.../bigsum_handwritten_native: -march=native
WORK=$(mktemp -d) && trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
HW_ALL=() RF_ALL=()
ms() { echo $(( $(date +%s%N) / 1000000 )); }
run_hw() {
  local t0 t1 out
  t0=$(ms); out=$(mpirun -n "$N" "$HW" "$ROWS" "$COLS" 42) || exit 1; t1=$(ms)
  HW_SUM=$(awk '/^sum/ {print $2}' <<< "$out")
  HW_LINE="$((t1 - t0)) $(awk '/^wall_ms/ {print $4, $6}' <<< "$out")"
}
run_rf() {
  local t0 t1 out
  t0=$(ms)
  out=$(RANKFLOW_PROGRESS=off mpirun -n "$N" "$RF" --rows "$ROWS" --cols "$COLS" --seed 42 --mode materialize \
        --experiment "$WORK/bench.h5" ${RF_ARGS:-}) || exit 1
  t1=$(ms)
  RF_SUM=$(sed -n 's/^The sum is \(.*\)\.$/\1/p' <<< "$out")
  RF_LINE="$((t1 - t0)) $(sed -n 's/^Generating the matrix took \([0-9]*\)ms; summing it took \([0-9]*\)ms.*/\1 \2/p' <<< "$out")"
}
echo "# bigsum -n $N, $ROWS x $COLS materialised, $PAIRS pairs, against $(basename "$HW"); wall = the whole mpirun command"
printf '%-5s %28s %28s %7s\n' pair "hand-written wall/gen/sum ms" "rankflow wall/gen/sum ms" ratio
for p in $(seq 1 "$PAIRS"); do
  if (( p % 2 )); then run_hw; run_rf; else run_rf; run_hw; fi
  if [[ "$HW_SUM" != "$RF_SUM" ]]; then
    echo "pair $p: the sums differ: hand-written $HW_SUM, rankflow $RF_SUM" >&2
    exit 1
  fi
  read -r hw_wall hw_gen hw_sum <<< "$HW_LINE"
  read -r rf_wall rf_gen rf_sum <<< "$RF_LINE"
  printf '%-5s %28s %28s %7.3f\n' "$p" "$hw_wall / $hw_gen / $hw_sum" "$rf_wall / $rf_gen / $rf_sum" \
    "$(echo "$rf_wall / $hw_wall" | bc -l)"
  HW_ALL+=("$hw_wall") RF_ALL+=("$rf_wall")
done
# First touch of a fresh buffer costs 0.1-4 s on a VM, by whether the kernel
# has huge pages at hand: the best case of each and the median pair say more
# than any one pair.
python3 - "${HW_ALL[*]}" "${RF_ALL[*]}" <<'PY'
import statistics, sys
hw = [int(x) for x in sys.argv[1].split()]
rf = [int(x) for x in sys.argv[2].split()]
ratios = [r / h for h, r in zip(hw, rf)]
print(f"best wall: hand-written {min(hw)} ms, rankflow {min(rf)} ms, ratio {min(rf) / min(hw):.3f}")
print(f"median wall: hand-written {statistics.median(hw)} ms, rankflow {statistics.median(rf)} ms; "
      f"median pair ratio {statistics.median(ratios):.3f}; pairs within 1.05x: {sum(r <= 1.05 for r in ratios)}/{len(ratios)}")
PY
