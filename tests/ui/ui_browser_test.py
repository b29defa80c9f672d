#!/usr/bin/python3
"""The page of `rankflow ui` and the file of `rankflow report`, in headless Chromium.

    ui_browser_test.py --url http://127.0.0.1:PORT/ --artifacts DIR
                       --report report.html --report-runs RUN-1,RUN-2 --latest-report latest.html

Every view is checked against the JSON API (the API itself is checked by ui_api_test.py),
screenshotted into DIR, and watched: no SEVERE console entry, no request to any other
host. Experiment 0 is the one the reports were made from. Exit 1 on any failure."""
import argparse, base64, json, os, re, sys, time, urllib.parse, urllib.request
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

FAILS = []
NUMERIC = ("FloatSeries", "IntSeries")

def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, flush=True)

def check(cond, msg):
    if not cond:
        fail(msg)
    return bool(cond)

class Page:
    def __init__(self, a):
        self.a, self.base = a, a.url.rstrip("/") + "/"
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for o in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                  "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-default-apps"):
            opts.add_argument(o)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        self.d.set_page_load_timeout(30)
        self.urls, self.shots = [], 0

    def api(self, route, /, **params):
        q = urllib.parse.urlencode(params, safe=",/")
        with urllib.request.urlopen(self.base + route.lstrip("/") + ("?" + q if q else ""), timeout=20) as r:
            return json.load(r)

    def drain(self, phase, allow=()):
        """Console errors and requests since the last call; `allow`: substrings of expected errors."""
        for e in self.d.get_log("browser"):
            if e["level"] == "SEVERE" and not any(s in e["message"] for s in allow):
                fail(f"{phase}: console error: {e['message'][:300]}")
        for e in self.d.get_log("performance"):
            m = json.loads(e["message"])["message"]
            if m["method"] == "Network.requestWillBeSent":
                self.urls.append(m["params"]["request"]["url"])

    def outside(self, prefix):
        bad = [u for u in self.urls if not (u.startswith(prefix) or u.startswith(("data:", "blob:")))]
        self.urls = []
        return bad

    def shot(self, name):
        """The whole page (up to 8000 px high), not only the window."""
        path = os.path.join(self.a.artifacts, name + ".png")
        try:
            m = self.d.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": m["width"], "height": min(m["height"], 8000), "scale": 1}
            png = self.d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
            with open(path, "wb") as f:
                f.write(base64.b64decode(png["data"]))
        except Exception:
            self.d.save_screenshot(path)

    def js(self, code, *args):
        return self.d.execute_script(code, *args)

    def wait(self, cond, what, timeout=10):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(lambda d: cond())
        except TimeoutException:
            fail(f"timed out ({timeout}s) waiting for {what}")
            return None

    def state(self):
        return self.js("return document.body.dataset.ready + '/' + document.body.dataset.view")

    def ready(self, view, what):
        r = self.wait(lambda: self.state() == "1/" + view, f"{what}: body data-ready=1 and data-view={view}")
        if r is None:
            fail(f"{what}: data-ready/data-view stay {self.state()}")
        return r

    def open(self, url, view, what):
        self.d.get(url)
        return self.ready(view, what)

    def go(self, hash_, view):
        """Navigates by location.hash; ready is set to 'x' first, so a stale '1' is never taken."""
        if self.js("return location.hash") == hash_:
            self.js("location.hash = '#/'")
        self.js("document.body.dataset.ready = 'x'; location.hash = arguments[0];", hash_)
        return self.ready(view, hash_)

    def all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def attrs(self, css, *names):
        return self.js("return [...document.querySelectorAll(arguments[0])].map(e => arguments[1].map(n => e.getAttribute(n)))", css, list(names))

    def row_ids(self):
        return [r[0] for r in self.attrs("#runs-table tbody tr.run-row", "data-run-id")]

    def wait_rows(self, want, what):
        if self.wait(lambda: self.row_ids() == want, f"{what}: rows {want}", 10) is None:
            fail(f"{what}: the table shows {self.row_ids()}, the API {want}")

    def apply(self, filt="", sort="", cols=""):
        for sel, v in (("#filter", filt), ("#sort", sort), ("#cols", cols)):
            el = self.d.find_element(By.CSS_SELECTOR, sel)
            el.clear()
            if v:
                el.send_keys(v)
        self.d.find_element(By.CSS_SELECTOR, "#apply").click()

