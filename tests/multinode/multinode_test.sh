#!/bin/bash
# rankflow across real network hops: two "hosts" (network namespaces rfn1 and
# rfn2 with their own hostnames, TCP over a veth bridge, mpirun's rsh launcher
# through tests/multinode/rf-ssh-agent.sh), then a 2-node Slurm on them.
#
#   multinode_test.sh SRC [--no-slurm]      (BIN and MPIEXEC from ctest)
#
# Checks: bigsum's sum over 2 hosts equals the one-host sum bit for bit (both
# modes); parallel_map, mapreduce, errors, tracking into one file and tasks
# routed by host label across hosts; a multi-node run stopped by SIGTERM and
# resumed; faults (the remote daemon killed, the remote host's link cut):
# the job ends in bounded time naming the host, the file stays readable,
# --resume finishes with the same sum; sbatch -N 2 -n 4 (bigsum and every feature).
# Needs root (network namespaces). Exit 77 (skipped) when not root.
SRC=$1
source "$SRC/tests/scripts/common.sh"
M="$SRC/tests/multinode"
RF="$BIN/tracking/rankflow"
PROBE="$BIN/tests/multinode_probe"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: network namespaces need root"
  exit 77
fi
# Our own state directory and subnet, so a cluster someone else started is left alone.
export RF_NETNS_DIR=/tmp/rankflow-netns-ctest RF_NETNS_NET=10.232.0 RF_NETNS_RUN_TIMEOUT=180
need=()
command -v ip > /dev/null || need+=(iproute2)
if [ "${2:-}" != --no-slurm ]; then
  for p in munge slurmctld slurmd slurm-client libpmix-dev; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2> /dev/null | grep -q '^ii' || need+=("$p")
  done
