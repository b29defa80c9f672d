# --save writes the matrix collectively; h5dump and h5py read it back, and its
# elements are the generator's (checked independently in Python).
source "$(dirname "$0")/common.sh"
rm -f saved.h5
run 3 "$BIGSUM" --rows 301 --cols 7 --save saved.h5
[ "$RC" -eq 0 ] || fail "bigsum --save exited $RC: $OUT"
h5dump -H saved.h5 | grep -q "DATASPACE  SIMPLE { ( 301, 7 ) / ( 301, 7 ) }" || fail "h5dump header: $(h5dump -H saved.h5)"
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
m = h5py.File("saved.h5", "r")["matrix"][...]
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
