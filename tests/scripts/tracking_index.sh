# Experiments at scale (issue 15): format 2 (a file per run, linked; the run
# index), `rankflow runs` queries, sweeps, compare, format 1 files read and
# upgraded, and the states a kill -9 between a stop's steps leaves behind.
source "$(dirname "$0")/common.sh"
SRC=$1
RF="$BIN/tracking/rankflow"
rm -rf index && mkdir -p index/elsewhere && cd index || exit 1
EXP=$PWD/exp.h5

# Six runs at 1-4 ranks: a sweep of four seeds named with --sweep, a run in a
# sweep named by the Slurm array it came from, and one of neither.
for s in 1 2 3 4; do
  run $((1 + (s - 1) % 4)) "$BIGSUM" --rows 3000 --cols 50 --seed $s --experiment "$EXP" --sweep seeds
  [ "$RC" -eq 0 ] || fail "bigsum seed $s exited $RC: $OUT"
done
OUT=$(SLURM_ARRAY_JOB_ID=812 SLURM_ARRAY_TASK_ID=3 SLURM_JOB_ID=815 timeout 120 "$MPIEXEC" --oversubscribe -n 2 \
  "$BIGSUM" --rows 1000 --cols 50 --seed 9 --experiment "$EXP" 2>&1) || fail "array bigsum: $OUT"
run 1 "$BIGSUM" --rows 500 --cols 50 --seed 5 --experiment "$EXP"
[ "$RC" -eq 0 ] || fail "last bigsum exited $RC: $OUT"

# The layout: a file per run, the index, and an experiment file of links only.
for i in 1 2 3 4 5 6; do [ -f "$EXP.d/runs/RUN-$i.h5" ] || fail "no run file for RUN-$i: $(ls "$EXP.d/runs")"; done
[ -s "$EXP.d/index" ] || fail "no run index"
h5dump -A "$EXP" > dump.txt || fail "h5dump of the experiment file failed"
grep -q 'EXTERNAL_LINK "RUN-6"' dump.txt || fail "RUN-6 is not linked: $(head -40 dump.txt)"
grep -q 'ATTRIBUTE "index_bytes"' dump.txt || fail "no index_bytes attribute"
# h5py sees every run under /runs/<id> through the links, from any directory.
(cd elsewhere && /usr/bin/python3 - "$EXP" <<'PY') || fail "h5py does not read the runs through their links"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["rankflow_format_major"] == 2
assert sorted(f["runs"]) == [f"RUN-{i}" for i in range(1, 7)], list(f["runs"])
assert f["runs/RUN-3/params/seed"][()] == 3
assert f["runs/RUN-5"].attrs["slurm_array_job_id"] == "812"
assert f["runs/RUN-1"].attrs["sweep"] == "seeds"
PY

# Queries: filter, sort, columns, limit, formats.
out=$("$RF" runs "$EXP" --where 'params/seed>=2 and params/seed<=4 and status=succeeded' --sort -params/seed \
  --cols id,params/seed,ranks --format csv) || fail "query failed: $out"
[ "$out" = "$(printf 'id,params/seed,ranks\nRUN-4,4,4\nRUN-3,3,3\nRUN-2,2,2')" ] || fail "query rows: $out"
out=$("$RF" runs "$EXP" --where '(sweep=seeds or sweep=slurm-812) and not params/seed=1' --cols id --format csv)
[ "$out" = "$(printf 'id\nRUN-2\nRUN-3\nRUN-4\nRUN-5')" ] || fail "or/not/parentheses: $out"
out=$("$RF" runs "$EXP" --where 'name~big and params/rows<1000' --cols id,params/rows --format json)
printf '%s\n' "$out" | /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert rows == [{"id": "RUN-6", "params/rows": 500}], rows' || fail "json: $out"
out=$("$RF" runs "$EXP" --sort -result/sum --limit 2 --cols id --format csv)
[ "$(printf '%s\n' "$out" | wc -l)" -eq 3 ] || fail "--limit 2: $out"
# A series by its parts; a column no run has shows as missing, never as 0.
out=$("$RF" runs "$EXP" --where 'timing/partition_ms:count>0' --cols id,timing/partition_ms:count,no/such \
  --format csv --limit 1) || fail "series parts: $out"
