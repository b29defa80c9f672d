#!/usr/bin/python3
"""The JSON API of `rankflow ui`, against what the programs wrote.

    ui_api_test.py --url http://127.0.0.1:PORT/ --rankflow BUILD/tracking/rankflow FILE...

Run in the directory the server was started in; FILE... are the experiment files in the
order they were given to `rankflow ui`. Ground truth: `rankflow runs/sweeps/export
--format json` and h5py. Every failure is listed; the exit code is 1 if there is any."""
import argparse, hashlib, http.client, json, math, random, socket, struct, subprocess, sys, threading, time
import urllib.parse
import h5py

FAILS = []
ATOMS = {"Int", "Float", "Bool", "String", "Datetime", "StringList", "StringSet"}
ATTRS = {"id", "name", "status", "reason", "start", "end", "duration", "ranks", "hosts", "sweep", "command_line"}

def check(cond, msg):
    if not cond:
        FAILS.append(msg)
        print("FAIL:", msg, flush=True)
    return bool(cond)

def fail(msg):
    check(False, msg)

def section(fn):
    def wrapped(*a):
        t = time.time()
        try:
            fn(*a)
        except Exception as e:  # a crash in one section must not hide the others
            fail(f"{fn.__name__}: {type(e).__name__}: {e}")
        print(f"-- {fn.__name__} ({time.time() - t:.1f}s)", flush=True)
    return wrapped

def same(a, b, tol=1e-9):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) == type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=tol, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    return a == b

