"""Read rankflow experiment files (docs/format.md) with h5py.

pandas.read_hdf reads only PyTables files, so this small reader turns a
rankflow file into DataFrames (when pandas is installed) or plain dicts:

    import rankflow_reader as rr
    rr.runs("rankflow.h5")                       # one row per run (the run index: no run file opened)
    rr.index("rankflow.h5")                      # ... with every parameter and each series' last/min/max/count
    rr.sweeps("rankflow.h5")                     # one row per sweep: runs done, failed, running, killed
    rr.fields("rankflow.h5", "RUN-3")            # {path: value}
    rr.series("rankflow.h5", "RUN-3", "train/loss")              # step, value, timestamp
    rr.series("rankflow.h5", "RUN-3", "train/loss", 1000, 2000)  # steps [1000, 2000) only, read lazily

Install with `pip install ./tracking/python` (in a virtual environment; it
needs nothing from the network), or put tracking/python on sys.path.

Runs still being written, or killed and not yet recovered, live in the
journal beside the file: run `rankflow recover FILE` (or start any run in
that file) first. Files are opened read-only.
"""
import bisect
import datetime
import os
import struct

try:
    import h5py
except ImportError as e:  # pragma: no cover
    raise ImportError("rankflow_reader needs h5py: apt-get install python3-h5py (Debian) or pip install h5py") from e
import numpy as np

try:  # optional
    import pandas as pd
except ImportError:  # pragma: no cover
    pd = None

FORMAT_MAJOR = 2  # reads 1 (runs inside the file) and 2 (runs in their own files, linked)
__version__ = "2.0.0"
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


def _run_number(rid):
    tail = rid.split("-")[-1]
    return int(tail) if tail.isdigit() else 0


def _table(rows):
    rows.sort(key=lambda r: _run_number(r["id"]))
    return pd.DataFrame(rows) if pd is not None else rows


# ---------------------------------------------------------------- the run index
# docs/format.md, "The run index": RFINDX01, then [u32 length][u32 CRC-32C][payload].

_TYPES = {1: "Int", 2: "Float", 3: "Bool", 4: "String", 5: "Datetime", 6: "StringSet", 7: "StringList",
          8: "FloatSeries", 9: "IntSeries", 10: "StringSeries"}


class _Reader:
    def __init__(self, data):
        self.d, self.at = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.at)
        self.at += struct.calcsize(fmt)
        return v[0]

    def str(self):
        n = self.take("<I")
        if self.at + n > len(self.d):
            raise ValueError("run index record is truncated or damaged")
        v = self.d[self.at:self.at + n].decode("utf-8", errors="replace")
        self.at += n
        return v

    def strs(self):
        return [self.str() for _ in range(self.take("<I"))]

    def atom(self):
        t = self.take("<B")
        kind = _TYPES.get(t)
        if kind in ("Int",):
            return self.take("<q")
        if kind == "Bool":
            return self.take("<q") != 0
        if kind == "Float":
            return self.take("<d")
        if kind == "Datetime":
            return datetime.datetime.fromtimestamp(self.take("<d"), tz=datetime.timezone.utc)
        if kind == "String":
            return self.str()
        if kind == "StringSet":
            return set(self.strs())
        if kind == "StringList":
            return self.strs()
        raise ValueError(f"run index record holds an unknown atom type {t}")


def _entry(payload):
    r = _Reader(payload)
    version = r.take("<B")
    if version != 1:
        raise ValueError(f"run index record of version {version}; this reader reads version 1")
    row = {"id": r.str(), "name": r.str(), "status": r.str()}
    start = r.take("<d")
    row["ranks"] = r.take("<i")
    row["hosts"] = r.strs()
    row["command_line"], row["rankflow_version"], row["mode"] = r.str(), r.str(), r.str()
    for _ in range(r.take("<I")):
        k = r.str()
        row[k] = r.str()
    row["reason"] = r.str()
    end = r.take("<d")
    row["start"] = datetime.datetime.fromtimestamp(start, tz=datetime.timezone.utc) if start > 0 else None
    row["end"] = datetime.datetime.fromtimestamp(end, tz=datetime.timezone.utc) if end > 0 else None
    row["duration"] = end - start if end > 0 and start > 0 else None
    if "sweep" not in row and row.get("slurm_array_job_id"):
        row["sweep"] = "slurm-" + row["slurm_array_job_id"]
    for _ in range(r.take("<I")):
        p = r.str()
        row[p] = r.atom()
    for _ in range(r.take("<I")):
        p = r.str()
        kind = _TYPES.get(r.take("<B"))
        count = r.take("<Q")
        r.take("<d")  # last step
        has_number = r.take("<B") != 0
        last, lo, hi = r.take("<d"), r.take("<d"), r.take("<d")
        last_text = r.str()
        row[p + ":count"] = count
        if count:
            row[p] = last_text if kind == "StringSeries" else (int(last) if kind == "IntSeries" else last)
            if has_number:
                row[p + ":min"], row[p + ":max"] = lo, hi
    if r.at != len(payload):
        raise ValueError("run index record has bytes past its end")
    return row