printf '%s\n' "$out" | tail -1 | grep -Eq '^RUN-1,[1-9][0-9]*,$' || fail "series count / missing column: $out"

# Bad queries: a clear error naming the token, exit 2.
for bad in 'params/lr<' 'params/lr 3' '(status=succeeded' 'status=succeeded and' 'a=1 ) b' "name='x" 'x=1 & y=2' \
           'and=1'; do
  "$RF" runs "$EXP" --where "$bad" > out.txt 2> err.txt
  rc=$?
  [ "$rc" -eq 2 ] || fail "--where '$bad' exited $rc: $(cat out.txt err.txt)"
  grep -q "^error: --where: .*position [0-9]" err.txt || grep -q "^error: --where: .*closing" err.txt ||
    fail "--where '$bad': $(cat err.txt)"
done
"$RF" runs "$EXP" --sort=-  > /dev/null 2> err.txt && fail "--sort - accepted"
grep -q "needs a column" err.txt || fail "--sort -: $(cat err.txt)"

# Sweeps.
out=$("$RF" sweeps "$EXP" --format csv) || fail "sweeps failed: $out"
printf '%s\n' "$out" | grep -q '^seeds,4,4,0,0,0,' || fail "sweep seeds: $out"
printf '%s\n' "$out" | grep -q '^slurm-812,1,1,0,0,0,' || fail "sweep of the Slurm array: $out"
out=$("$RF" runs "$EXP" --sweep seeds --format csv) || fail "--sweep: $out"
head -1 <<< "$out" | grep -q '^id,status,params/block_rows,.*params/seed,.*,reason$' || fail "sweep columns: $out"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 5 ] || fail "sweep rows: $out"
"$RF" runs "$EXP" --sweep nope > /dev/null 2> err.txt && fail "an unknown sweep was accepted"
grep -q "no such sweep.*seeds" err.txt || fail "unknown sweep: $(cat err.txt)"

# Compare: the differing parameter, and where the series part.
out=$("$RF" compare "$EXP" RUN-1 RUN-2) || fail "compare failed: $out"
printf '%s\n' "$out" | grep -Eq '^params/seed +1 +2$' || fail "compare: seed: $out"
printf '%s\n' "$out" | grep -q "params/rows" && fail "compare lists an equal parameter: $out"
printf '%s\n' "$out" | grep -q "timing/partition_ms, RUN-2: " || fail "compare: series: $out"
"$RF" compare "$EXP" RUN-1 > /dev/null 2>&1 && fail "compare of one run accepted"
"$RF" compare "$EXP" RUN-1 RUN-99 > /dev/null 2> err.txt && fail "compare of a missing run accepted"
grep -q "RUN-99" err.txt || fail "missing run: $(cat err.txt)"

