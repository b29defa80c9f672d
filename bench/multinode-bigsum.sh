#!/bin/bash
# bigsum over 2 hosts vs 1 host, and the network under it (issue #6).
#   bench/multinode-bigsum.sh BUILD_DIR [ROWS COLS]    (root: network namespaces)
# Brings up tests/multinode's 2-host cluster, runs the same Google Benchmark
# (BM_bigsum_rankflow in stream mode) at -n 4 on one host (rfn1:4)
# and over two (rfn1:2,rfn2:2), both over TCP and, on one host, over shared
# memory too, then rf_netcheck for latency and bandwidth. Brings it down at the end.
set -u
BUILD=$(cd "${1:?BUILD_DIR}" && pwd)
ROWS=${2:-40000} COLS=${3:-40000}
SRC=$(cd "$(dirname "$0")/.." && pwd)
M=$SRC/tests/multinode
export RF_NETNS_DIR=/tmp/rankflow-netns-bench RF_NETNS_NET=10.233.0 RF_NETNS_SLOTS=4
OUT=${OUT:-$PWD/multinode-bench}
mkdir -p "$OUT"
trap 'bash "$M/netns-cluster.sh" down > /dev/null 2>&1' EXIT
bash "$M/netns-cluster.sh" up 2 || exit 1
mpicc -O2 -o "$OUT/rf_netcheck" "$M/rf_netcheck.c" || exit 1
B=(-x RANKFLOW_BENCH_ROWS=$ROWS -x RANKFLOW_BENCH_COLS=$COLS "$BUILD/bench/rankflow_bench"
   --benchmark_filter='BM_bigsum_rankflow/1/' --benchmark_out_format=json)
for round in 1 2 3; do
  bash "$M/netns-cluster.sh" run -n 4 --host rfn1:4 "${B[@]}" --benchmark_out="$OUT/one-host-tcp-$round.json"
  bash "$M/netns-cluster.sh" run -n 4 --host rfn1:2,rfn2:2 "${B[@]}" --benchmark_out="$OUT/two-hosts-$round.json"
  bash "$M/netns-cluster.sh" run -n 4 --host rfn1:4 --mca btl vader,self "${B[@]}" \
    --benchmark_out="$OUT/one-host-shm-$round.json"
done
cd "$OUT" && {
  bash "$M/netns-cluster.sh" run -n 2 --map-by node ./rf_netcheck > netcheck-tcp.txt 2>&1
  bash "$M/netns-cluster.sh" run -n 2 --host rfn1:2 --mca btl vader,self ./rf_netcheck --pair local > netcheck-shm.txt 2>&1
  grep RESULT netcheck-*.txt
}
python3 - "$OUT" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
for layout in ("one-host-shm", "one-host-tcp", "two-hosts"):
    times = {}
    for f in sorted(glob.glob(f"{out}/{layout}-*.json")):
        for b in json.load(open(f))["benchmarks"]:
            times.setdefault(b["name"], []).append(b["real_time"])
    for name, ts in sorted(times.items()):
        print(f"{layout:14s} {name:55s} median {statistics.median(ts):9.1f} ms  runs {', '.join(f'{t:.0f}' for t in ts)}")
PY
