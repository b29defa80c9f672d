"""Makes damaged copies of a real experiment file, one defect each, for
rankflow_hostile.sh: what a newer minor format, another tool or a hostile user
may leave in a file. Usage: hostile_files.py GOOD.h5 OUTDIR RUN-ID

Prints one line per file: NAME<TAB>a piece the error message must hold.
"""
import os
import shutil
import sys

import h5py
import numpy as np

good, outdir, rid = sys.argv[1:4]
made = []


def variant(name, expect):
    """A copy of the experiment (format 2: the file and its sidecar, with the
    run's link pointing at the copied run file), opened for writing: changes
    under runs/<id> go through the link into the copy's run file."""
    path = os.path.join(outdir, name + ".h5")
    shutil.copyfile(good, path)
    if os.path.isdir(good + ".d"):
        shutil.copytree(good + ".d", path + ".d", ignore=shutil.ignore_patterns("lock", "*.journal"))
    made.append((name, expect))
    f = h5py.File(path, "r+")
    link = f["runs"].get(rid, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        del f["runs"][rid]
        f["runs"][rid] = h5py.ExternalLink(f"{name}.h5.d/runs/{rid}.h5", f"/runs/{rid}")
    return f


def replace(run, path, data, kind, **attrs):
    del run[path]
    d = run.create_dataset(path, data=data)
    d.attrs["rankflow_type"] = kind
    for k, v in attrs.items():
        d.attrs[k] = v
    return d


str_t = h5py.string_dtype("utf-8")

with variant("unknown_type", "params/rows") as f:
    f[f"runs/{rid}/params/rows"].attrs["rankflow_type"] = "Tensor"  # what a newer minor format may add
with variant("empty_string", "params/mode") as f:
    replace(f[f"runs/{rid}"], "params/mode", np.array([], dtype=object).astype(str_t), "String")
with variant("wrong_dtype", "params/rows") as f:
    replace(f[f"runs/{rid}"], "params/rows", np.array("abc", dtype=str_t), "Int")
with variant("int_as_vector", "params/rows") as f:  # would overflow an 8-byte read
    replace(f[f"runs/{rid}"], "params/rows", np.arange(4096, dtype=np.int64), "Int")
with variant("bool_as_float", "params/save") as f:
    replace(f[f"runs/{rid}"], "params/save", np.float64(2.5), "Bool")
with variant("rank_attr_vector", "params/rows") as f:
    f[f"runs/{rid}/params/rows"].attrs["rank"] = np.arange(4096, dtype=np.int64)
with variant("status_attr_vector", "status") as f:
    f[f"runs/{rid}"].attrs["status"] = np.array(["a"] * 1000, dtype=str_t)
with variant("type_attr_number", "params/rows") as f:
    f[f"runs/{rid}/params/rows"].attrs["rankflow_type"] = np.int64(7)
with variant("soft_link", "soft link") as f:
    f[f"runs/{rid}/params/alias"] = h5py.SoftLink(f"/runs/{rid}/params")
with variant("dangling_soft_link", "soft link") as f:
    f[f"runs/{rid}/params/nowhere"] = h5py.SoftLink("/no/such/object")
with variant("hard_link_loop", "params/loop") as f:
    g = f[f"runs/{rid}/params"]
    g["loop"] = g  # a group that contains itself
with variant("hard_link_twice", "reached twice") as f:
    # Not a cycle, but 2^40 paths if followed: each level links the next twice.
    g = f[f"runs/{rid}"].create_group("deep")
    for k in range(40):
        n = g.create_group("a")
        g["b"] = n
        g = n
with variant("deep_chain", "longer than any path") as f:
    g = f[f"runs/{rid}"]
    for k in range(20000):  # nested groups: deeper than any stack would recurse
        g = g.create_group("n")
with variant("series_ragged", "train/loss") as f:
    g = f[f"runs/{rid}"].create_group("train/loss")
    g.attrs["rankflow_type"] = "FloatSeries"
    g["step"] = np.arange(10, dtype=np.float64)
    g["value"] = np.arange(3, dtype=np.float64)  # shorter than step
    g["timestamp"] = np.arange(10, dtype=np.float64)
with variant("series_as_dataset", "train/loss") as f:
    d = f[f"runs/{rid}"].create_dataset("train/loss", data=np.float64(1))
    d.attrs["rankflow_type"] = "FloatSeries"
with variant("file_size_lies", "artifacts/blob") as f:
    d = f[f"runs/{rid}"].create_dataset("artifacts/blob", data=np.zeros(1 << 16, dtype=np.uint8))
    d.attrs["rankflow_type"] = "File"
    d.attrs["size"] = np.int64(8)  # the dataset holds far more
with variant("ledger_ok_longer", "ledger") as f:
    led = f[f"runs/{rid}/_rankflow/ledger"]
    n = led["call"].shape[0]
    del led["ok"]
    led["ok"] = np.ones(n * 4 + 100, dtype=bool)
with variant("ledger_offset_negative", "ledger") as f:
    led = f[f"runs/{rid}/_rankflow/ledger"]
    off = led["result_offset"][...]
    off[0] = np.int64(-4)  # as uint64 it is 2^64-4
    led["result_offset"][...] = off
with variant("ledger_columns_short", "ledger") as f:
    led = f[f"runs/{rid}/_rankflow/ledger"]
    del led["start"]
    led["start"] = np.zeros(1, dtype=np.float64)
# Format 2: the run's link itself.
with variant("run_file_missing", "missing its file") as f:
    os.unlink(os.path.join(outdir, "run_file_missing.h5.d", "runs", rid + ".h5"))
with variant("link_is_a_dataset", rid) as f:
    del f["runs"][rid]
    f["runs"].create_dataset(rid, data=np.int64(1))
with variant("run_file_major_3", "newer rankflow") as f:
    f[f"runs/{rid}"].file.attrs["rankflow_format_major"] = np.int64(3)
for name, major in (("major_minus_1", -1), ("major_2e32_plus_1", 2**32 + 1), ("major_0", 0)):
    with variant(name, str(major)) as f:
        f.attrs["rankflow_format_major"] = np.int64(major)
with variant("major_float", "rankflow_format_major") as f:
    f.attrs["rankflow_format_major"] = np.float64(1.5)
with variant("major_string", "rankflow_format_major") as f:
    f.attrs["rankflow_format_major"] = "1"

for name, expect in made:
    print(f"{name}\t{expect}")