def _read_index(path, f):
    committed = int(f.attrs.get("index_bytes", 0))
    if committed == 0:
        return []
    with open(path + ".d/index", "rb") as g:
        data = g.read(committed)
    if len(data) < committed or data[:8] != b"RFINDX01":
        raise ValueError(f"{path}.d/index is not a rankflow run index, or shorter than {path} says")
    rows, where, at = [], {}, 8
    while at < len(data):
        n, _crc = struct.unpack_from("<II", data, at)
        at += 8
        if at + n > len(data):
            raise ValueError(f"{path}.d/index has a record longer than the index")
        row = _entry(data[at:at + n])
        at += n
        if row["id"] in where:
            rows[where[row["id"]]] = row  # a resumed or recovered run: the last record wins
        else:
            where[row["id"]] = len(rows)
            rows.append(row)
    return rows


def index(path):
    """One row per run from the run index (format 2; format 1 files are read run
    by run): its attributes, every scalar field by path, and for each series its
    last value (`path`), `path:min`, `path:max` and `path:count`. No run file is
    opened, so 100,000 runs read in seconds. A DataFrame with pandas."""
    with _open(path) as f:
        if int(f.attrs["rankflow_format_major"]) >= 2:
            return _table(_read_index(path, f))
        rows = []
        for rid in f["runs"]:
            row = _run_info(f["runs"][rid])
            found = {}
            _walk(f["runs"][rid], "", found)
            for p, (kind, obj) in found.items():
                if kind in ("FloatSeries", "IntSeries", "StringSeries"):
                    n = obj["step"].shape[0]
                    row[p + ":count"] = n
                    if n:
                        values = obj["value"][...]
                        row[p] = _str(values[-1]) if kind == "StringSeries" else values[-1].item()
                        if kind != "StringSeries":
                            row[p + ":min"], row[p + ":max"] = float(np.nanmin(values)), float(np.nanmax(values))
                elif kind not in ("File", "Array"):
                    row[p] = _value(obj, kind)
            rows.append(row)
        return _table(rows)


def runs(path):
    """Every run of the file with its attributes (a DataFrame with pandas)."""
    with _open(path) as f:
        if int(f.attrs["rankflow_format_major"]) >= 2:
            keep = ("id", "name", "status", "reason", "start", "end", "duration", "ranks", "hosts", "command_line",
                    "rankflow_version", "mode", "sweep", "resumes")
            rows = [{k: v for k, v in r.items() if k in keep or k.startswith("slurm_")} for r in _read_index(path, f)]
        else:
            rows = [_run_info(f["runs"][rid]) for rid in f["runs"]]
    return _table(rows)


def sweeps(path):
    """One row per sweep (runs of one Slurm array, or named with --sweep): how
    many runs it has, succeeded, failed, running and killed."""
    rows = index(path)
    rows = rows.to_dict("records") if pd is not None else rows
    out = {}
    for r in rows:
        name = r.get("sweep")
        if not name or (isinstance(name, float) and np.isnan(name)):
            continue
        s = out.setdefault(name, {"sweep": name, "runs": 0, "succeeded": 0, "failed": 0, "running": 0, "killed": 0})
        s["runs"] += 1
        if r["status"] in s:
            s[r["status"]] += 1
    rows = sorted(out.values(), key=lambda s: s["sweep"])
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


class _Steps:
    """The step column as a sequence bisect can search, one element read at a time."""

    def __init__(self, d):
        self.d = d

    def __len__(self):
        return self.d.shape[0]

    def __getitem__(self, k):
        return self.d[k]


def series(path, run_id, field, start=None, stop=None):
    """One series of a run: step, value, timestamp columns. With `start` and/or
    `stop`, only the points with start <= step < stop, found by bisecting the
    step column (steps increase) and read as one slice: a 10M-point series is
    never read whole for a window of it."""
    with _open(path) as f:
        obj = f["runs"][run_id][field]
        kind = _str(obj.attrs.get("rankflow_type", ""))
        if kind not in ("FloatSeries", "IntSeries", "StringSeries"):
            raise TypeError(f"{field} is a {kind or 'namespace'}, not a series")
        if start is None and stop is None:
            return _value(obj, kind)
        steps = _Steps(obj["step"])
        lo = 0 if start is None else bisect.bisect_left(steps, start)
        hi = len(steps) if stop is None else bisect.bisect_left(steps, stop)
        hi = max(lo, hi)
        values = obj["value"][lo:hi]
        if kind == "StringSeries":
            values = [_str(v) for v in values]
        out = {"step": obj["step"][lo:hi], "value": values, "timestamp": obj["timestamp"][lo:hi]}
        return pd.DataFrame(out) if pd is not None else out
