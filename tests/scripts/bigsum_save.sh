# bigsum tracks itself; --save writes the matrix collectively into the run.
# h5dump and h5py read it back, its elements are the generator's (checked
# independently in Python), and the tracked sum, times and per-partition
# series are there.
source "$(dirname "$0")/common.sh"
rm -rf saved.h5 saved.h5.d
run 3 "$BIGSUM" --rows 301 --cols 7 --block-rows 10 --save --experiment saved.h5
[ "$RC" -eq 0 ] || fail "bigsum --save exited $RC: $OUT"
printf '%s\n' "$OUT" | grep -q "Tracked as run RUN-1 in saved.h5" || fail "no tracking line: $OUT"
h5dump -H -d /runs/RUN-1/matrix saved.h5 | grep -q "DATASPACE  SIMPLE { ( 301, 7 ) / ( 301, 7 ) }" ||
  fail "h5dump header: $(h5dump -H -d /runs/RUN-1/matrix saved.h5)"
sum=$(exact_sum)
/usr/bin/python3 - "$sum" <<'PY' || fail "h5py check failed"
import sys, h5py
M = (1 << 64) - 1
def mix(z):
    z ^= z >> 30; z = (z * 0xbf58476d1ce4e5b9) & M
    z ^= z >> 27; z = (z * 0x94d049bb133111eb) & M
    return z ^ (z >> 31)
def element(seed, i, j):
    key = mix((seed + 0x9e3779b97f4a7c15) & M) ^ ((i * 0xd1b54a32d192ed03) & M)
    return (mix((key + j * 0x9e3779b97f4a7c15) & M) >> 11) * 2.0**-53
run = h5py.File("saved.h5", "r")["runs/RUN-1"]
assert run.attrs["status"] == "succeeded" and run.attrs["ranks"] == 3
assert run["params/rows"][()] == 301 and run["params/save"][()] == True
assert run["result/sum_hex"][()].decode() == sys.argv[1]
assert run["result/partitions"][()] == 31 and run["sys/ranks"][()] == 3
steps = run["timing/partition_ms/step"][...]
assert list(steps) == list(range(31)), steps
assert (run["timing/partition_ms/value"][...] >= 0).all()
assert run["timing/generate_ms"][()] >= 0 and run["timing/save_ms"][()] >= 0
m = run["matrix"][...]
assert m.shape == (301, 7), m.shape
for i in (0, 1, 150, 300):
    for j in range(7):
        assert m[i, j] == element(42, i, j), (i, j, m[i, j], element(42, i, j))
total = float(m.sum())
printed = float.fromhex(sys.argv[1])
assert abs(total - printed) < 1e-9 * abs(printed), (total, printed)
print("h5py: shape", m.shape, "elements match the generator, sum", total)
PY
echo OK