def check_runs_table(p, e, what):
    api = p.api("/api/runs", exp=e)
    p.wait_rows([r["id"] for r in api["rows"]], what)
    cells = p.js("return [...document.querySelectorAll('#runs-table tbody tr.run-row')].map(r => [r.dataset.runId, r.className,"
                 " (r.querySelector('td.status') || {}).className || ''])")
    for (rid, cls, scls), r in zip(cells, api["rows"]):
        check(f"status-{r['status']}" in scls.split(), f"{what}: {rid} status cell class {scls!r}, status {r['status']}")
        check(("live" in cls.split()) == r["live"], f"{what}: {rid} row class {cls!r} but live={r['live']}")
    txt = p.d.find_element(By.CSS_SELECTOR, "#runs-count").text
    check(f"{api['matched']} of {api['total']} runs" in txt, f"{what}: #runs-count {txt!r}, API {api['matched']} of {api['total']}")
    return api

def series_requests(p, e, rid, since=0):
    """path -> the last /api/series query the page made for it in run `rid` (from p.urls[since:])."""
    out = {}
    for u in p.urls[since:]:
        s = urllib.parse.urlsplit(u)
        if s.path.endswith("/api/series"):
            q = dict(urllib.parse.parse_qsl(s.query))
            if q.get("exp", "0") == str(e) and q.get("id") == rid:
                out[q.get("path")] = q
    return out

def check_charts(p, e, rid, what, server=True):
    """Every numeric series has a chart with the API's counts; returns {path: data-points}."""
    run = p.api("/api/run", exp=e, id=rid)
    want = {s["path"]: s for s in run["series"] if s["type"] in NUMERIC}
    got = {c[0]: c for c in p.attrs("canvas.series-chart", "data-path", "data-points", "data-count", "width")}
    check(set(got) == set(want), f"{what}: charts for {sorted(got)}, numeric series {sorted(want)}")
    p.drain(what)
    asked = series_requests(p, e, rid) if server else {}
    for path in set(got) & set(want):
        _, pts, cnt, w = got[path]
        check(cnt == str(want[path]["count"]), f"{what}: {path} data-count {cnt}, the series has {want[path]['count']} points")
        q = asked.get(path)
        if q:  # the same query the page made: the same reduction
            n = len(p.api("/api/series", **q)["points"])
            check(pts == str(n), f"{what}: {path} data-points {pts}, /api/series?{urllib.parse.urlencode(q)} gives {n}")
        elif server:
            widths = {int(w or 0), int(p.js("return document.querySelector(arguments[0]).clientWidth", f'canvas.series-chart[data-path="{path}"]'))}
            ns = {len(p.api("/api/series", exp=e, id=rid, path=path, width=x)["points"]) for x in widths if x > 0}
            check(pts is not None and int(pts) in ns, f"{what}: {path} data-points {pts}, the API gives {ns} at the canvas width {widths}")
    print(f"   {what}: {len(got)} charts, {len(set(asked) & set(got))} checked against the page's own /api/series query", flush=True)
    return {k: v[1] for k, v in got.items()}, run

def check_run(p, e, rid, what, server=True):
    points, run = check_charts(p, e, rid, what, server)
    info = p.d.find_element(By.CSS_SELECTOR, "#run-info").text
    check(rid in info and run["info"]["status"] in info, f"{what}: #run-info does not show {rid} and {run['info']['status']}: {info[:200]!r}")
    if run["info"]["reason"]:
        check(run["info"]["reason"] in info, f"{what}: #run-info does not show the reason {run['info']['reason']!r}")
    ftxt = p.d.find_element(By.CSS_SELECTOR, "#fields-table").text
    missing = [f["path"] for f in run["fields"] if f["path"] not in ftxt]
    check(not missing, f"{what}: #fields-table lacks {missing[:5]}")
    atxt = p.d.find_element(By.CSS_SELECTOR, "#arrays-table").text
    check(all(x["path"] in atxt for x in run["arrays"]), f"{what}: #arrays-table {atxt[:100]!r} lacks {run['arrays']}")
    if server:
        links = p.attrs("#files-list a.download", "href")
        check(len(links) == len(run["files"]), f"{what}: {len(links)} download links, {len(run['files'])} files")
    else:  # a report cannot serve the bytes; it lists the files
        ltxt = p.d.find_element(By.CSS_SELECTOR, "#files-list").text
        check(all(f["filename"] in ltxt for f in run["files"]), f"{what}: #files-list {ltxt[:100]!r} lacks {run['files']}")
    tl = p.api("/api/timeline", exp=e, id=rid)
    lanes, bars = (p.attrs("canvas#timeline", "data-lanes", "data-bars") or [[None, None]])[0]
    if tl["entries"] or lanes is not None:  # a run without partitions may have no timeline
        check(lanes == str(run["info"]["ranks"]), f"{what}: timeline data-lanes {lanes}, the run had {run['info']['ranks']} ranks")
        check(bars == str(len(tl["entries"])), f"{what}: timeline data-bars {bars}, {len(tl['entries'])} partitions")
    for sel, k in (("#slowest li", "slowest"), ("#failures li", "failures")):
        n = len(p.all(sel))
        check(n == len(tl[k]) or (not tl[k] and n <= 1), f"{what}: {n} '{sel}', the API lists {len(tl[k])}")
    return points, run

