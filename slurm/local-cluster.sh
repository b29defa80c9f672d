#!/usr/bin/env bash
# local-cluster.sh -- a real single-node Slurm cluster on localhost, for
# rankflow's `slurm` tests and for trying the batch scripts in slurm/ on a
# laptop. rankflow's own copy of the verified recipe local-slurm.sh (same
# behaviour; default directory /tmp/rankflow-slurm).
#
# Verified on Debian 12 (Slurm 22.05.8, munge 0.5.15, Open MPI 4.1.4), as root,
# no systemd, 2 cores. Everything lives under one directory ($LOCAL_SLURM_DIR,
# default /tmp/rankflow-slurm): nothing is written to /etc, /run or /var except by
# apt-get when packages are missing.
#
#   local-cluster.sh start    install missing packages, configure, start munged,
#                           slurmctld, slurmd; wait (bounded) until the node is
#                           idle and a 1-task srun works. Safe to call again.
#   local-cluster.sh stop     cancel jobs, stop ONLY the daemons this script
#                           started (by the PIDs it recorded). Safe to call again.
#   local-cluster.sh status   daemons, sinfo, squeue.
#   local-cluster.sh env      print the exports a client needs; use
#                           eval "$(local-cluster.sh env)"
#   local-cluster.sh deps     apt-install the build set (cmake, g++, Open MPI,
#                           Boost.MPI, parallel HDF5) if missing.
#   local-cluster.sh purge    stop, then delete $LOCAL_SLURM_DIR.
#
# Knobs (environment):
#   LOCAL_SLURM_DIR=/tmp/rankflow-slurm state, config, logs, pid records
#   LOCAL_SLURM_TIMEOUT=60             seconds to wait for readiness
#   LOCAL_SLURM_CPUS=                  advertise N CPUs instead of the real
#                                      count (e.g. 4 on a 2-core box, so
#                                      "sbatch -n 4" runs without --overcommit)
#   LOCAL_SLURM_CTLD_PORT=6817  LOCAL_SLURM_SLURMD_PORT=6818
#   LOCAL_SLURM_PARTITION=debug  LOCAL_SLURM_CLUSTER=localci
set -euo pipefail

LS_DIR=${LOCAL_SLURM_DIR:-/tmp/rankflow-slurm}
LS_TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}
LS_CPUS=${LOCAL_SLURM_CPUS:-}
LS_CTLD_PORT=${LOCAL_SLURM_CTLD_PORT:-6817}
LS_SLURMD_PORT=${LOCAL_SLURM_SLURMD_PORT:-6818}
LS_PARTITION=${LOCAL_SLURM_PARTITION:-debug}
LS_CLUSTER=${LOCAL_SLURM_CLUSTER:-localci}

CONF=$LS_DIR/etc/slurm.conf
MUNGE_SOCK=$LS_DIR/munge/run/munge.socket.2
PIDS=$LS_DIR/pids            # our records: one file per daemon we started
export LOCAL_SLURM_INSTANCE=$LS_DIR   # tag in our daemons' environment

RUNTIME_PKGS=(munge slurmctld slurmd slurm-client libpmix-dev)
# libpmix-dev: Slurm's mpi_pmix plugin dlopen()s pmix2/lib/libpmix.so, the
# unversioned symlink that only the -dev package ships (srun --mpi=pmix).
BUILD_PKGS=(cmake g++ make libopenmpi-dev openmpi-bin libboost-mpi-dev
            libboost-serialization-dev libhdf5-openmpi-dev hdf5-tools)

