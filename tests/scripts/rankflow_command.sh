# The `rankflow` command and the Python reader on real runs (issue 12):
# fields() of a run with a partition ledger (item 10); export's output
# checked on a full disk, /dev/full and a failing stdout (item 11); JSON
# export of strings that are not UTF-8 (item 14); `recover` printing the
# status it restored (item 16); messages of the command (item 17).
source "$(dirname "$0")/common.sh"
SRC=$1
RF="$BIN/tracking/rankflow"
rm -rf command && mkdir -p command
run 2 "$BIGSUM" --rows 300 --cols 200 --experiment command/exp.h5
[ "$RC" -eq 0 ] || fail "bigsum exited $RC: $OUT"

# Item 10: every bigsum run has a ledger (/runs/<id>/_rankflow), which is not a field.
sum=$("$RF" show command/exp.h5 RUN-1 result/sum | tail -1)
PYTHONPATH="$SRC/tracking/python" /usr/bin/python3 - "$sum" <<'PY' || fail "rankflow_reader.fields on a bigsum run"
import sys
import rankflow_reader as rr
fl = rr.fields("command/exp.h5", "RUN-1")
assert not any(p.startswith("_rankflow") for p in fl), sorted(fl)
assert fl["result/sum"] == float(sys.argv[1]), (fl["result/sum"], sys.argv[1])
assert fl["params/rows"] == 300 and fl["params/cols"] == 200 and fl["params/mode"] == "auto", fl
print("fields():", len(fl), "fields, no ledger")
PY

# Item 11: every write, flush and close is checked.
"$RF" export command/exp.h5 RUN-1 > /dev/full 2> command/err.txt
rc=$?
[ "$rc" -eq 1 ] && grep -q "cannot write to standard output: No space left on device" command/err.txt ||
  fail "export > /dev/full: rc $rc $(cat command/err.txt)"
"$RF" show command/exp.h5 RUN-1 > /dev/full 2> command/err.txt && fail "show > /dev/full exited 0"
"$RF" export command/exp.h5 RUN-1 --format csv -o /dev/full 2> command/err.txt
rc=$?
[ "$rc" -eq 1 ] && grep -q "cannot write '/dev/full': No space left on device" command/err.txt ||
  fail "export -o /dev/full: rc $rc $(cat command/err.txt)"
[ -c /dev/full ] || fail "/dev/full is no longer a device"
# A file that outgrows what the disk (here: the file size limit) allows: an
# error, and no partial file left behind.
(trap '' XFSZ; ulimit -f 1; "$RF" export command/exp.h5 RUN-1 -o command/cut.json) 2> command/err.txt
rc=$?
[ "$rc" -eq 1 ] && grep -q "cannot write 'command/cut.json'.*partial file was removed" command/err.txt ||
  fail "export past the size limit: rc $rc $(cat command/err.txt)"
[ ! -e command/cut.json ] || fail "a partial export was left: $(wc -c < command/cut.json) bytes"
"$RF" export command/exp.h5 RUN-1 -o command/run.json || fail "export -o failed"
/usr/bin/python3 -c "import json; json.load(open('command/run.json'))" || fail "export is not JSON"

# Item 14: strings that are not UTF-8 in a file (written before rankflow
# refused them, or by another program) still export as valid JSON.
# (An experiment is its file and its .d directory: copied together; the run's
# own file is changed.)
cp command/exp.h5 command/latin1.h5 && cp -r command/exp.h5.d command/latin1.h5.d
/usr/bin/python3 - <<'PY' || fail "making the latin-1 file"
import h5py, numpy as np
with h5py.File("command/latin1.h5.d/runs/RUN-1.h5", "r+") as f:
    run = f["runs/RUN-1"]
    del run["params/mode"]
    d = run.create_dataset("params/mode", data=np.array(b"caf\xe9 \x01\x7f\"\\", dtype=h5py.string_dtype("utf-8")))
    d.attrs["rankflow_type"] = "String"