def runs_view(p, a):
    p.open(p.base + "#/runs", "runs", "first load")
    api = check_runs_table(p, 0, "runs view")
    p.shot("runs")
    exps = p.api("/api/experiments")["experiments"]
    check(len(Select(p.d.find_element(By.CSS_SELECTOR, "#exp-select")).options) == len(exps), "#exp-select: one option per experiment")
    for where in ("status=failed", "params/seed<10", "name~live or ranks>2"):
        p.apply(filt=where)
        want = p.api("/api/runs", exp=0, where=where)
        p.wait_rows([r["id"] for r in want["rows"]], f"filter {where!r}")
        check(f"{want['matched']} of {want['total']} runs" in p.d.find_element(By.CSS_SELECTOR, "#runs-count").text, f"filter {where!r}: #runs-count")
        check(want["matched"] < api["total"], f"filter {where!r} matches every run: a weak test")
    p.shot("runs-filtered")
    p.apply(filt="params/lr<")
    p.wait(lambda: "expected a value" in p.d.find_element(By.CSS_SELECTOR, "#error").text, "#error with the parser's message for 'params/lr<'")
    p.drain("bad filter", allow=("400",))
    p.shot("runs-error")
    p.apply(sort="-params/seed", cols="id,status,params/seed")
    want = p.api("/api/runs", exp=0, sort="-params/seed", cols="id,status,params/seed")
    p.wait_rows([r["id"] for r in want["rows"]], "sort -params/seed")
    check(p.d.find_element(By.CSS_SELECTOR, "#error").text.strip() == "", "#error still shown after a good query")
    head = p.js("return document.querySelector('#runs-table thead') ? document.querySelector('#runs-table thead').innerText : ''")
    check("params/seed" in head, f"cols: the header {head!r} lacks params/seed")
    p.apply()
    p.wait_rows([r["id"] for r in api["rows"]], "cleared filter")
    first = api["rows"][0]["id"]
    p.js("document.body.dataset.ready = 'x'")
    p.d.find_element(By.CSS_SELECTOR, f'tr.run-row[data-run-id="{first}"] a.run-link').click()
    p.ready("run", "a click on a.run-link")
    check(p.js("return location.hash") == f"#/run/0/{first}", f"a.run-link of {first} opened {p.js('return location.hash')!r}")
    p.go("#/runs", "runs")
    p.wait_rows([r["id"] for r in api["rows"]], "back to the runs")
    p.d.find_element(By.CSS_SELECTOR, "#group-sweep").click()
    sw = [s["sweep"] for s in p.api("/api/sweeps", exp=0)["sweeps"]]
    if p.wait(lambda: p.all("tr.group-row"), "group rows after #group-sweep"):
        txt = " ".join(g.text for g in p.all("tr.group-row"))
        check(all(s in txt for s in sw), f"group rows {txt!r} lack sweeps {sw}")
        check(sorted(p.row_ids()) == sorted(r["id"] for r in api["rows"]), "grouped: not every run is listed")
    p.shot("runs-grouped")
    p.d.find_element(By.CSS_SELECTOR, "#group-sweep").click()
    p.wait(lambda: not p.all("tr.group-row") and p.row_ids() == [r["id"] for r in api["rows"]], "the plain table back after unchecking #group-sweep")
    p.drain("runs view")
    return api

