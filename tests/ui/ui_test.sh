#!/usr/bin/env bash
# The web UI: `rankflow ui` (its JSON API and its page, in headless Chromium) and
# `rankflow report`, on experiments made by the real programs: bigsum (2 and 3
# ranks, one failed run, a saved array), the sweep example, and tests/ui/live_writer
# (a 24 MB File, a failed run, a killed run, and a run that stays live meanwhile).
#
#   ui_test.sh SRC_DIR BUILD_DIR      (ctest -R '^ui$'; screenshots in BUILD_DIR/ui-artifacts)
#
# Exit 0: every check passed; 1: a failure (each is printed); 77: no Chromium/selenium/h5py.
set -u
SRC=$(cd "${1:?usage: ui_test.sh SRC_DIR BUILD_DIR}" && pwd)
BUILD=$(cd "${2:?usage: ui_test.sh SRC_DIR BUILD_DIR}" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1 \
  OMPI_MCA_rmaps_base_oversubscribe=1 RANKFLOW_PROGRESS=off
MPIEXEC=${MPIEXEC:-mpiexec}
RF=$BUILD/tracking/rankflow
BIGSUM=$BUILD/examples/bigsum/bigsum
SWEEP=$(find "$BUILD/examples/" -type f -name rankflow-sweep -perm -u+x 2>/dev/null | head -1)
LIVE=$BUILD/tests/ui_live_writer
PY=/usr/bin/python3  # Debian's: selenium and h5py (a pyenv python3 on PATH lacks them)
HERE=$SRC/tests/ui
ART=$BUILD/ui-artifacts
T0=$SECONDS
FAILED=0
# run, wait_for, BIGSUM: the script tests' own (BIN is the build directory).
BIN=${BIN:-$BUILD}
. "$SRC/tests/scripts/common.sh"
RUN_TIMEOUT=60
fail() { echo "FAIL: $*" >&2; FAILED=1; exit 1; }
soft() { echo "FAIL: $*" >&2; FAILED=1; }  # a failure after which the other checks still say something
step() { echo "== [$((SECONDS - T0))s] $*"; }
wait_exit() {  # wait_exit PID SECONDS: the exit code in $RC, 124 if still running
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    kill -0 "$1" 2>/dev/null || { wait "$1"; RC=$?; return 0; }
    sleep 0.05
  done
  RC=124
  return 1
}
# Servers start in their own process group (cleanup ends the group, so nothing is left
# behind even if a server leaves children) with SIGINT at its default (bash ignores it
# in background jobs); the tests signal the server's own pid, as `kill PID` would.
DFL=("$PY" -c 'import os, signal, sys; os.setsid(); signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])')

for x in "$RF" "$BIGSUM" "$SWEEP" "$LIVE"; do [ -n "$x" ] && [ -x "$x" ] || fail "missing program '$x' (build first)"; done
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! "$PY" -c 'import selenium, h5py' 2>/dev/null; then
  # CI installs them (the README's test command): there a missing one is a failure.
  [ "${CI:-}" = true ] && fail "CI=true but chromium, chromium-driver, python3-selenium or python3-h5py is missing"
  echo "SKIP: needs chromium, chromium-driver, python3-selenium and python3-h5py"
  exit 77
fi
timeout 10 "$RF" ui --help > /dev/null 2>&1 || fail "'rankflow ui --help' fails: no ui command in $RF"

W=$(mktemp -d /tmp/rankflow-ui.XXXXXX)
rm -rf "$ART"
mkdir -p "$ART"
SERVER="" LIVEPID="" OTHER="" HAMMER=""
cleanup() {
  local p
  for p in $SERVER $OTHER; do kill -- "-$p" 2> /dev/null; done  # the servers' process groups
  for p in $LIVEPID $HAMMER; do kill "$p" 2> /dev/null; done
  sleep 0.3
  for p in $SERVER $OTHER; do kill -9 -- "-$p" 2> /dev/null; done
  for p in $LIVEPID $HAMMER; do kill -9 "$p" 2> /dev/null; done
  [ "$FAILED" = 0 ] && rm -rf "$W" || echo "(work directory kept: $W)"
}
trap cleanup EXIT
cd "$W" || fail "no work directory"

step "experiments from the real programs"
run 2 "$BIGSUM" --rows 2000 --cols 2000 --save --sweep grid --experiment E.h5
[ "$RC" -eq 0 ] || fail "bigsum E.h5 RUN-1: exit $RC: $OUT"
run 2 "$BIGSUM" --rows 2000 --cols 2000 --seed 7 --sweep grid --experiment E.h5
[ "$RC" -eq 0 ] || fail "bigsum E.h5 RUN-2: exit $RC: $OUT"
run 3 "$BIGSUM" --rows 2000 --cols 2000 --seed 5 --experiment E.h5
[ "$RC" -eq 0 ] || fail "bigsum -n 3 E.h5 RUN-3: exit $RC: $OUT"
# RUN-4 fails: the matrix cannot be materialised; the run records 'failed' and why.
run 2 "$BIGSUM" --rows 4000000 --cols 800000 --mode materialize --experiment E.h5
[ "$RC" -eq 3 ] || fail "bigsum that cannot materialise: exit $RC (expected 3): $OUT"
head -c 24000000 /dev/urandom > blob.bin
run 1 "$LIVE" --experiment E.h5 --points 4 --interval 0 --upload blob.bin
[ "$RC" -eq 0 ] || fail "live_writer --upload E.h5 RUN-5: exit $RC: $OUT"
run 3 "$SWEEP" --experiment S.h5 --sweep demo
[ "$RC" -eq 0 ] || fail "sweep example S.h5: exit $RC: $OUT"
run 1 "$LIVE" --experiment L.h5 --points 3 --interval 0 --lr 0.5
[ "$RC" -eq 0 ] || fail "live_writer L.h5 RUN-1: exit $RC: $OUT"
run 2 "$LIVE" --experiment L.h5 --points 3 --interval 0.1 --fail "loss diverged"
[ "$RC" -eq 0 ] || fail "live_writer --fail L.h5 RUN-2: exit $RC: $OUT"
# killed_run ID LOG: a live writer into L.h5 (run ID) whose rank is killed
# with kill -9 after a few durable points: its journal stays, not recovered.
killed_run() {
  "${DFL[@]}" "$MPIEXEC" -n 1 "$LIVE" --experiment L.h5 --until-file never --max-seconds 30 > "$2" 2>&1 &
  OTHER=$!
  wait_for "started" "$2" 20 || fail "live_writer L.h5 $1 did not start: $(cat "$2")"
  sleep 0.7
  kill -9 $(pgrep -P "$OTHER" -x ui_live_writer) 2> /dev/null || fail "no ui_live_writer rank under mpiexec $OTHER"
  wait_exit "$OTHER" 20 || fail "mpiexec did not end after its rank was killed"
  OTHER=""
}
killed_run RUN-3 killed.log
"$PY" - "$RF" << 'PY' || fail "the experiments are not as made"
import json, subprocess, sys
want = {"E.h5": ["succeeded"] * 3 + ["failed", "succeeded"], "S.h5": ["succeeded"], "L.h5": ["succeeded", "failed", "killed"]}
for f, st in want.items():
    got = [r["status"] for r in json.loads(subprocess.check_output([sys.argv[1], "runs", f, "--format", "json"], timeout=30))]
    assert got == st, f"{f}: statuses {got}, expected {st}"
PY

step "rankflow ui: bad command lines"
for bad in "--port 0" "missing.h5 --port 0" "E.h5 --port 99999" "E.h5 --port abc" "E.h5 --port 0 --bind not-an-address"; do
  # shellcheck disable=SC2086
  timeout 5 "$RF" ui $bad > bad.out 2> bad.err < /dev/null
  RC=$?
  { [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ -s bad.err ]; } ||
    soft "'rankflow ui $bad' exits $RC (expected an error exit with a message; 124: it kept serving): $(head -c 300 bad.err)"
done

step "rankflow ui E.h5 S.h5 L.h5 --port 0"
"${DFL[@]}" "$RF" ui E.h5 S.h5 L.h5 --port 0 > server.out 2> server.err &
SERVER=$!
wait_for "^rankflow ui: serving 3 experiment(s) at http://" server.out 15 ||
  fail "no 'rankflow ui: serving 3 experiment(s) at http://...' line in 15 s: $(cat server.out server.err)"
URL=$(sed -n 's|^rankflow ui: serving 3 experiment(s) at \(http://[^ ]*/\)$|\1|p' server.out)
[[ "$URL" =~ ^http://127\.0\.0\.1:[0-9]+/$ ]] && [ "${URL##*:}" != "0/" ] || fail "the serving line gives '$URL' (expected http://127.0.0.1:PORT/)"
[ "$(wc -l < server.out)" -eq 1 ] || soft "rankflow ui printed more than one line: $(cat server.out)"
grep -q WARNING server.err && soft "a warning on the default bind: $(cat server.err)"
echo "server at $URL"
timeout 10 "$RF" ui E.h5 --port "$(echo "$URL" | sed 's|.*:\([0-9]*\)/$|\1|')" > busy.out 2> busy.err
RC=$?
{ [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ -s busy.err ]; } || soft "a second server on the same port exits $RC: $(cat busy.err)"

step "a run that stays live (L.h5 RUN-4), started after the server"
"$MPIEXEC" --oversubscribe -n 2 "$LIVE" --experiment L.h5 --until-file stop-live --max-seconds 150 --map 4 > live.log 2>&1 &
LIVEPID=$!
wait_for "started" live.log 20 || fail "live_writer did not start: $(cat live.log)"

step "JSON API"
timeout 120 "$PY" "$HERE/ui_api_test.py" --url "$URL" --rankflow "$RF" E.h5 S.h5 L.h5 || soft "ui_api_test.py (exit $?)"
kill -0 "$SERVER" 2> /dev/null || fail "the server died during the API test: $(tail -5 server.err)"

step "rankflow report"
timeout 60 "$RF" report E.h5 RUN-1 RUN-2 -o report.html || soft "rankflow report E.h5 RUN-1 RUN-2 exits $?"
timeout 60 "$RF" report E.h5 -o latest.html || soft "rankflow report E.h5 exits $?"
"$PY" - report.html latest.html << 'PY' || soft "the reports are not self-contained"
import re, sys
bad = 0
for f in sys.argv[1:]:
    s = open(f, encoding="utf-8").read()
    ext = re.findall(r"""\b(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]*)""", s, re.I)
    ext += re.findall(r"""url\(\s*["']?\s*((?:https?:)?//[^"')\s]*)""", s, re.I)
    ext += re.findall(r"""<script[^>]*\bsrc\s*=\s*["']?([^"'\s>]+)""", s, re.I)      # scripts must be inline
    ext += re.findall(r"""<link[^>]*\bhref\s*=\s*["']?([^"'\s>]+)""", s, re.I)       # no linked stylesheet/icon files
    if ext:
        print(f"{f}: external references {sorted(set(ext))[:5]}")
        bad = 1
    if len(s) < 1000:
        print(f"{f}: only {len(s)} characters")
        bad = 1
sys.exit(bad)
PY
timeout 30 "$RF" report E.h5 RUN-999 -o nope.html 2> nope.err
RC=$?
{ [ "$RC" -eq 2 ] && [ ! -e nope.html ] && [ -s nope.err ]; } || soft "report of an unknown run exits $RC (expected 2, a message, no file)"
timeout 30 "$RF" report missing.h5 -o nope.html 2> nope.err
RC=$?
{ [ "$RC" -eq 2 ] && [ ! -e nope.html ]; } || soft "report of a missing file exits $RC (expected 2, no file)"
timeout 30 "$RF" report E.h5 -o /dev/full 2> nope.err
RC=$?
[ "$RC" -eq 1 ] || soft "report -o /dev/full exits $RC (expected 1, like export)"

step "the page in headless Chromium"
timeout 180 "$PY" "$HERE/ui_browser_test.py" --url "$URL" --artifacts "$ART" --report report.html \
  --report-runs RUN-1,RUN-2 --latest-report latest.html || soft "ui_browser_test.py (exit $?)"
kill -0 "$SERVER" 2> /dev/null || fail "the server died during the browser test: $(tail -5 server.err)"

step "the live run ends and the killed one is recovered, while clients read L.h5"
# Its stop replaces L.h5 (a rename) and removes the journal; recover does the
# same for RUN-3. Every answer meanwhile must be whole: JSON, never a 5xx.
"$PY" - "$URL" stop-hammer > hammer.log 2>&1 << 'PY' &
import json, os, sys, threading, urllib.error, urllib.request
url, stop = sys.argv[1], sys.argv[2]
bad, n = [], [0]
def get(q):
    try:
        with urllib.request.urlopen(url + q, timeout=30) as r:
            json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code >= 500: bad.append(f"{q}: {e.code} {e.read()[:200]!r}")
        else: json.loads(e.read())
    except Exception as e:  # a cut answer, bad JSON, a refused connection
        bad.append(f"{q}: {e!r}")
    n[0] += 1
def loop():
    while not os.path.exists(stop):
        for q in ["api/runs?exp=2", "api/run?exp=2&id=RUN-4", "api/run?exp=2&id=RUN-5",
                  "api/series?exp=2&id=RUN-4&path=live/loss", "api/timeline?exp=2&id=RUN-4", "api/sweeps?exp=2"]:
            get(q)
ts = [threading.Thread(target=loop) for _ in range(3)]
for t in ts: t.start()
for t in ts: t.join()
print(f"{n[0]} requests, {len(bad)} bad")
for b in bad[:10]: print(b)
sys.exit(1 if bad or n[0] < 20 else 0)
PY
HAMMER=$!
sleep 1
touch stop-live
wait_exit "$LIVEPID" 30 || soft "live_writer did not stop within 30 s of stop-live"
[ "$RC" -eq 0 ] || soft "live_writer exit $RC: $(tail -5 live.log)"
LIVEPID=""
ok=0
for ((i = 0; i < 40; i++)); do  # the server sees the run finished within a few seconds
  curl -sf --max-time 5 "${URL}api/runs?exp=2" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["rows"][-1]
sys.exit(0 if r["status"] == "succeeded" and r["live"] is False else 1)' && { ok=1; break; }
  sleep 0.1
done
[ "$ok" = 1 ] || soft "4 s after the live run stopped, /api/runs?exp=2 still says: $(curl -s --max-time 5 "${URL}api/runs?exp=2" | head -c 600)"
# A run killed now (RUN-5), then recovered, both while the clients read.
killed_run RUN-5 killed2.log
"$RF" recover L.h5 > recover.out 2>&1 || soft "rankflow recover L.h5 while served: $(cat recover.out)"
grep -q "recovered RUN-5 (status killed)" recover.out || soft "recover did not restore RUN-5: $(cat recover.out)"
sleep 1
touch stop-hammer
wait_exit "$HAMMER" 60 || soft "the clients did not finish"
[ "$RC" -eq 0 ] || soft "reading L.h5 while it was replaced and recovered: $(cat hammer.log)"
echo "   clients while replaced and recovered: $(head -1 hammer.log)"
curl -sf --max-time 5 "${URL}api/run?exp=2&id=RUN-5" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
i = r["info"]
sys.exit(0 if i["status"] == "killed" and i["reason"] != "not recovered yet" and r["series"] else 1)' ||
  soft "after recover, RUN-5 reads: $(curl -s --max-time 5 "${URL}api/run?exp=2&id=RUN-5" | head -c 400)"

step "--bind 0.0.0.0 warns; SIGINT stops"
"${DFL[@]}" "$RF" ui E.h5 --port 0 --bind 0.0.0.0 > bind.out 2> bind.err &
OTHER=$!
if wait_for "^rankflow ui: serving 1 experiment(s) at http://0\.0\.0\.0:[0-9]*/$" bind.out 15; then
  grep -q WARNING bind.err || soft "--bind 0.0.0.0 without a WARNING on stderr: $(cat bind.err)"
else
  soft "--bind 0.0.0.0: no serving line with 0.0.0.0: $(cat bind.out bind.err)"
fi
stopped() {  # stopped PID PGID SIG URL: the server ends by itself (exit 0, or killed by SIG) and frees its port
  wait_exit "$1" 10 || soft "rankflow ui did not stop within 10 s of SIG$3"
  [ "$RC" -eq 0 ] || [ "$RC" -eq $((128 + $(kill -l "$3"))) ] || soft "rankflow ui exits $RC after SIG$3 (expected 0, or death by SIG$3)"
  sleep 0.3
  if curl -s --max-time 3 -o /dev/null "$4"; then
    soft "$4 still answers after SIG$3 to the server's pid $1 (exit $RC): left running: $(ps -o pid,ppid,args --sid "$2" | tail -n +2 | tr '\n' ';')"
  fi
  kill -- "-$2" 2> /dev/null  # whatever it left behind
}
kill -INT "$OTHER"
stopped "$OTHER" "$OTHER" INT "$(sed -n 's|.* at \(http://[^ ]*/\)$|\1|p' bind.out | sed 's|0\.0\.0\.0|127.0.0.1|')"
OTHER=""

step "SIGTERM stops the server"
kill -TERM "$SERVER"
stopped "$SERVER" "$SERVER" TERM "$URL"
SERVER=""

step "done: $([ "$FAILED" = 0 ] && echo passed || echo FAILED) in $((SECONDS - T0)) s; screenshots in $ART"
exit "$FAILED"