log() { printf '[local-slurm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- packages --
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' \
      || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}) and not root"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# ------------------------------------------------------- process ownership --
# A recorded PID counts as ours only if it is alive, has the expected name and
# its command line mentions our directory (guards against PID reuse and
# against a system munged/slurmd).
is_ours() { # name
  local name=$1 pid
  pid=$(cat "$PIDS/$name.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ] || return 1
  tr '\0' ' ' < /proc/"$pid"/cmdline 2>/dev/null | grep -qF "$LS_DIR/" || return 1
  echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # seconds description command...
  local secs=$1 what=$2 deadline; shift 2
  deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || { log "timeout (${secs}s) waiting for $what"; return 1; }
    sleep 0.2
  done
}

stop_pid() { # name pid
  local name=$1 pid=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "$name ($pid) ignored SIGTERM for 15s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

dump_logs() {
  local f
  for f in "$LS_DIR"/munge/munged.log "$LS_DIR"/log/slurmctld.log "$LS_DIR"/log/slurmd.log; do
    [ -f "$f" ] && { log "--- tail $f"; tail -n 25 "$f" >&2; }
  done
  return 0
}

# ------------------------------------------------------------------ munge --
start_munge() {
  local pid
  if pid=$(is_ours munged); then log "munged already running (pid $pid)"; return; fi
  # munged insists: key dir private, socket dir world-executable, no
  # group/other-writable parents (except sticky /tmp).
  mkdir -p "$LS_DIR/munge/key" "$LS_DIR/munge/run"
  chmod 755 "$LS_DIR" "$LS_DIR/munge" "$LS_DIR/munge/run"
  chmod 700 "$LS_DIR/munge/key"
  if [ ! -s "$LS_DIR/munge/key/munge.key" ]; then
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$LS_DIR/munge/key/munge.key"
    else
      dd if=/dev/urandom of="$LS_DIR/munge/key/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$LS_DIR/munge/key/munge.key"
  fi
  rm -f "$MUNGE_SOCK" "$LS_DIR/munge/run/munged.pid"
  munged --socket="$MUNGE_SOCK" \
         --key-file="$LS_DIR/munge/key/munge.key" \
         --pid-file="$LS_DIR/munge/run/munged.pid" \
         --seed-file="$LS_DIR/munge/key/munged.seed" \
         --log-file="$LS_DIR/munge/munged.log" \
    || { dump_logs; die "munged failed to start"; }
  wait_for 10 "munged pid file" test -s "$LS_DIR/munge/run/munged.pid" || { dump_logs; die munged; }
  cp "$LS_DIR/munge/run/munged.pid" "$PIDS/munged.pid"
  pid=$(is_ours munged) || { dump_logs; die "munged exited right after start"; }
  wait_for 10 "munge round trip" bash -c \
    "munge -S '$MUNGE_SOCK' -n | unmunge -S '$MUNGE_SOCK'" || { dump_logs; die munge; }
  log "munged started (pid $pid)"
}

# ------------------------------------------------------------ slurm.conf --
write_conf() {
  local host hw cpus boards sockets cores threads mem nodeline
  host=$(hostname -s)
  hw=$(slurmd -C | head -n 1)
  field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs); boards=$(field Boards); sockets=$(field SocketsPerBoard)
  cores=$(field CoresPerSocket); threads=$(field ThreadsPerCore); mem=$(field RealMemory)
  if [ -z "$cpus" ] || [ -z "$mem" ]; then die "cannot parse 'slurmd -C': $hw"; fi
  mem=$(( mem * 98 / 100 ))   # configured > real would DRAIN the node
  if [ -n "$LS_CPUS" ]; then
    # Advertise more CPUs than exist; config_overrides stops slurmd from
    # marking the node INVAL for the mismatch.
    nodeline="NodeName=$host NodeAddr=127.0.0.1 CPUs=$LS_CPUS RealMemory=$mem State=UNKNOWN"
  else
    nodeline="NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN"
  fi
  mkdir -p "$LS_DIR/etc"
  cat > "$CONF.tmp" <<EOF
# generated by local-slurm.sh -- single node on localhost, no cgroups, no accounting
ClusterName=$LS_CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=root
SlurmctldPort=$LS_CTLD_PORT
SlurmdPort=$LS_SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$LS_DIR/state/ctld
SlurmdSpoolDir=$LS_DIR/state/slurmd
SlurmctldPidFile=$LS_DIR/run/slurmctld.pid
SlurmdPidFile=$LS_DIR/run/slurmd.pid
SlurmctldLogFile=$LS_DIR/log/slurmctld.log
SlurmdLogFile=$LS_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SchedulerType=sched/backfill
SwitchType=switch/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=30
MinJobAge=300
Waittime=0
${LS_CPUS:+SlurmdParameters=config_overrides}
$nodeline
PartitionName=$LS_PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  cat > "$LS_DIR/env.sh" <<EOF
export SLURM_CONF=$CONF
EOF
  if [ "$(id -u)" = 0 ]; then
    # Jobs inherit the submitter's environment (sbatch --export=ALL), so this
    # also lets mpirun run as root inside batch scripts.
    echo 'export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1' >> "$LS_DIR/env.sh"
  fi
}

# ---------------------------------------------------------------- daemons --
start_daemon() { # name args...
  local name=$1 pid; shift
  if pid=$(is_ours "$name"); then log "$name already running (pid $pid)"; return; fi
  rm -f "$LS_DIR/run/$name.pid"
  # Daemon mode: the daemon forks, calls setsid() and writes its pid file,
  # so it survives the CI step's shell and we know its real PID.
  "$name" -f "$CONF" "$@" || { dump_logs; die "$name failed to start"; }
  wait_for 15 "$name pid file" test -s "$LS_DIR/run/$name.pid" || { dump_logs; die "$name"; }
  cp "$LS_DIR/run/$name.pid" "$PIDS/$name.pid"
  pid=$(is_ours "$name") || { dump_logs; die "$name exited right after start"; }
  log "$name started (pid $pid)"
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o '%t' 2>/dev/null | head -n 1; }

wait_ready() {
  local deadline st resumed=0
  deadline=$(( $(date +%s) + LS_TIMEOUT ))
  while :; do
    st=$(node_state || true)
    case "$st" in
      idle|mix|alloc|comp) break ;;
      down*|drain*|drng*|inval*)
        if ((resumed == 0)); then
          log "node state '$st', trying RESUME"
          scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    if (( $(date +%s) >= deadline )); then
      log "node not ready after ${LS_TIMEOUT}s (state '${st:-none}')"
      scontrol show node "$(hostname -s)" >&2 2>&1 || true
      dump_logs; return 1
    fi
    sleep 0.3
  done
  # Prove that a job step really launches (munge creds, slurmstepd, I/O).
  local left=$(( deadline - $(date +%s) )); ((left > 5)) || left=5
  if ! out=$(timeout "$left" srun -N1 -n1 -t 1 -J local-slurm-smoke hostname 2>&1); then
    log "smoke srun failed: $out"; dump_logs; return 1
  fi
}

