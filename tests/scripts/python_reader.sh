# The Python reader as a package (issue 15, item 6): `pip install
# ./tracking/python` into a virtual environment, offline; the run index,
# sweeps and runs as rows; series sliced by step range without reading them
# whole; format 1 files too.
source "$(dirname "$0")/common.sh"
SRC=$1
DEMO="$BIN/tests/track_demo"
RF="$BIN/tracking/rankflow"
rm -rf pyreader && mkdir -p pyreader && cd pyreader || exit 1
/usr/bin/python3 -m venv --without-pip --system-site-packages venv || fail "no venv"
# --no-index: the install must need nothing from the network.
venv/bin/python -m pip install --no-index "$SRC/tracking/python" > pip.txt 2>&1 || fail "pip install: $(cat pip.txt)"
[ "$(cd / && "$PWD/venv/bin/python" -c 'import rankflow_reader as r; print(r.__file__)')" = \
  "$PWD/venv/lib/python3.11/site-packages/rankflow_reader.py" ] || [ -n "$(ls venv/lib/python3*/site-packages/rankflow_reader.py)" ] ||
  fail "the module was not installed into the venv"

for s in 1 2 3; do
  run 2 "$BIGSUM" --rows 2000 --cols 50 --seed $s --experiment e.h5 --sweep grid
  [ "$RC" -eq 0 ] || fail "bigsum $s exited $RC: $OUT"
done
run 2 "$DEMO" all --experiment e.h5
[ "$RC" -eq 0 ] || fail "track_demo exited $RC: $OUT"
"$RF" runs e.h5 --format json --cols id,status,params/seed,timing/partition_ms:count > cli.json || fail "rankflow runs"
cp "$SRC/tests/fuzz/corpus/experiment/bigsum_small.bin" old.h5

(cd / && "$OLDPWD/venv/bin/python" - "$OLDPWD" <<'PY') || fail "the reader's answers differ from the command's"
import json, os, sys
os.chdir(sys.argv[1])
import rankflow_reader as rr
assert rr.__file__.startswith(os.path.join(sys.argv[1], "venv")), rr.__file__

rows = rr.index("e.h5")
rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
cli = json.load(open("cli.json"))
assert [r["id"] for r in rows] == [c["id"] for c in cli] == ["RUN-1", "RUN-2", "RUN-3", "RUN-4"], rows
for r, c in zip(rows, cli):
    assert r["status"] == c["status"] == "succeeded"
    assert r.get("params/seed") == c["params/seed"], (r.get("params/seed"), c)
    assert r.get("timing/partition_ms:count") == c["timing/partition_ms:count"], (r, c)
demo = rows[3]
assert demo["params/lr"] == 0.001 and demo["params/shuffle"] is False and demo["sys/tags"] == {"demo", "test"}
assert demo["ranks/r1/loss"] == 1.0 / 100 and demo["ranks/r1/loss:count"] == 100
assert demo["ranks/r1/loss:min"] == 1.0 / 100 and demo["ranks/r1/loss:max"] == 1.0
assert demo["ranks/r1/seen"] == 99 * 2 and isinstance(demo["ranks/r1/seen"], int)
assert demo["eval/msg"] == "epoch 2"

sw = rr.sweeps("e.h5")
sw = sw.to_dict("records") if hasattr(sw, "to_dict") else sw
assert sw == [{"sweep": "grid", "runs": 3, "succeeded": 3, "failed": 0, "running": 0, "killed": 0}], sw
r = rr.runs("e.h5")
r = r.to_dict("records") if hasattr(r, "to_dict") else r
assert [x["id"] for x in r] == ["RUN-1", "RUN-2", "RUN-3", "RUN-4"] and r[0]["sweep"] == "grid"
assert "params/seed" not in r[0]  # runs(): attributes only

# Series by step range, read lazily: [10, 20) of a 100-point series.
part = rr.series("e.h5", "RUN-4", "ranks/r0/loss", 10, 20)
part = {k: list(part[k]) for k in ("step", "value")}
assert part["step"] == list(range(10, 20)), part
assert part["value"] == [1.0 / (k + 1) for k in range(10, 20)], part
assert len(rr.series("e.h5", "RUN-4", "ranks/r0/loss", 95)["step"]) == 5
assert len(rr.series("e.h5", "RUN-4", "ranks/r0/loss", None, 3)["step"]) == 3
assert len(rr.series("e.h5", "RUN-4", "ranks/r0/loss", 500, 600)["step"]) == 0
assert len(rr.series("e.h5", "RUN-4", "ranks/r0/loss", 50, 10)["step"]) == 0
assert len(rr.series("e.h5", "RUN-4", "ranks/r0/loss")["step"]) == 100

# A format 1 file: the index is built by reading its runs.
old = rr.index("old.h5")
old = old.to_dict("records") if hasattr(old, "to_dict") else old
assert old and old[0]["id"] == "RUN-1" and "params/seed" in old[0], old
print("reader OK")
PY
echo OK