fi
if ((${#need[@]})); then
  echo "apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" > /dev/null ||
    { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" > /dev/null; } ||
    fail "cannot install ${need[*]}"
fi

cleanup() {
  bash "$M/netns-slurm.sh" down > /dev/null 2>&1
  bash "$M/netns-cluster.sh" down > /dev/null 2>&1
}
cleanup
trap cleanup EXIT
timeout 60 bash "$M/netns-cluster.sh" up 2 || fail "the 2-host cluster did not come up"

rm -rf multinode && mkdir multinode && cd multinode || exit 1
W=$PWD
# across HOSTS ARGS...: mpirun inside rfn1 over the given hosts; output in $OUT, code in $RC.
across() {
  local hosts=$1
  shift
  OUT=$(timeout 200 bash "$M/netns-cluster.sh" run -n 4 --host "$hosts" "$@" 2>&1)
  RC=$?
}
step() { echo "--- $*"; }

# ---- 1. bigsum: 2 hosts == 1 host, bit for bit --------------------------------------
for mode in stream materialize; do
  step "bigsum --mode $mode: 4 ranks on one host vs rfn1:2,rfn2:2"
  run 4 "$BIGSUM" --rows 6000 --cols 5000 --mode $mode --tracking-mode debug --progress off
  [ "$RC" -eq 0 ] || fail "one-host bigsum exited $RC: $OUT"
  want=$(exact_sum)
  across rfn1:2,rfn2:2 "$BIGSUM" --rows 6000 --cols 5000 --mode $mode --tracking-mode debug --progress off
  [ "$RC" -eq 0 ] || fail "two-host bigsum exited $RC: $OUT"
  got=$(exact_sum)
  [ -n "$want" ] && [ "$got" = "$want" ] || fail "two-host sum '$got' != one-host '$want': $OUT"
  echo "same exact sum on 1 and 2 hosts: $got"
done
REF_SUM=$want

# ---- 2. every feature across hosts ---------------------------------------------------
step "parallel_map, mapreduce, errors, tracking, tasks over rfn1:2,rfn2:2"
run 4 "$PROBE" --experiment "$W/one.h5" --progress off
[ "$RC" -eq 0 ] || fail "one-host probe exited $RC: $OUT"
want_mr=$(sed -n 's/^mapreduce: //p' <<<"$OUT")
across rfn1:2,rfn2:2 "$PROBE" --experiment "$W/two.h5" --progress off
[ "$RC" -eq 0 ] || fail "two-host probe exited $RC: $OUT"
for line in "hosts: rfn1 rfn2" "parallel_map: 2000 results, in order yes, computed on 2 hosts" \
            "mapreduce: $want_mr" "task for rfn1 ran on rfn1" "task for rfn2 ran on rfn2" "tracked: RUN-1 in $W/two.h5"; do
  grep -qxF "$line" <<<"$OUT" || fail "probe over 2 hosts lacks '$line': $OUT"
done
grep -qE "^error: host rfn2 rank [23]: bad item [0-9]+ on rfn2 \(std::runtime_error\)$" <<<"$OUT" ||
  fail "the error raised on rfn2 does not name it: $OUT"
SHOW=$("$RF" show two.h5 RUN-1 2>&1) || fail "rankflow show two.h5: $SHOW"
for r in 0 1 2 3; do
  host=rfn$((r / 2 + 1))
  grep -qE "ranks/$r/host +String +$host$" <<<"$SHOW" || fail "rank $r's field is not from $host: $SHOW"
done
grep -qE "hosts: +rfn1, rfn1, rfn2, rfn2" <<<"$SHOW" || fail "run hosts: $SHOW"
grep -qE "hosts_seen +StringSet +.*rfn1.*rfn2" <<<"$SHOW" || fail "StringSet from both hosts: $SHOW"
grep -qE "per_rank +IntSeries +4 points" <<<"$SHOW" || fail "series points from all ranks: $SHOW"
echo "all features across hosts: OK"

# ---- 2b. backup copies across hosts (issue 17 item 1) --------------------------------
# backup_test slows the last rank (rank 3, on rfn2) 15x; its partitions get copies on
# idle ranks of both hosts, the first copy wins, the sums stay bit-identical and the
# ledger holds the lost copies (the test checks all of it).
step "backup copies of a slow rank's partitions over rfn1:2,rfn2:2"
across rfn1:2,rfn2:2 "$BIN/tests/backup_test" --gtest_filter='Backups.*'
[ "$RC" -eq 0 ] || fail "backup_test over 2 hosts exited $RC: $OUT"
grep -E "^-n 4: .* without backups, .* with$" <<<"$OUT" || fail "backup_test printed no timing: $OUT"
grep -q "PASSED.*3 tests" <<<"$OUT" || fail "backup_test over 2 hosts did not pass its 3 tests: $OUT"
grep -q "WARNING: rank 3 (host rfn2) keeps losing" <<<"$OUT" || fail "no warning naming the slow rank and its host: $OUT"

# ---- 3. resume of a multi-node run ---------------------------------------------------
BIG=(--rows 120000 --cols 40000 --block-rows 40 --mode stream --isa scalar --progress off)  # 3000 partitions
step "reference sum for the resume and fault runs"
run 4 "$BIGSUM" "${BIG[@]}" --tracking-mode debug
[ "$RC" -eq 0 ] || fail "reference bigsum exited $RC: $OUT"
BIG_SUM=$(exact_sum)

# start_bg LOG EXP [args]: bigsum over 2 hosts in the background, once its run began.
start_bg() {
  local log=$1 exp=$2
  shift 2
  timeout 200 bash "$M/netns-cluster.sh" run -n 4 --host rfn1:2,rfn2:2 "$BIGSUM" "${BIG[@]}" --experiment "$exp" "$@" \
    > "$log" 2>&1 &
  PID=$!
  wait_for "tracking to" "$log" 60 || fail "bigsum did not start: $(cat "$log")"
}
# finish LOG EXP: --resume over 2 hosts (fresh daemons) to the reference sum.
finish() {
  local log=$1 exp=$2
  across rfn1:2,rfn2:2 "$BIGSUM" "${BIG[@]}" --experiment "$exp" --resume
  echo "$OUT" > "$log"
  [ "$RC" -eq 0 ] || fail "--resume exited $RC: $OUT"
  [ "$(exact_sum)" = "$BIG_SUM" ] || fail "resumed sum '$(exact_sum)' != '$BIG_SUM': $OUT"
  grep -q "Tracked as run RUN-1 " <<<"$OUT" || fail "the resume did not continue RUN-1: $OUT"
  grep -qE "[1-9][0-9]* of 3000 partitions reused" <<<"$OUT" || fail "nothing was reused: $OUT"
  echo "resumed: $(grep -oE '[0-9]+ of 3000 partitions reused' <<<"$OUT"), same sum"
}

step "SIGTERM to a 2-host job, then --resume"
start_bg term.log "$W/term.h5"
sleep 1
pkill -TERM -f "^mpirun .*--experiment $W/term.h5" || fail "no mpirun to signal"
t0=$SECONDS
wait "$PID"
rc=$?
[ $((SECONDS - t0)) -le 30 ] || fail "the job took $((SECONDS - t0)) s to stop after SIGTERM"
grep -q "interrupted" term.log || fail "bigsum did not report the interruption (rc $rc): $(cat term.log)"
finish term-resume.log "$W/term.h5"

# ---- 4. faults across hosts ----------------------------------------------------------
step "kill -9 of the remote daemon (orted on rfn2) mid-run"
start_bg orted.log "$W/orted.h5"
sleep 1
orted=$(for p in $(ip netns pids rfn2); do [ "$(cat /proc/$p/comm 2> /dev/null)" = orted ] && echo $p; done)
[ -n "$orted" ] || fail "no orted in rfn2"
kill -9 $orted
t0=$SECONDS
wait "$PID"
rc=$?
took=$((SECONDS - t0))
echo "job ended $took s after the daemon was killed, exit $rc"
[ "$took" -le 60 ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "no bounded failure (rc $rc, $took s): $(cat orted.log)"
grep -q "rfn2" orted.log || fail "the failure does not name rfn2: $(cat orted.log)"
"$RF" show orted.h5 RUN-1 > orted-show.log 2>&1 || fail "orted.h5 unreadable: $(cat orted-show.log)"
bash "$M/netns-cluster.sh" down > /dev/null 2>&1  # what the lost daemon left behind
timeout 60 bash "$M/netns-cluster.sh" up 2 || fail "the cluster did not come back"
finish orted-resume.log "$W/orted.h5"

step "rfn2's link cut mid-run"
# MPI cannot survive a partition, and with its defaults mpirun notices a
# silent remote daemon only after 300 s + 9 x 20 s of TCP keepalive; when a
# rank calls MPI_Abort first, mpirun's kill order to the unreachable daemon
# waits on TCP retransmission (many minutes) unless keepalive probing of that
# connection had already begun. Keepalives shorter than --peer-timeout let
# mpirun give up on rfn2 (docs/multinode.md); rankflow's watchdog names the rank.
export OMPI_MCA_oob_tcp_keepalive_time=1 OMPI_MCA_oob_tcp_keepalive_intvl=1 OMPI_MCA_oob_tcp_keepalive_probes=2
# Once in ~15 CI runs, mpirun itself (Open MPI 4.1.4) segfaults in
# PMIx_Finalize while aborting the job rankflow's watchdog ended, and then
# hangs: an Open MPI defect after rankflow did its part (its error names the
# rank within --peer-timeout). That case is retried once, said so, and the
# step's limit is short so that it costs ~70 s, not the default 180.
link_exp=$W/link.h5
for attempt in 1 2; do
  [ "$attempt" -eq 2 ] && link_exp=$W/link-retry.h5  # a run of its own: the resume below continues RUN-1
  RF_NETNS_RUN_TIMEOUT=70 start_bg link.log "$link_exp" --peer-timeout 3
  sleep 1
  bash "$M/netns-cluster.sh" link rfn2 down
  t0=$SECONDS
  wait "$PID"
  rc=$?
  took=$((SECONDS - t0))
  bash "$M/netns-cluster.sh" link rfn2 up
  echo "job ended $took s after the link was cut, exit $rc"
  if [ "$attempt" -eq 1 ] && { [ "$rc" -eq 124 ] || [ "$took" -gt 60 ]; } && grep -q "PMIx_Finalize" link.log &&
    grep -qE "rank [23] \(host rfn2\) has not been heard from" link.log; then
    echo "mpirun crashed in PMIx_Finalize after rankflow ended the job (Open MPI defect): the step once more"
    bash "$M/netns-cluster.sh" down > /dev/null 2>&1
    timeout 60 bash "$M/netns-cluster.sh" up 2 || fail "the cluster did not come back"
    continue
  fi
  break
done
[ "$took" -le 60 ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "no bounded failure (rc $rc, $took s): $(cat link.log)"
grep -qE "rank [23] \(host rfn2\)" link.log || fail "the failure does not name rfn2's ranks: $(cat link.log)"
"$RF" show "$link_exp" RUN-1 > link-show.log 2>&1 || fail "$link_exp unreadable: $(cat link-show.log)"
bash "$M/netns-cluster.sh" down > /dev/null 2>&1
timeout 60 bash "$M/netns-cluster.sh" up 2 || fail "the cluster did not come back"
finish link-resume.log "$link_exp"
unset OMPI_MCA_oob_tcp_keepalive_time OMPI_MCA_oob_tcp_keepalive_intvl OMPI_MCA_oob_tcp_keepalive_probes

# ---- 5. Slurm: sbatch -N 2 -n 4 ------------------------------------------------------
if [ "${2:-}" != --no-slurm ]; then
  step "sbatch -N 2 -n 4 on a 2-node Slurm"
  timeout 120 bash "$M/netns-slurm.sh" up 2 || fail "the 2-node Slurm did not start"
  out=$(timeout 300 bash "$M/netns-slurm.sh" exec sbatch --wait -N 2 -n 4 -o "$W/sb-%j.out" \
    "$M/jobs/mpirun.sbatch" "$BIGSUM" --rows 6000 --cols 5000 --mode stream --experiment "$W/slurm.h5" --progress off 2>&1)
  rc=$?
  job=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' <<<"$out")
  [ "$rc" -eq 0 ] || fail "sbatch: rc $rc: $out $(cat "$W"/sb-*.out 2> /dev/null)"
  got=$(sed -n 's/^Exact sum: //p' "$W/sb-$job.out")
  [ "$got" = "$REF_SUM" ] || fail "sbatch -N 2 sum '$got' != '$REF_SUM': $(cat "$W/sb-$job.out")"
  SHOW=$("$RF" show slurm.h5 RUN-1 2>&1)
  grep -qE "hosts: +rfn1, rfn1, rfn2, rfn2" <<<"$SHOW" || fail "the Slurm run's hosts: $SHOW"
  echo "sbatch -N 2 -n 4: same sum, ranks on rfn1 and rfn2"
  out=$(timeout 300 bash "$M/netns-slurm.sh" exec sbatch --wait -N 2 -n 4 -o "$W/probe-%j.out" \
    "$M/jobs/mpirun.sbatch" "$PROBE" --experiment "$W/slurm-probe.h5" --progress off 2>&1)
  rc=$?
  job=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' <<<"$out")
  [ "$rc" -eq 0 ] || fail "sbatch probe: rc $rc: $out $(cat "$W"/probe-*.out 2> /dev/null)"
  for line in "hosts: rfn1 rfn2" "parallel_map: 2000 results, in order yes, computed on 2 hosts" \
              "mapreduce: $want_mr" "task for rfn2 ran on rfn2"; do
    grep -qxF "$line" "$W/probe-$job.out" || fail "probe under sbatch -N 2 lacks '$line': $(cat "$W/probe-$job.out")"
  done
  grep -qE "^error: host rfn2 rank [23]: " "$W/probe-$job.out" || fail "probe error under sbatch: $(cat "$W/probe-$job.out")"
  echo "sbatch -N 2 -n 4: every feature across the two nodes"
fi
echo "multinode OK"
