# An experiment file written by 3 ranks, read back by h5py (run from another
# directory, so the arrays' external links must resolve from the file's own
# directory), by h5dump, by the Python reader and by the `rankflow` command.
source "$(dirname "$0")/common.sh"
SRC=$1
DEMO="$BIN/tests/track_demo"
RF="$BIN/tracking/rankflow"
rm -rf readback && mkdir -p readback/elsewhere
run 3 "$DEMO" all --experiment readback/exp.h5
[ "$RC" -eq 0 ] || fail "track_demo exited $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "run RUN-1 done" || fail "no run id printed: $OUT"

h5dump readback/exp.h5 > readback/all.txt || fail "h5dump of the whole file failed"
grep -q '"hello, artifact' readback/all.txt || grep -q '104, 101, 108, 108, 111' readback/all.txt || fail "artifact bytes not in h5dump"
grep -q '"adam"' readback/all.txt || fail "String field not in h5dump"
h5dump -A readback/exp.h5 > readback/attrs.txt || fail "h5dump -A failed"
grep -q 'ATTRIBUTE "rankflow_format_major"' readback/attrs.txt || fail "no format attribute in h5dump"
grep -q '"succeeded"' readback/attrs.txt || fail "status not succeeded in h5dump"
(cd readback/elsewhere && h5dump -d /runs/RUN-1/arrays/grid ../exp.h5) > readback/grid.txt || fail "h5dump of the array failed"
grep -q "3000, 3001, 3002, 3003" readback/grid.txt || fail "array data not shown by h5dump: $(cat readback/grid.txt)"

(cd readback/elsewhere && PYTHONPATH="$SRC/tracking/python" /usr/bin/python3 - <<'PY') || fail "h5py check failed"
import datetime, h5py, numpy as np
import rankflow_reader as rr
f = h5py.File("../exp.h5", "r")
assert f.attrs["rankflow_format_major"] == 2
run = f["runs/RUN-1"]
assert run.attrs["status"] == "succeeded", run.attrs["status"]
assert run.attrs["ranks"] == 3 and len(run.attrs["hosts"]) == 3
assert run["params/lr"][()] == 0.001 and run["params/lr"].attrs["rankflow_type"] == "Float"
assert run["params/batch"][()] == 64 and run["params/batch"].dtype == np.int64
assert run["params/shuffle"][()] == False and run["params/shuffle"].dtype == np.bool_
assert run["params/optimizer"][()].decode() == "adam"
assert run["params/when"][()] == 1700000000.5 and run["params/when"].attrs["rankflow_type"] == "Datetime"
assert [s.decode() for s in run["params/layers"][...]] == ["dense", "relu", "dense"]
assert sorted(s.decode() for s in run["sys/tags"][...]) == ["demo", "test"]
assert run["sys/tags"].attrs["rankflow_type"] == "StringSet"
assert run["artifacts/notes"][...].tobytes() == b"hello, artifact\n"
assert run["artifacts/notes"].attrs["filename"] == "notes.txt"
for r in range(3):
    s = run[f"ranks/r{r}/loss"]
    assert s.attrs["rankflow_type"] == "FloatSeries"
    assert list(s["step"][...]) == list(range(100))
    assert s["value"][99] == 1.0 / 100
    assert s["step"].maxshape == (None,) and s["step"].chunks is not None
    assert list(run[f"ranks/r{r}/seen"]["value"][...]) == [k * (r + 1) for k in range(100)]
    assert run[f"ranks/r{r}/seen"]["value"].dtype == np.int64
    assert run[f"ranks/r{r}/loss"].attrs["rank"] == r
grid = run["arrays/grid"][...]
assert grid.shape == (10, 4) and (grid == np.arange(10)[:, None] * 1000 + np.arange(4)).all(), grid
assert [v.decode() for v in run["eval/msg/value"][...]] == ["epoch 0", "epoch 1", "epoch 2"]

runs = rr.runs("../exp.h5")
ids = list(runs["id"]) if hasattr(runs, "columns") else [r["id"] for r in runs]
assert ids == ["RUN-1"], ids
fl = rr.fields("../exp.h5", "RUN-1")
assert fl["params/lr"] == 0.001 and fl["params/batch"] == 64 and fl["params/shuffle"] is False
assert fl["params/when"] == datetime.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=datetime.timezone.utc)
assert fl["sys/tags"] == {"demo", "test"} and fl["artifacts/notes"] == b"hello, artifact\n"
assert (fl["arrays/grid"] == grid).all()
s = rr.series("../exp.h5", "RUN-1", "ranks/r2/seen")
assert list(s["value"]) == [3 * k for k in range(100)]
print("h5py and rankflow_reader: every field type read back")
PY

out=$("$RF" runs readback/exp.h5) || fail "rankflow runs failed"
printf '%s\n' "$out" | grep -q "RUN-1 *demo *succeeded" || fail "rankflow runs: $out"
out=$("$RF" show readback/exp.h5 RUN-1) || fail "rankflow show failed"
printf '%s\n' "$out" | grep -q "params/lr *Float *0.001" || fail "rankflow show: $out"
printf '%s\n' "$out" | grep -q "arrays/grid *Array *f8 10x4" || fail "rankflow show array: $out"
out=$("$RF" show readback/exp.h5 RUN-1 ranks/r1/loss) || fail "rankflow show FIELD failed"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 102 ] || fail "rankflow show FIELD: $out"
"$RF" export readback/exp.h5 RUN-1 --format json -o readback/run.json || fail "export json failed"
"$RF" export readback/exp.h5 RUN-1 --format csv -o readback/run.csv || fail "export csv failed"
/usr/bin/python3 - <<'PY' || fail "exported JSON/CSV do not match"
import csv, json
j = json.load(open("readback/run.json"))
assert j["status"] == "succeeded" and j["fields"]["params/lr"]["value"] == 0.001
assert j["fields"]["ranks/r0/loss"]["steps"][:3] == [0, 1, 2] and j["fields"]["params/shuffle"]["value"] is False
assert j["fields"]["arrays/grid"]["shape"] == [10, 4]
rows = list(csv.DictReader(open("readback/run.csv")))
loss = [r for r in rows if r["path"] == "ranks/r1/loss"]
assert len(loss) == 100 and float(loss[-1]["value"]) == 0.01 and loss[-1]["step"] == "99"
print("export: json and csv parse and match")
PY
"$RF" show readback/exp.h5 RUN-7 > readback/err.txt 2>&1; rc=$?
[ "$rc" -eq 2 ] && grep -q "RUN-7' is not in" readback/err.txt || fail "unknown run: rc $rc $(cat readback/err.txt)"
echo "not hdf5" > readback/text.h5
"$RF" runs readback/text.h5 > readback/err.txt 2>&1; rc=$?
[ "$rc" -eq 1 ] && grep -q "not an HDF5 file" readback/err.txt || fail "text file: rc $rc $(cat readback/err.txt)"
echo OK