class Server:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port

    def raw(self, target, method="GET", timeout=20):
        """(status, headers, body) for a request target sent exactly as given."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.putrequest(method, target, skip_accept_encoding=True)
            if method != "GET":
                c.putheader("Content-Length", "0")
            c.endheaders()
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def api(self, route, /, **params):
        """A good request: 200 and JSON, else an exception naming what was sent."""
        target = route + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe=",/")
        st, h, body = self.raw(target)
        if st != 200:
            raise AssertionError(f"GET {target} -> {st} {body[:300]!r} (expected 200)")
        if "application/json" not in h.get("content-type", ""):
            fail(f"GET {target}: Content-Type {h.get('content-type')!r}, expected application/json")
        return json.loads(body)

    def bad(self, target, statuses=(400, 404), method="GET"):
        """A bad request: a 4xx in `statuses` with {"error": "..."}; returns the message."""
        st, h, body = self.raw(target, method)
        check(b"root:x:0:0" not in body, f"{method} {target} returned /etc/passwd content!")
        try:
            msg = json.loads(body)["error"]
        except Exception:
            msg = None
        check(st in statuses and isinstance(msg, str) and msg.strip() and "application/json" in h.get("content-type", ""),
              f"{method} {target} -> {st} {h.get('content-type')} {body[:200]!r}, expected {statuses} with {{\"error\": \"...\"}}")
        return msg or ""

def cli(rf, *args):
    out = subprocess.run([rf, *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"rankflow {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout)

def ids(rows):
    return [r["id"] for r in rows]

@section
def experiments(s, a):
    got = s.api("/api/experiments")["experiments"]
    check([e["file"] for e in got] == a.files, f"/api/experiments files {[e['file'] for e in got]} != {a.files}")
    for i, e in enumerate(got):
        check(e["index"] == i, f"/api/experiments: entry {i} has index {e['index']}")
        n = len(cli(a.rankflow, "runs", e["file"], "--format", "json"))
        check(e["runs"] == n, f"/api/experiments: {e['file']} runs={e['runs']}, `rankflow runs` lists {n}")

QUERIES = [  # (where, sort, cols): each answered by /api/runs as by `rankflow runs`
    ("", "", "id,name,status,reason,ranks,sweep"),
    ("status=failed", "", "id,status,reason"),
    ("params/seed<10", "", "id,params/seed"),
    ("status=succeeded and not params/seed=42", "-ranks", "id,ranks,params/seed"),
    ("(sweep=grid or name~live) and ranks>=1", "-params/seed,id", "id,sweep,params/seed,result/sum"),
    ("", "-timing/partition_ms:count", "id,timing/partition_ms:count,timing/partition_ms:max,live/loss:last"),
    ("params/writer='live_writer'", "-params/lr", "id,params/lr,params/writer"),
    ("name~'wee' or params/grid_size>3", "", "id,params/grid_size,best/lr"),
]

@section
def runs(s, a):
    for e, f in enumerate(a.files):
        every = cli(a.rankflow, "runs", f, "--format", "json", "--cols", "id,status,sweep")
        live = {r["id"] for r in every if r["status"] == "running"}
        for where, sort, cols in QUERIES:
            args = ["runs", f, "--format", "json", "--cols", cols] + (["--where", where] if where else []) + (["--sort", sort] if sort else [])
            want = cli(a.rankflow, *args)
            params = {"exp": e, "cols": cols, **({"where": where} if where else {}), **({"sort": sort} if sort else {})}
            got = s.api("/api/runs", **params)
            what = f"/api/runs {params}"
            check(got["total"] == len(every), f"{what}: total {got['total']}, `rankflow runs` has {len(every)} runs")
            check(got["matched"] == len(want), f"{what}: matched {got['matched']}, `rankflow runs` matches {len(want)}")
            check(ids(got["rows"]) == ids(want), f"{what}: rows {ids(got['rows'])}, `rankflow runs` gives {ids(want)}")
            check(got["columns"] == cols.split(","), f"{what}: columns {got['columns']}")
            for g, w in zip(got["rows"], want):
                for c in cols.split(",") if w["id"] not in live else ():  # a live run's cells move between the two reads
                    check(same(g["cells"].get(c, "absent"), w.get(c)), f"{what}: {w['id']} cell {c} = {g['cells'].get(c, 'absent')!r}, CLI {w.get(c)!r}")
        rows = s.api("/api/runs", exp=e)["rows"]
        for g, w in zip(rows, every):
            check(g["status"] == w["status"], f"/api/runs?exp={e}: {w['id']} status {g['status']!r} != {w['status']!r}")
            check(g["live"] is (w["status"] == "running"), f"/api/runs?exp={e}: {w['id']} live={g['live']} with status {w['status']}")
            check((g["sweep"] or None) == w.get("sweep"), f"/api/runs?exp={e}: {w['id']} sweep {g['sweep']!r} != {w.get('sweep')!r}")
        n = len(every)
        for off, lim in ((0, 1), (1, 2), (n - 1, 100), (n, 5), (10**6, 10)):
            got = s.api("/api/runs", exp=e, offset=off, limit=lim)
            check(ids(got["rows"]) == ids(every)[off:off + lim] and got["offset"] == off and got["total"] == n,
                  f"/api/runs?exp={e}&offset={off}&limit={lim}: rows {ids(got['rows'])} offset {got['offset']}, want {ids(every)[off:off + lim]}")
        for sw in {r.get("sweep") for r in every} - {None}:
            got = s.api("/api/runs", exp=e, sweep=sw)
            want = [r["id"] for r in every if r.get("sweep") == sw]
            check(ids(got["rows"]) == want, f"/api/runs?exp={e}&sweep={sw}: {ids(got['rows'])} != {want}")
    msg = s.bad("/api/runs?exp=0&where=params/lr%3C", (400,))
    check("expected a value" in msg and "position 11" in msg, f"bad where: message {msg!r} is not the parser's")

@section
def sweeps(s, a):
    for e, f in enumerate(a.files):
        want = {w["sweep"]: w["runs"] for w in cli(a.rankflow, "sweeps", f, "--format", "json")}
        got = {w["sweep"]: w["runs"] for w in s.api("/api/sweeps", exp=e)["sweeps"]}
        check(got == want, f"/api/sweeps?exp={e}: {got}, `rankflow sweeps` says {want}")

def h5run(f, rid):
    return h5py.File(f, "r")["runs/" + rid]

@section
def run_details(s, a):
    for e, f in enumerate(a.files):
        for r in cli(a.rankflow, "runs", f, "--format", "json"):
            rid, got = r["id"], s.api("/api/run", exp=e, id=r["id"])
            what, info = f"/api/run?exp={e}&id={rid}", got["info"]
            check(got["live"] is (r["status"] == "running"), f"{what}: live={got['live']}, status {r['status']}")
            check(info["status"] == r["status"], f"{what}: status {info['status']!r} != {r['status']!r}")
            if r["status"] == "running":
                continue  # still in its journal: checked by live()
            x = cli(a.rankflow, "export", f, rid, "--format", "json")
            for k in ("id", "name", "status", "reason", "ranks", "hosts", "command_line"):
                check(same(info.get(k), x[k]), f"{what}: info.{k} = {info.get(k)!r}, export says {x[k]!r}")
            fx = x["fields"]
            atoms = {p: v for p, v in fx.items() if v["type"] in ATOMS}
            ga = {d["path"]: d for d in got["fields"] if d["type"] in ATOMS}
            check(set(ga) == set(atoms), f"{what}: fields differ from export: {sorted(set(ga) ^ set(atoms))}")
            for p in set(ga) & set(atoms):
                check(ga[p]["type"] == atoms[p]["type"], f"{what}: {p} type {ga[p]['type']} != {atoms[p]['type']}")
                if atoms[p]["type"] != "Datetime":
                    check(same(ga[p]["value"], atoms[p]["value"]), f"{what}: {p} = {ga[p]['value']!r}, export {atoms[p]['value']!r}")
            ser = {p: v for p, v in fx.items() if v["type"].endswith("Series")}
            gs = {d["path"]: d for d in got["series"]}
            check(set(gs) == set(ser), f"{what}: series {sorted(gs)} != {sorted(ser)}")
            for p in set(gs) & set(ser):
                v, d = ser[p]["values"], gs[p]
                check(d["type"] == ser[p]["type"] and d["count"] == len(v) and same(d["last"], v[-1]),
                      f"{what}: series {p} {d}, export has {ser[p]['type']} {len(v)} points, last {v[-1]!r}")
                if ser[p]["type"] != "StringSeries":
                    check(same(d["min"], min(v)) and same(d["max"], max(v)), f"{what}: {p} min/max {d['min']}/{d['max']} != {min(v)}/{max(v)}")
            files = {p: (v["filename"], v["size"]) for p, v in fx.items() if v["type"] == "File"}
            check({d["path"]: (d["filename"], d["size"]) for d in got["files"]} == files, f"{what}: files {got['files']} != {files}")
            arrs = {p: (v["dtype"], list(v["shape"])) for p, v in fx.items() if v["type"] == "Array"}
            check({d["path"]: (d["dtype"], list(d["shape"])) for d in got["arrays"]} == arrs, f"{what}: arrays {got['arrays']} != {arrs}")
            g, lg, c = h5run(f, rid), got["ledger"], {}
            n = len(g["_rankflow/ledger/call"]) if "_rankflow/ledger" in g else 0
            if "_rankflow/calls" in g:
                c = {k: list(g["_rankflow/calls/" + k][...]) for k in ("call", "step", "items", "partitions")}
            calls = [(int(k), t.decode(), int(i), int(q)) for k, t, i, q in zip(*c.values())]
            check(lg["rows"] == n, f"{what}: ledger rows {lg['rows']}, the file has {n}")
            check([(k["call"], k["step"], k["items"], k["partitions"]) for k in lg["calls"]] == calls, f"{what}: ledger calls {lg['calls']} != {calls}")

def find_series(a, kind):
    """(exp, run, path, h5 group) of the longest series of `kind` in a finished run."""
    best = None
    for e, f in enumerate(a.files):
        for r in cli(a.rankflow, "runs", f, "--format", "json", "--where", "status!=running"):
            for p, v in cli(a.rankflow, "export", f, r["id"], "--format", "json")["fields"].items():
                if v["type"] == kind and (best is None or len(v["values"]) > best[3]):
                    best = (e, r["id"], p, len(v["values"]))
    return best

@section
def series(s, a):
    e, rid, p, n = find_series(a, "FloatSeries")
    check(n >= 1000, f"the longest FloatSeries ({rid} {p}) has only {n} points: the reduction is not exercised")
    g = h5run(a.files[e], rid)[p]
    steps, vals, ts = list(g["step"][...]), list(g["value"][...]), list(g["timestamp"][...])
    data, base, what = dict(zip(steps, vals)), dict(exp=e, id=rid, path=p), f"/api/series?exp={e}&id={rid}&path={p}"
    full = s.api("/api/series", **base, width=n)
    check(full["count"] == n and full["reduced"] is False and same([q[0] for q in full["points"]], steps)
          and same([q[1] for q in full["points"]], vals), f"{what}&width={n}: not the {n} points of the file (count {full['count']}, reduced {full['reduced']})")
    check(full["path"] == p and full["type"] == "FloatSeries" and full["x"] == "step", f"{what}: path/type/x {full['path']}/{full['type']}/{full['x']}")
    for w in (None, 100, 7, 1):
        got = s.api("/api/series", **base, **({"width": w} if w else {}))
        w = w or 800
        pts, tag = got["points"], f"{what}&width={w}"
        check(got["count"] == n, f"{tag}: count {got['count']} != {n}")
        check(got["reduced"] is (n > 2 * w), f"{tag}: reduced={got['reduced']} for {n} points")
        check(0 < len(pts) <= min(n, 2 * w), f"{tag}: {len(pts)} points, at most {min(n, 2 * w)} allowed")
        check(all(pts[i][0] <= pts[i + 1][0] for i in range(len(pts) - 1)), f"{tag}: x not ascending")
        check(all(q[0] in data and same(q[1], data[q[0]]) for q in pts), f"{tag}: points that are not samples of the series")
        check(same(max(q[1] for q in pts), max(vals)) and same(min(q[1] for q in pts), min(vals)),
              f"{tag}: spikes lost: min/max {min(q[1] for q in pts)}/{max(q[1] for q in pts)}, series {min(vals)}/{max(vals)}")
    lo, hi = steps[n // 4], steps[n // 4 + 99]
    got = s.api("/api/series", **base, width=n, **{"from": lo, "to": hi})
    xs = [q[0] for q in got["points"]]
    check(all(lo <= x <= hi for x in xs) and set(steps[n // 4:n // 4 + 99]) <= set(xs), f"{what}&from={lo}&to={hi}: x {xs[:3]}..{xs[-3:]} ({len(xs)} points)")
    got = s.api("/api/series", **base, width=5, **{"from": lo, "to": hi})
    check(0 < len(got["points"]) <= 10 and all(lo <= q[0] <= hi for q in got["points"]), f"{what}&width=5&from={lo}&to={hi}: {got['points']}")
    got = s.api("/api/series", **base, width=n, x="time")
    xs = [q[0] for q in got["points"]]
    check(got["x"] == "time" and len(xs) == n and all(abs((xs[i] - xs[0]) - (ts[i] - ts[0])) < 1e-5 for i in range(n)),
          f"{what}&x=time: x is not the points' timestamps")
    for kind in ("IntSeries", "StringSeries"):
        e2, r2, p2, n2 = find_series(a, kind)
        g2 = h5run(a.files[e2], r2)[p2]
        got = s.api("/api/series", exp=e2, id=r2, path=p2)
        vals2 = [v.decode() if isinstance(v, bytes) else int(v) for v in g2["value"][...]]
        check(got["type"] == kind and [q[1] for q in got["points"]] == vals2, f"/api/series {r2} {p2}: {got['points'][:5]} != {vals2[:5]}")

@section
def timeline(s, a):
    for e, f in enumerate(a.files):
        for r in cli(a.rankflow, "runs", f, "--format", "json", "--where", "status!=running"):
            got, g = s.api("/api/timeline", exp=e, id=r["id"]), h5run(f, r["id"])
            what = f"/api/timeline?exp={e}&id={r['id']}"
            check(got["ranks"] == r["ranks"] and len(got["idle"]) == r["ranks"] and all(x >= 0 for x in got["idle"]),
                  f"{what}: ranks {got['ranks']} idle {got['idle']}, the run had {r['ranks']} ranks")
            want = []
            if "_rankflow/ledger" in g:
                L = g["_rankflow/ledger"]
                want = sorted((int(c), int(p), int(k), round(float(st), 3), bool(ok)) for c, p, k, st, ok in
                              zip(L["call"][...], L["partition"][...], L["rank"][...], L["start"][...], L["ok"][...]))
            ent = got["entries"]
            have = sorted((x["call"], x["partition"], x["rank"], round(got["t0"] + x["start"], 3), bool(x["ok"])) for x in ent)
            check(len(have) == len(want) and all(h[:3] == w[:3] and abs(h[3] - w[3]) <= 0.002 and h[4] == w[4] for h, w in zip(have, want)),
                  f"{what}: {len(have)} entries, the ledger has {len(want)} rows (or their times/ranks differ)")
            check(all(0 <= x["start"] <= x["end"] for x in ent), f"{what}: an entry ends before it starts, or starts before t0")
            dur = sorted((x["end"] - x["start"] for x in ent), reverse=True)
            sl = [x["end"] - x["start"] for x in got["slowest"]]
            # start/end come rounded to microseconds: durations may be off by 2 us
            check(all(sl[i] >= sl[i + 1] - 2.5e-6 for i in range(len(sl) - 1)) and all(abs(u - v) <= 2.5e-6 for u, v in zip(sl, dur)),
                  f"{what}: slowest {sl[:5]} is not the longest entries first {dur[:5]}")
            check(len(got["failures"]) == sum(1 for w in want if not w[4]), f"{what}: {len(got['failures'])} failures listed")

@section
def compare(s, a):
    e, f = 0, a.files[0]
    rs = [r["id"] for r in cli(a.rankflow, "runs", f, "--format", "json", "--where", "status=succeeded")][:3]
    ex = [cli(a.rankflow, "export", f, rid, "--format", "json")["fields"] for rid in rs]
    got = s.api("/api/compare", exp=e, ids=",".join(rs))
    check(got["runs"] == rs, f"/api/compare ids={rs}: runs {got['runs']}")
    atoms = sorted({p for x in ex for p, v in x.items() if v["type"] in ATOMS})
    gf = {d["path"]: d for d in got["fields"]}
    check(set(atoms) <= set(gf), f"/api/compare: fields of the runs missing: {sorted(set(atoms) - set(gf))}")
    extra = [p for p in set(gf) - set(atoms) if p not in ATTRS and p.split(":")[0] not in ex[0] | ex[-1]]
    check(not extra, f"/api/compare: rows that are neither fields, run attributes nor series parts: {extra}")
    for p in set(gf) & set(atoms):
        vals = [x[p]["value"] if p in x else None for x in ex]
        check(same(gf[p]["values"], vals), f"/api/compare {p}: values {gf[p]['values']} != {vals}")
        check(gf[p]["differs"] is (not all(same(v, vals[0]) for v in vals)), f"/api/compare {p}: differs={gf[p]['differs']} for {vals}")
    sers = sorted({p for x in ex for p, v in x.items() if v["type"].endswith("Series")})
    check(sorted(got["series"]) == sers, f"/api/compare: series {got['series']} != {sers}")

def big_file(s, a):
    for e, f in enumerate(a.files):
        for r in s.api("/api/runs", exp=e, limit=1000)["rows"]:
            for d in s.api("/api/run", exp=e, id=r["id"])["files"]:
                if d["size"] >= 8 << 20:
                    return e, r["id"], d
    raise AssertionError("no File field of 8 MiB or more in any experiment")

@section
def files_and_cut_downloads(s, a):
    e, rid, d = big_file(s, a)
    target = "/api/file?" + urllib.parse.urlencode({"exp": e, "id": rid, "path": d["path"]}, quote_via=urllib.parse.quote, safe="/")
    want = hashlib.sha256(bytes(h5run(a.files[e], rid)[d["path"]][...])).hexdigest()
    for rst in (True, False, True):
        sk = socket.create_connection((s.host, s.port), timeout=10)
        sk.sendall(f"GET {target} HTTP/1.1\r\nHost: {s.host}:{s.port}\r\n\r\n".encode())
        got = 0
        while got < (1 << 20):
            b = sk.recv(65536)
            if not b:
                break
            got += len(b)
        check(got >= (1 << 20), f"GET {target}: the connection ended after {got} bytes of {d['size']}")
        if rst:  # an abrupt close (RST), as a browser cancelling the download
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sk.close()
    stuck = socket.create_connection((s.host, s.port), timeout=10)  # a client that never reads
    stuck.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    t = time.time()
    for _ in range(5):
        s.api("/api/experiments")
    check(time.time() - t < 5, f"5 requests took {time.time() - t:.1f}s while one client stalls a download")
    st, h, body = s.raw(target)
    stuck.close()
    check(st == 200 and len(body) == d["size"] and hashlib.sha256(body).hexdigest() == want,
          f"GET {target} after cut downloads: {st}, {len(body)} bytes of {d['size']}, sha256 matches: {hashlib.sha256(body).hexdigest() == want}")
    check("attachment" in h.get("content-disposition", "") and d["filename"] in h.get("content-disposition", ""),
          f"GET {target}: Content-Disposition {h.get('content-disposition')!r}")
    check(h.get("content-length") == str(d["size"]), f"GET {target}: Content-Length {h.get('content-length')}")

def bad_targets(a):
    r1 = "RUN-1"
    S = f"/api/series?exp=0&id={r1}&path="
    T = ["/api/runs?exp=99", "/api/runs?exp=-1", "/api/runs?exp=abc", "/api/runs?exp=0&where=%28status%3Dfailed",
         "/api/runs?exp=0&where=status%3D%3D%3Dx", "/api/runs?exp=0&offset=-1", "/api/runs?exp=0&limit=-1",
         "/api/runs?exp=0&offset=99999999999999999999999", "/api/runs?exp=0&limit=99999999999999999999999",
         "/api/runs?exp=0&offset=abc", "/api/runs?exp=0&limit=1.5", "/api/sweeps?exp=7",
         "/api/run?exp=0&id=RUN-999", "/api/run?exp=0&id=../../etc/passwd", "/api/run?exp=0&id=RUN-1%00",
         "/api/run?exp=0&id=", "/api/run?exp=0", "/api/run?exp=5&id=RUN-1", "/api/run?exp=0&id=%2e%2e%2f%2e%2e%2fetc%2fpasswd",
         S + "nope/nope", S + "params/seed", S + "../../../../etc/passwd", S + "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
         S + "%2Fetc%2Fpasswd", S + "timing/partition_ms%00", S + "timing%2F..%2F..%2Fparams", S + "_rankflow/ledger/start",
         S + "timing/partition_ms&width=0", S + "timing/partition_ms&width=-5", S + "timing/partition_ms&width=abc",
         S + "timing/partition_ms&width=99999999999999999999", S + "timing/partition_ms&x=bogus",
         S + "timing/partition_ms&from=abc", "/api/series?exp=0&id=RUN-999&path=timing/partition_ms",
         "/api/file?exp=0&id=RUN-1&path=params/seed", "/api/file?exp=0&id=RUN-1&path=../../../../etc/passwd",
         "/api/file?exp=0&id=RUN-1&path=%2Fetc%2Fpasswd", "/api/file?exp=0&id=..%2F..%2F..%2Fetc&path=passwd",
         "/api/file?exp=0&id=RUN-1&path=nope", "/api/timeline?exp=0&id=RUN-999", "/api/timeline?exp=0&id=..",
         "/api/compare?exp=0&ids=RUN-1,RUN-999", "/api/compare?exp=0&ids=", "/api/compare?exp=0",
         "/api/nope", "/nope", "/index.html/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/api/../../etc/passwd",
         "/" + a.files[0], "/" + a.files[0] + ".d/index", "/etc/passwd"]
    return T

@section
def bad_input(s, a):
    for t in bad_targets(a):
        s.bad(t, tuple(range(400, 500)))
    for t in ("/api/runs?exp=99", "/api/run?exp=0&id=RUN-999", "/api/nope", "/nope", "/api/file?exp=0&id=RUN-1&path=nope"):
        s.bad(t, (404,))
    for t in ("/api/runs?exp=abc", "/api/runs?exp=0&offset=-1", "/api/runs?exp=0&limit=-1",
              "/api/series?exp=0&id=RUN-1&path=timing/partition_ms&width=0", "/api/series?exp=0&id=RUN-1&path=timing/partition_ms&x=bogus"):
        s.bad(t, (400,))
    st, h, body = s.raw("/favicon.ico")
    check(st == 204 and not body, f"/favicon.ico -> {st} {body[:50]!r}, expected 204")
    for t, m in (("/api/runs?exp=0", "POST"), ("/api/runs?exp=0", "DELETE"), ("/api/runs?exp=0&where=" + "x%3D1%20and%20" * 8000 + "x%3D1", "GET"),
                 ("/api/runs?exp=0&where=%zz", "GET"), ("/api/runs?exp=0&where=" + "%28" * 5000, "GET"), ("/api/runs?exp=0&cols=,,", "GET"),
                 ("/api/runs?exp=0&sort=--", "GET"), ("/api/series?exp=0&id=RUN-1&path=timing/partition_ms&from=5&to=1", "GET")):
        st, h, body = s.raw(t, m)
        check(st < 500, f"{m} {t[:80]}... -> {st} (a 5xx for bad input)")
    s.api("/api/experiments")  # still serving

@section
def concurrent_clients(s, a):
    good = ["/api/experiments", "/api/runs?exp=0", "/api/runs?exp=0&where=status%3Dfailed&sort=-ranks", "/api/sweeps?exp=1",
            "/api/run?exp=0&id=RUN-1", "/api/series?exp=0&id=RUN-1&path=timing/partition_ms&width=300",
            "/api/timeline?exp=0&id=RUN-3", "/api/compare?exp=0&ids=RUN-1,RUN-3", "/favicon.ico"]
    bad = bad_targets(a)[:20]
    errors, count, stop = [], [0], time.time() + a.seconds

    def client(k):
        rnd = random.Random(k)
        while time.time() < stop:
            t = rnd.choice(good + bad)
            try:
                st, h, body = s.raw(t, timeout=15)
                ok = (st in (200, 204)) if t in good else (400 <= st < 500)
                if t in good and st == 200:
                    json.loads(body)
                if not ok:
                    errors.append(f"{t} -> {st} {body[:100]!r}")
            except Exception as ex:
                errors.append(f"{t}: {type(ex).__name__}: {ex}")
            count[0] += 1
    th = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    [t.start() for t in th]
    [t.join(a.seconds + 30) for t in th]
    check(not any(t.is_alive() for t in th), "a client thread hung")
    check(not errors, f"{len(errors)} of {count[0]} concurrent requests failed, e.g. {errors[:3]}")
    print(f"   {count[0]} requests from 8 clients in {a.seconds}s", flush=True)
    s.api("/api/experiments")

@section
def live(s, a):
    found = [(e, r["id"]) for e in range(len(a.files)) for r in s.api("/api/runs", exp=e)["rows"] if r["live"]]
    if not check(len(found) == 1, f"expected one live run (the live writer), /api/runs shows {found}"):
        return
    e, rid = found[0]

    def count():
        got = s.api("/api/run", exp=e, id=rid)
        check(got["live"] is True and got["info"]["status"] == "running", f"/api/run {rid}: live {got['live']} status {got['info']['status']}")
        return {d["path"]: d["count"] for d in got["series"]}.get("live/loss", 0)
    c1, t1 = count(), s.api("/api/timeline", exp=e, id=rid)["entries"]
    time.sleep(1.5)
    c2, t2 = count(), s.api("/api/timeline", exp=e, id=rid)["entries"]
    check(c2 > c1, f"/api/run?exp={e}&id={rid}: live/loss count {c1} -> {c2} in 1.5 s (one point every 0.3 s)")
    check(len(t2) > len(t1) > 0, f"/api/timeline?exp={e}&id={rid}: {len(t1)} -> {len(t2)} entries in 1.5 s (--map 4: 4 partitions every 0.3 s)")
    got = s.api("/api/series", exp=e, id=rid, path="live/loss")
    check(got["count"] >= c2 and len(got["points"]) == got["count"], f"/api/series live/loss: count {got['count']}, {len(got['points'])} points")

def main():
    p = argparse.ArgumentParser()
    [p.add_argument(o, required=True) for o in ("--url", "--rankflow")]
    p.add_argument("--seconds", type=float, default=4)  # of 8 concurrent clients
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    s = Server(a.url)
    for fn in (experiments, runs, sweeps, run_details, series, timeline, compare, files_and_cut_downloads, bad_input, concurrent_clients, live):
        fn(s, a)
    try:
        s.api("/api/experiments")
    except Exception as e:
        fail(f"the server no longer answers: {e}")
    print(f"ui_api_test: {len(FAILS)} failure(s)")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
