# Provenance (issue 15, item 5): what start_run records without user code,
# inside and outside a git checkout, with ranks running different binaries,
# and turned off.
source "$(dirname "$0")/common.sh"
RF="$BIN/tracking/rankflow"
rm -rf provenance && mkdir -p provenance/outside provenance/repo && cd provenance || exit 1
TOP=$PWD
field() { "$RF" show "$1" "$2" "$3" 2> /dev/null | tail -n +2; }

# 1. Outside any git checkout (git must not search above this directory: the
# build tree itself is inside rankflow's checkout).
cd "$TOP/outside" || exit 1
export GIT_CEILING_DIRECTORIES=$TOP
SECRET_TOKEN=hunter2 RANKFLOW_SWEEP=p1 OMP_NUM_THREADS=3 LOADEDMODULES=gcc/12:openmpi/4.1 \
  run 2 "$BIGSUM" --rows 500 --cols 50 --experiment e.h5
[ "$RC" -eq 0 ] || fail "bigsum outside a checkout exited $RC: $OUT"
"$RF" show e.h5 RUN-1 > show.txt || fail "show failed"
for f in executable/hash executable/path versions/compiler versions/mpi versions/boost versions/hdf5 environment \
         modules hosts; do
  grep -q "sys/provenance/$f" show.txt || fail "no sys/provenance/$f: $(grep provenance show.txt)"
done
grep -q "sys/provenance/source" show.txt && fail "source recorded outside a checkout: $(grep source show.txt)"
grep -q "sys/provenance/warning" show.txt && fail "a warning with one binary: $(grep warning show.txt)"
env=$(field e.h5 RUN-1 sys/provenance/environment)
printf '%s\n' "$env" | grep -q "OMP_NUM_THREADS=3" || fail "OMP_NUM_THREADS not recorded: $env"
printf '%s\n' "$env" | grep -q "RANKFLOW_SWEEP=p1" || fail "RANKFLOW_* not recorded: $env"
printf '%s\n' "$env" | grep -q "SECRET_TOKEN\|HOME=" && fail "a variable off the allow-list was recorded: $env"
field e.h5 RUN-1 sys/provenance/modules | grep -q "openmpi/4.1" || fail "modules: $(field e.h5 RUN-1 sys/provenance/modules)"
field e.h5 RUN-1 sys/provenance/versions/hdf5 | grep -q "1\.10\." || fail "hdf5 version"
field e.h5 RUN-1 sys/provenance/hosts | grep -q "cores" || fail "hosts: $(field e.h5 RUN-1 sys/provenance/hosts)"
want=$(stat -c %s "$BIGSUM")
field e.h5 RUN-1 sys/provenance/executable/hash | grep -q -- "-$want\$" ||
  fail "the hash does not end with the executable's size $want: $(field e.h5 RUN-1 sys/provenance/executable/hash)"

# 2. Inside a git checkout with an uncommitted change.
cd "$TOP/repo" || exit 1
git init -q . && git config user.email t@example.org && git config user.name t
echo "lr = 0.1" > train.cfg && git add train.cfg && git commit -qm one
echo "lr = 0.2" > train.cfg
run 2 "$BIGSUM" --rows 500 --cols 50 --experiment e.h5
[ "$RC" -eq 0 ] || fail "bigsum in a checkout exited $RC: $OUT"
[ "$(field e.h5 RUN-1 sys/provenance/source/revision)" = "$(git rev-parse HEAD)" ] ||
  fail "revision: $(field e.h5 RUN-1 sys/provenance/source/revision) != $(git rev-parse HEAD)"
[ "$(field e.h5 RUN-1 sys/provenance/source/dirty)" = "yes" ] || fail "not dirty"
"$RF" export e.h5 RUN-1 --format json -o run.json || fail "export"
/usr/bin/python3 - <<'PY' || fail "the diff is not in the run"
import h5py
f = h5py.File("e.h5", "r")
d = f["runs/RUN-1/sys/provenance/source/diff"]
assert d.attrs["filename"] == "diff.patch"
text = d[...].tobytes().decode()
assert "-lr = 0.1" in text and "+lr = 0.2" in text, text
PY

# 3. Ranks running different binaries: a copy with one byte appended (the
# program is the same; the file is not).
cd "$TOP" || exit 1
cp "$BIGSUM" bigsum_a && cp "$BIGSUM" bigsum_b && printf 'x' >> bigsum_b
OUT=$(timeout 120 "$MPIEXEC" --oversubscribe -n 1 ./bigsum_a --rows 500 --cols 50 --experiment two.h5 : \
  -n 1 ./bigsum_b --rows 500 --cols 50 --experiment two.h5 2>&1)
RC=$?
[ "$RC" -eq 0 ] || fail "bigsum with two binaries exited $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "different executables" || fail "no log line about the binaries: $OUT"
w=$(field two.h5 RUN-1 sys/provenance/warning)
printf '%s\n' "$w" | grep -q "2 different executables" || fail "warning field: $w"
printf '%s\n' "$w" | grep -q "bigsum_a" && printf '%s\n' "$w" | grep -q "bigsum_b" || fail "warning names: $w"

# 4. Off.
run 1 "$BIGSUM" --rows 500 --cols 50 --experiment off.h5 --provenance off
[ "$RC" -eq 0 ] || fail "bigsum --provenance off exited $RC: $OUT"
"$RF" show off.h5 RUN-1 | grep -q "sys/provenance" && fail "provenance recorded although off"
run 1 "$BIGSUM" --rows 500 --cols 50 --experiment off.h5 --provenance maybe
[ "$RC" -eq 2 ] && printf '%s\n' "$OUT" | grep -q "'on' or 'off'" || fail "--provenance maybe: $RC $OUT"
echo OK