def compare_view(p, api):
    pick = [r["id"] for r in api["rows"] if r["status"] == "succeeded"][:2]
    for rid in pick:
        p.d.find_element(By.CSS_SELECTOR, f'input.pick[data-run-id="{rid}"]').click()
    p.js("document.body.dataset.ready = 'x'")
    p.d.find_element(By.CSS_SELECTOR, "#compare-btn").click()
    p.ready("compare", "compare button")
    check(p.js("return location.hash") == f"#/compare/0/{','.join(pick)}", f"compare: location.hash {p.js('return location.hash')!r}")
    cmp = p.api("/api/compare", exp=0, ids=",".join(pick))
    has = {rid: {s["path"] for s in p.api("/api/run", exp=0, id=rid)["series"] if s["type"] in NUMERIC} for rid in pick}
    charts = {c[0]: c[1] for c in p.attrs("canvas.compare-chart", "data-path", "data-runs")}
    want = {s for s in cmp["series"] if any(s in h for h in has.values())}
    check(set(charts) == want, f"compare: charts {sorted(charts)}, API series {sorted(want)}")
    for path, n in charts.items():
        check(n == str(sum(path in h for h in has.values())), f"compare: {path} data-runs {n}")
    check(any(n == "2" for n in charts.values()), "compare: no chart overlays both runs")
    rows = p.js("return [...document.querySelectorAll('#compare-fields tr')].filter(r => r.querySelector('td'))"
                ".map(r => [r.innerText, r.classList.contains('differs')])")
    check(len(rows) == len(cmp["fields"]), f"compare: {len(rows)} field rows, the API compares {len(cmp['fields'])} fields")
    for f in cmp["fields"]:
        mine = [d for t, d in rows if t.split()[0:1] == [f["path"]] or t.startswith(f["path"] + "\t")]
        check(mine and mine[0] == f["differs"], f"compare: row of {f['path']} {'missing' if not mine else 'differs=' + str(mine[0])}, API differs={f['differs']}")
    check(any(f["differs"] and f["path"].startswith("params/") for f in cmp["fields"]), f"compare {pick}: no differing params: a weak test")
    p.shot("compare")
    p.drain("compare view")
    return pick

def run_views(p, api):
    ids = [r["id"] for r in api["rows"]]
    by_ranks = {}
    for rid in ids:
        p.go(f"#/run/0/{rid}", "run")
        pts, run = check_run(p, 0, rid, f"run view {rid}")
        by_ranks.setdefault(run["info"]["ranks"], rid)
        p.shot(f"run-{rid}")
        for href in p.attrs("#files-list a.download", "href"):
            u = urllib.parse.urljoin(p.d.current_url, href[0])
            check(u.startswith(p.base + "api/file?"), f"run {rid}: download link {u} is not the server's /api/file")
            with urllib.request.urlopen(u, timeout=20) as r:
                size = int(r.headers["Content-Length"])
            check(size in [f["size"] for f in run["files"]], f"run {rid}: {u} has {size} bytes")
        p.drain(f"run view {rid}")
    check(len(by_ranks) >= 2, f"runs of only {sorted(by_ranks)} ranks: data-lanes is weakly tested")
    rid = max(ids, key=lambda r: max([s["count"] for s in p.api("/api/run", exp=0, id=r)["series"]] or [0]))
    p.go(f"#/run/0/{rid}", "run")
    pts, _ = check_run(p, 0, rid, f"run view {rid}")
    p.d.find_element(By.CSS_SELECTOR, "#log-scale").click()
    time.sleep(0.5)
    after = {c[0]: c[1] for c in p.attrs("canvas.series-chart", "data-path", "data-points")}
    check(after == pts, f"#log-scale changed the points drawn: {pts} -> {after}")
    p.shot("run-log-scale")
    p.drain("log scale")
    since = len(p.urls)
    Select(p.d.find_element(By.CSS_SELECTOR, "#x-axis")).select_by_value("time")
    time.sleep(1.0)
    p.wait(lambda: p.attrs("canvas.series-chart", "data-points") and
           all(int(c[0] or 0) > 0 for c in p.attrs("canvas.series-chart", "data-points")), "charts drawn over time")
    p.drain("x=time")
    asked = series_requests(p, 0, rid, since)
    check(all(q.get("x") == "time" for q in asked.values()), f"#x-axis=time: the page asked {list(asked.values())[:2]}")
    p.shot("run-x-time")
    return rid, pts

def sweep_view(p):
    for e, x in enumerate(p.api("/api/experiments")["experiments"][1:], 1):
        for r in p.api("/api/runs", exp=e)["rows"]:
            if not r["live"]:
                p.go(f"#/run/{e}/{r['id']}", "run")
                check_run(p, e, r["id"], f"run view exp {e} {r['id']}")
                p.shot(f"run-exp{e}-{r['id']}")
                p.drain(f"exp {e} {r['id']}")
                break