cmd_start() {
  local t0; t0=$(now_ms)
  [ "$(id -u)" = 0 ] || die "start needs root (slurmd launches jobs as their owner)"
  ensure_pkgs "${RUNTIME_PKGS[@]}"
  mkdir -p "$LS_DIR"/{etc,log,run,pids,state/ctld,state/slurmd}
  chmod 755 "$LS_DIR"

  local running=0 n
  for n in munged slurmctld slurmd; do is_ours "$n" >/dev/null && running=$((running + 1)); done
  if ((running == 0)); then
    # Fresh start: refuse to fight a foreign Slurm for the ports, regenerate
    # the config from the real hardware.
    port_busy "$LS_CTLD_PORT" && die "port $LS_CTLD_PORT busy (another slurmctld?); set LOCAL_SLURM_CTLD_PORT"
    port_busy "$LS_SLURMD_PORT" && die "port $LS_SLURMD_PORT busy (another slurmd?); set LOCAL_SLURM_SLURMD_PORT"
    write_conf
  elif [ ! -f "$CONF" ]; then
    die "some daemons are running but $CONF is missing; run '$0 stop' first"
  fi
  export SLURM_CONF=$CONF

  start_munge
  # -c: drop job/node state left by a previous run (CI wants a clean slate).
  if is_ours slurmctld >/dev/null; then start_daemon slurmctld
  else start_daemon slurmctld -c; fi
  wait_for 20 "slurmctld to answer" scontrol ping || { dump_logs; die "slurmctld not answering"; }
  start_daemon slurmd -N "$(hostname -s)"
  wait_ready || die "cluster not ready"
  log "ready in $(( $(now_ms) - t0 ))ms: $(sinfo -h -o '%P %a %D %t %c' | head -n 1) cpus"
  log "use: eval \"\$($0 env)\"   (SLURM_CONF=$CONF)"
}

