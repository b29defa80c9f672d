#!/usr/bin/python3
"""How long `rankflow ui` takes in a real browser (headless Chromium), from a
fresh server: the runs table's first rows, and one run's view with its charts
drawn. Usage: ui_browser_timing.py RANKFLOW EXPERIMENT.h5 VIEW [REPEATS]
where VIEW is a page hash such as '#/runs' or '#/run/0/RUN-1'. Prints one
line per repeat: the view's own time (its start to its last chart drawn), the
time from the browser's request of the page to then (performance.now()), and
the wall time seen here (selenium's own overhead included)."""
import re, subprocess, sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

tool, exp, view = sys.argv[1:4]
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1000"):
    opts.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    for _ in range(repeats):
        server = subprocess.Popen([tool, "ui", exp, "--port", "0"], stdout=subprocess.PIPE, text=True)
        url = re.search(r"http://\S+", server.stdout.readline()).group(0)
        try:
            t0 = time.monotonic()
            d.get(url + view)
            while d.execute_script("return document.body.dataset.ready") != "1":
                time.sleep(0.005)
            wall = time.monotonic() - t0
            page = d.execute_script("return document.body.dataset.readyMs")
            since_nav = d.execute_script("return document.body.dataset.readyAtMs")
            err = d.execute_script("return document.getElementById('error').textContent")
            print(f"{view}: view {page} ms, from the page's request {since_nav} ms, wall {wall * 1e3:.0f} ms"
                  f"{' ERROR ' + err if err else ''}")
        finally:
            server.terminate()
            server.wait()
finally:
    d.quit()