def live_view(p):
    found = [(e, r["id"]) for e in range(len(p.api("/api/experiments")["experiments"]))
             for r in p.api("/api/runs", exp=e)["rows"] if r["live"]]
    if not check(len(found) == 1, f"expected one live run, the API shows {found}"):
        return
    e, rid = found[0]
    p.go("#/runs", "runs")
    Select(p.d.find_element(By.CSS_SELECTOR, "#exp-select")).select_by_index(e)
    check_runs_table(p, e, f"runs view of experiment {e} (live)")
    p.go(f"#/run/{e}/{rid}", "run")
    p.js("window.__not_reloaded = 42")
    sel = 'canvas.series-chart[data-path="live/loss"]'
    cur = lambda: tuple(int(x or 0) for x in (p.attrs(sel, "data-count", "data-points") or [[0, 0]])[0])
    bars = lambda: int((p.attrs("canvas#timeline", "data-bars") or [[0]])[0][0] or 0)
    b0 = bars()
    for k in range(3):
        c0, t = cur(), time.time()
        if p.wait(lambda: cur()[0] > c0[0] and cur()[1] > c0[1], f"live run {rid}: a new point in live/loss after {c0}", 3):
            print(f"   live/loss {c0} -> {cur()} in {time.time() - t:.1f}s", flush=True)
        prog = p.d.find_element(By.CSS_SELECTOR, "#progress").text
        check(re.search(r"\b\d+ of \d+ partitions\b", prog), f"live run {rid} (in a parallel_map of 4 partitions): #progress {prog!r}")
    check(bars() > b0, f"live run {rid}: the timeline did not grow in 3 refreshes (data-bars {b0} -> {bars()}; the API's timeline grows)")
    print(f"   #progress: {prog!r}", flush=True)
    check(p.js("return window.__not_reloaded") == 42, "the live run view reloaded the page")
    p.shot("live")
    p.drain("live view")

def report(p, a, server_points):
    url = "file://" + os.path.abspath(a.report)
    total = p.api("/api/runs", exp=0)["total"]
    p.open(url + "#/runs", "runs", "report runs view")
    check(len(p.row_ids()) == total, f"report: {len(p.row_ids())} runs listed, the experiment has {total}")
    p.shot("report-runs")
    rids = a.report_runs.split(",")
    for rid in rids:
        p.go(f"#/run/0/{rid}", "run")
        pts, _ = check_run(p, 0, rid, f"report run {rid}", server=False)
        for path, n in server_points.get(rid, {}).items():
            check(pts.get(path) == n, f"report run {rid}: {path} data-points {pts.get(path)}, the server's page drew {n}")
        p.shot(f"report-run-{rid}")
    p.go(f"#/compare/0/{','.join(rids)}", "compare")
    runs = [c[1] for c in p.attrs("canvas.compare-chart", "data-path", "data-runs")]
    check(runs and "2" in runs, f"report compare: data-runs {runs}")
    p.shot("report-compare")
    p.drain("report")
    last = p.api("/api/runs", exp=0)["rows"][-1]["id"]
    p.open("file://" + os.path.abspath(a.latest_report) + f"#/run/0/{last}", "run", "latest report")
    check_run(p, 0, last, f"latest report run {last}", server=False)
    p.shot("report-latest")
    p.drain("latest report")
    bad = p.outside("file://")
    check(not bad, f"the reports made requests outside the file: {bad[:5]}")

def main():
    ap = argparse.ArgumentParser()
    for o in ("--url", "--artifacts", "--report", "--report-runs", "--latest-report"):
        ap.add_argument(o, required=True)
    a = ap.parse_args()
    os.makedirs(a.artifacts, exist_ok=True)
    p = Page(a)
    try:
        steps = []
        api = runs_view(p, a)
        for name, fn in (("compare", lambda: compare_view(p, api)), ("runs", lambda: steps.append(run_views(p, api))),
                         ("sweep", lambda: sweep_view(p)), ("live", lambda: live_view(p))):
            t = time.time()
            try:
                fn()
            except Exception as ex:
                fail(f"{name}: {type(ex).__name__}: {str(ex)[:500]}")
                p.shot(f"error-{name}")
            print(f"-- {name} ({time.time() - t:.1f}s)", flush=True)
        p.drain("server session")
        bad = p.outside(p.base)
        check(not bad, f"requests to other hosts than {p.base}: {bad[:5]}")
        server_points = {}
        for rid in a.report_runs.split(","):  # what the server's page draws, for the report to match
            p.go(f"#/run/0/{rid}", "run")
            server_points[rid] = {c[0]: c[1] for c in p.attrs("canvas.series-chart", "data-path", "data-points")}
        p.drain("server session")
        p.urls = []
        report(p, a, server_points)
    except Exception as ex:
        fail(f"{type(ex).__name__}: {str(ex)[:500]}")
        p.shot("error")
    finally:
        p.d.quit()
    print(f"ui_browser_test: {len(FAILS)} failure(s); screenshots in {a.artifacts}")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
