"""Read rankflow experiment files (docs/format.md) with h5py.

pandas.read_hdf reads only PyTables files, so this small reader turns a
rankflow file into DataFrames (when pandas is installed) or plain dicts:

    import rankflow_reader as rr
    rr.runs("rankflow.h5")                       # one row per run
    rr.fields("rankflow.h5", "RUN-3")            # {path: value}
    rr.series("rankflow.h5", "RUN-3", "train/loss")   # step, value, timestamp

Runs still being written, or killed and not yet recovered, live in the
journal beside the file: run `rankflow recover FILE` (or start any run in
that file) first. Files are opened read-only.
"""
import datetime

import h5py
import numpy as np

try:  # optional
    import pandas as pd
except ImportError:  # pragma: no cover
    pd = None

FORMAT_MAJOR = 2  # reads 1 (runs inside the file) and 2 (runs in their own files, linked)
RESERVED = "_rankflow"  # rankflow's own records in a run (the partition ledger), not fields


def _str(v):
    if isinstance(v, bytes):
        # rankflow refuses strings that are not UTF-8; a file written before
        # that, or by another program, still reads (bad bytes become U+FFFD).
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _str(v[()])
    return v if isinstance(v, str) else str(v)


def _open(path):
    f = h5py.File(path, "r")
    major = f.attrs.get("rankflow_format_major")
    if major is None:
        f.close()
        raise ValueError(f"{path} is not a rankflow experiment file (no rankflow_format_major attribute)")
    if int(major) > FORMAT_MAJOR:
        f.close()
        raise ValueError(f"{path} has format {int(major)}; this reader reads format {FORMAT_MAJOR}")
    return f


def _run_info(g):
    info = {k: (_str(v) if not isinstance(v, (np.integer, np.floating)) else v.item()) for k, v in g.attrs.items()
            if k != "hosts"}
    info["hosts"] = [_str(h) for h in g.attrs.get("hosts", [])]
    return info


def runs(path):
    """Every run of the file with its attributes (a DataFrame with pandas)."""
    with _open(path) as f:
        rows = [_run_info(f["runs"][rid]) for rid in f["runs"]]
    rows.sort(key=lambda r: int(r["id"].split("-")[-1]) if r["id"].split("-")[-1].isdigit() else 0)
    return pd.DataFrame(rows) if pd is not None else rows


def _value(obj, kind):
    if kind in ("FloatSeries", "IntSeries", "StringSeries"):
        values = obj["value"][...]
        if kind == "StringSeries":
            values = [_str(v) for v in values]
        out = {"step": obj["step"][...], "value": values, "timestamp": obj["timestamp"][...]}
        return pd.DataFrame(out) if pd is not None else out
    if kind == "File":
        return obj[...].tobytes()
    if kind == "Array":
        return obj[...]
    v = obj[()]
    if kind == "String":
        return _str(v)
    if kind in ("StringList", "StringSet"):
        items = [_str(s) for s in v]
        return set(items) if kind == "StringSet" else items
    if kind == "Bool":
        return bool(v)
    if kind == "Int":
        return int(v)
    if kind == "Datetime":
        return datetime.datetime.fromtimestamp(float(v), tz=datetime.timezone.utc)
    return float(v)


def _walk(group, prefix, out):
    for name in group:
        if not prefix and name == RESERVED:
            continue
        path = f"{prefix}/{name}" if prefix else name
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            out[path] = ("Array", group[name])
            continue
        obj = group[name]
        kind = _str(obj.attrs.get("rankflow_type", ""))
        if isinstance(obj, h5py.Group) and not kind:
            _walk(obj, path, out)
        else:
            out[path] = (kind, obj)


def fields(path, run_id):
    """{field path: value} of a run: numbers, strings, lists, sets, datetimes,
    bytes (File), numpy arrays (Array) and DataFrames/dicts (series)."""
    with _open(path) as f:
        if run_id not in f["runs"]:
            raise KeyError(f"run {run_id} is not in {path}; runs there: {', '.join(f['runs'])}")
        found = {}
        _walk(f["runs"][run_id], "", found)
        return {p: _value(obj, kind) for p, (kind, obj) in found.items()}


def series(path, run_id, field):
    """One series of a run: step, value, timestamp columns."""
    with _open(path) as f:
        obj = f["runs"][run_id][field]
        kind = _str(obj.attrs.get("rankflow_type", ""))
        if kind not in ("FloatSeries", "IntSeries", "StringSeries"):
            raise TypeError(f"{field} is a {kind or 'namespace'}, not a series")
        return _value(obj, kind)