# A stop killed after its index append but before its commit leaves bytes past
# index_bytes: readers ignore them, the next stop cuts them off.
before=$("$RF" runs "$EXP" --format csv)
printf 'GARBAGE-FROM-A-KILLED-STOP' >> "$EXP.d/index"
[ "$("$RF" runs "$EXP" --format csv)" = "$before" ] || fail "uncommitted index bytes were read"
# ... and a run file written but never linked (its journal would be recovered).
cp "$EXP.d/runs/RUN-1.h5" "$EXP.d/runs/RUN-77.h5"
cp "$EXP.d/runs/RUN-1.h5" "$EXP.d/runs/.RUN-78.h5.tmp-$(uname -n | tr -c 'A-Za-z0-9._\n' _)-999999"
[ "$("$RF" runs "$EXP" --format csv)" = "$before" ] || fail "an unlinked run file was listed"
run 2 "$BIGSUM" --rows 500 --cols 50 --experiment "$EXP"
[ "$RC" -eq 0 ] || fail "bigsum after the damage exited $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "RUN-78" || fail "the new run did not take an id past the stray files: $OUT"
"$RF" runs "$EXP" --cols id --format csv | tail -1 | grep -qx "RUN-78" || fail "RUN-78 not listed"
grep -q "GARBAGE" "$EXP.d/index" && fail "the uncommitted bytes were not cut off"
"$RF" recover "$EXP" > /dev/null || fail "recover failed"
ls -a "$EXP.d/runs" | grep -q "tmp-" && fail "recover left a dead writer's temporary run file: $(ls -a "$EXP.d/runs")"
# An index that lies within its committed bytes is a clear error.
cp -r "$EXP" bad.h5 && cp -r "$EXP.d" bad.h5.d
printf 'X' | dd of=bad.h5.d/index bs=1 seek=20 conv=notrunc 2> /dev/null
"$RF" runs bad.h5 > /dev/null 2> err.txt && fail "a damaged index was read"
grep -q "run index.*CRC\|run index.*cannot read" err.txt || fail "damaged index: $(cat err.txt)"
# A deleted index: a stop refuses to hide the earlier runs (its journal is
# kept), `rankflow upgrade` rebuilds the index, and recover then commits the run.
rm bad.h5.d/index
run 1 "$BIGSUM" --rows 500 --cols 50 --experiment "$PWD/bad.h5"
[ "$RC" -ne 0 ] && printf '%s\n' "$OUT" | grep -q "fewer than the .* committed" || fail "a stop over a deleted index: $RC $OUT"
ls bad.h5.d/*.journal > /dev/null 2>&1 || fail "the refused stop lost its journal"
"$RF" upgrade bad.h5 | grep -q "rebuilt from 7 run file" || fail "the index was not rebuilt"
"$RF" recover bad.h5 | grep -q "recovered RUN-79" || fail "the kept journal was not recovered: $("$RF" runs bad.h5)"
[ "$("$RF" runs bad.h5 --cols id --format csv | tail -1)" = "RUN-79" ] || fail "RUN-79 not listed after the rebuild"
rm -rf bad.h5 bad.h5.d && cp -r "$EXP" bad.h5 && cp -r "$EXP.d" bad.h5.d
printf 'X' | dd of=bad.h5.d/index bs=1 seek=20 conv=notrunc 2> /dev/null
"$RF" upgrade bad.h5 | grep -q "rebuilt from 7 run file" || fail "the index was not rebuilt"
[ "$("$RF" runs bad.h5 --format csv)" = "$("$RF" runs "$EXP" --format csv)" ] || fail "the rebuilt index differs"

# Format 1 files: read as they are, upgraded by `rankflow upgrade` (the same
# content, exported before and after) and by the first stop into them.
cp "$SRC/tests/fuzz/corpus/experiment/bigsum_small.bin" old.h5
/usr/bin/python3 -c 'import h5py; assert h5py.File("old.h5")["/"].attrs["rankflow_format_major"] == 1' ||
  fail "the fixture is not format 1"
old_ids=$("$RF" runs old.h5 --cols id --format csv) || fail "runs on format 1: $old_ids"
for id in $(tail -n +2 <<< "$old_ids"); do "$RF" export old.h5 "$id" --format json -o "v1-$id.json" || fail "export $id"; done
cp old.h5 old2.h5
"$RF" upgrade old.h5 > out.txt || fail "upgrade failed: $(cat out.txt)"
grep -q "upgraded old.h5 to format 2.0" out.txt || fail "upgrade said: $(cat out.txt)"
[ "$("$RF" runs old.h5 --cols id --format csv)" = "$old_ids" ] || fail "runs changed by the upgrade"
for id in $(tail -n +2 <<< "$old_ids"); do
  "$RF" export old.h5 "$id" --format json -o "v2-$id.json" || fail "export $id after the upgrade"
  cmp -s "v1-$id.json" "v2-$id.json" || fail "$id changed by the upgrade: $(diff "v1-$id.json" "v2-$id.json" | head)"
done
"$RF" upgrade old.h5 | grep -q "already has format 2.0" || fail "a second upgrade did something"
run 2 "$BIGSUM" --rows 500 --cols 50 --experiment "$PWD/old2.h5"
[ "$RC" -eq 0 ] || fail "a run into a format 1 file exited $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "upgraded .*old2.h5' from format 1" || fail "no upgrade line: $OUT"
[ "$("$RF" runs old2.h5 --cols id --format csv | wc -l)" -eq $(($(wc -l <<< "$old_ids") + 1)) ] ||
  fail "runs after the automatic upgrade: $("$RF" runs old2.h5)"
echo OK