PY
"$RF" export command/latin1.h5 RUN-1 -o command/latin1.json || fail "export of latin-1 failed"
/usr/bin/python3 - <<'PY' || fail "export of invalid UTF-8 is not valid JSON: $(grep mode command/latin1.json)"
import json
raw = open("command/latin1.json", "rb").read()
raw.decode("utf-8")  # strict: JSON text is UTF-8
j = json.loads(raw)
assert j["fields"]["params/mode"]["value"] == "caf\ufffd \x01\x7f\"\\", j["fields"]["params/mode"]
PY

# Item 16: a run that recorded its end (succeeded) but was killed while it
# waited for the sidecar's lock to merge is restored as succeeded, and said so.
rm -rf command/k && mkdir command/k
# About 2 s of summing (streamed, in constant memory) leaves time to take the lock.
timeout 120 "$MPIEXEC" --oversubscribe -n 2 "$BIGSUM" --rows 40000 --cols 40000 --mode stream \
  --experiment command/k/exp.h5 --isa scalar \
  > command/k/log.txt 2>&1 &
pid=$!
# Once the journal exists the run has its id; holding the lock from then on
# stops the job at its merge, after the end was journaled.
for ((i = 0; i < 600; i++)); do [ -e command/k/exp.h5.d/RUN-1.journal ] && break; sleep 0.02; done
[ -e command/k/exp.h5.d/RUN-1.journal ] || { kill -9 $pid; fail "no journal: $(cat command/k/log.txt)"; }
# -o: flock holds the lock itself, so killing it releases the lock.
flock -o command/k/exp.h5.d/lock sleep 60 &
holder=$!
for ((i = 0; i < 600; i++)); do
  "$RF" show command/k/exp.h5 RUN-1 2> /dev/null | grep -q "status: *succeeded" && break
  sleep 0.1
done
"$RF" show command/k/exp.h5 RUN-1 | grep -q "status: *succeeded" ||
  { kill -9 $pid $holder; fail "the run did not journal its end: $(cat command/k/log.txt)"; }
pkill -9 -f "bigsum --rows 40000 --cols 40000 --mode stream --experiment command/k/exp.h5"
kill -9 $pid 2> /dev/null
wait $pid 2> /dev/null
pkill -P $holder sleep
kill $holder 2> /dev/null
wait $holder 2> /dev/null
[ -e command/k/exp.h5.d/RUN-1.journal ] || fail "the job merged although the lock was held"
out=$("$RF" recover command/k/exp.h5) || fail "recover failed: $out"
[ "$out" = "recovered RUN-1 (status succeeded)" ] || fail "recover printed: $out"
"$RF" runs command/k/exp.h5 | grep -q "^RUN-1 .*succeeded" || fail "RUN-1 not succeeded: $("$RF" runs command/k/exp.h5)"

# Item 17: the command's own messages.
"$RF" runs command/missing.h5 > command/out.txt 2> command/err.txt
rc=$?
[ "$rc" -eq 2 ] && grep -q "'command/missing.h5' does not exist" command/err.txt && [ ! -s command/out.txt ] ||
  fail "runs of a missing file: rc $rc $(cat command/out.txt command/err.txt)"
"$RF" bogus command/exp.h5 > /dev/null 2> command/err.txt
rc=$?
[ "$rc" -eq 2 ] && grep -q "unknown command 'bogus'" command/err.txt &&
  grep -q "runs, sweeps, compare, show, export, recover, upgrade" command/err.txt || fail "rankflow bogus: rc $rc $(cat command/err.txt)"
"$RF" > /dev/null 2>&1 && fail "rankflow without a command exited 0"

# A file that crashes libhdf5 1.10 itself (found by fuzzing the reader): the
# command reads in a child process, so the crash is an error, not a core dump.
"$RF" runs "$SRC/tests/data/hdf5_crashes.bin" > /dev/null 2> command/err.txt
rc=$?
[ "$rc" -eq 1 ] && grep -q "crashed inside the HDF5 library" command/err.txt ||
  fail "runs of a file that crashes HDF5: rc $rc $(cat command/err.txt)"
echo OK