our_stepds() { # PIDs of slurmstepd processes started by our slurmd
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = slurmstepd ] || continue
    # slurmd hands its SLURM_CONF to slurmstepd (our LOCAL_SLURM_INSTANCE
    # tag does not survive that exec), so the config path identifies ours.
    tr '\0' '\n' < /proc/"$p"/environ 2>/dev/null \
      | grep -qxF "SLURM_CONF=$CONF" && echo "$p"
  done
  return 0
}

proc_pairs() { # "pid ppid" for every process, from /proc (procps may be absent)
  local f line ppid
  for f in /proc/[0-9]*/stat; do
    read -r line < "$f" 2>/dev/null || continue
    line=${line##*) }                   # comm may contain spaces: cut at last ')'
    read -r _ ppid _ <<<"$line"         # state ppid ...
    f=${f#/proc/}; echo "${f%/stat} $ppid"
  done
}

kill_job_trees() { # SIGKILL every descendant of our slurmstepds (job processes)
  local roots pids
  roots=$(our_stepds | tr '\n' ' ')
  [ -n "${roots// /}" ] || return 0
  pids=$(proc_pairs | awk -v roots="$roots" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) { in_tree[r[i]] = 1; root[r[i]] = 1 } }
    { parent[$1] = $2 }
    END { do { grew = 0
            for (p in parent) if (!(p in in_tree) && (parent[p] in in_tree)) { in_tree[p] = 1; grew = 1 }
          } while (grew)
          for (p in in_tree) if (!(p in root)) print p }')
  if [ -n "$pids" ]; then
    log "SIGKILL job processes still running: $(echo "$pids" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
}

cmd_stop() {
  [ -d "$LS_DIR" ] || { log "nothing to stop ($LS_DIR absent)"; return 0; }
  export SLURM_CONF=$CONF
  local pid n jobs
  if is_ours slurmctld >/dev/null && is_ours slurmd >/dev/null; then
    jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      log "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      # scancel = SIGTERM, then SIGKILL only after KillWait (30 s), whatever
      # --signal says. Give jobs 5 s, then SIGKILL what still runs under our
      # slurmstepds so a job that traps TERM does not hold 'stop' for 30 s.
      # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
      if ! wait_for 5 "jobs to end" bash -c '[ -z "$(squeue -h 2>/dev/null)" ]'; then
        kill_job_trees
        # shellcheck disable=SC2016
        wait_for 40 "jobs to end" bash -c '[ -z "$(squeue -h 2>/dev/null)" ]' || true
      fi
    fi
  fi
  for n in slurmd slurmctld munged; do
    if pid=$(is_ours "$n"); then log "stopping $n (pid $pid)"; stop_pid "$n" "$pid"; fi
    rm -f "$PIDS/$n.pid"
  done
  # Job-step daemons started by our slurmd carry SLURM_CONF=$CONF in their
  # environment; only those (and their children) are touched.
  local p
  kill_job_trees
  for p in $(our_stepds); do
    log "stopping leftover slurmstepd (pid $p)"; stop_pid slurmstepd "$p"
  done
  log "stopped"
}

cmd_status() {
  local n pid rc=0
  for n in munged slurmctld slurmd; do
    if pid=$(is_ours "$n"); then echo "$n: running (pid $pid)"; else echo "$n: not running"; rc=1; fi
  done
  if ((rc == 0)); then
    SLURM_CONF=$CONF sinfo; SLURM_CONF=$CONF squeue
  fi
  return $rc
}

cmd_env() {
  [ -f "$LS_DIR/env.sh" ] || die "no $LS_DIR/env.sh; run '$0 start' first"
  cat "$LS_DIR/env.sh"
}

cmd_purge() {
  cmd_stop
  case "$LS_DIR" in /|/tmp|/tmp/|"") die "refusing to delete '$LS_DIR'";; esac
  rm -rf -- "$LS_DIR"; log "removed $LS_DIR"
}

case "${1:-}" in
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  env)    cmd_env ;;
  deps)   ensure_pkgs "${BUILD_PKGS[@]}" ;;
  purge)  cmd_purge ;;
  *) sed -n '2,30p' "$0" >&2; exit 2 ;;
esac
