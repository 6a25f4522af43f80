"""The dashboard in a real browser against a real cluster (issue 15).

Debian's chromium, driven headless by Playwright, loads the page the
controller serves at `/`, signs in with the token, watches the Mandelbrot of
the demo run through the API: the engine table updates, the tasks appear and
finish, the rendered image shows. Then /metrics, the history query, and a
restart (after SIGKILL) on the same task store.

Run by scripts/test.d/30-dashboard.sh, which sets WASMPAR_BIN,
WASMPAR_GUESTS_DIR and WASMPAR_ARTIFACTS. Tests run in file order and share
one cluster; the last one kills and restarts it.
"""

import base64
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

BIN = os.environ.get("WASMPAR_BIN", "target/release/wasmpar")
GUESTS = Path(os.environ.get("WASMPAR_GUESTS_DIR", "target/guests/wasm32-wasip2/release"))
ARTIFACTS = Path(os.environ.get("WASMPAR_ARTIFACTS", "target/artifacts"))
CHROMIUM = os.environ.get("WASMPAR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ENGINES = 2
# For editing the page without rebuilding the binary: serve its files from
# this directory (host/src/api/dashboard) instead. The suite never sets it.
DEV_ASSETS = os.environ.get("WASMPAR_DASHBOARD_ASSETS")
RENDER = (300, 200, 80)  # width, height, max-iters: the tutorial's grid


class Cluster:
    """A `wasmpar start` process on a free loopback port, its store in a temp dir."""

    def __init__(self, work: Path):
        self.work = work
        self.connection = work / "cluster.json"
        self.db = work / "tasks.sqlite"
        self.proc = None
        self.url = self.token = None

    def start(self):
        help_text = subprocess.run([BIN, "start", "--help"], capture_output=True, text=True, check=True).stdout
        if "--db" not in help_text:
            pytest.fail("`wasmpar start` has no --db flag: the task store (host/src/store) is not wired in yet")
        if self.connection.exists():
            self.connection.unlink()
        log = open(self.work / "server.log", "ab")
        self.proc = subprocess.Popen(
            [BIN, "--connection-file", str(self.connection), "start", "-n", str(ENGINES),
             "--db", str(self.db), "--cache-dir", str(self.work / "cache")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not self.connection.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited ({self.proc.returncode}); see {self.work / 'server.log'}")
            if time.monotonic() > deadline:
                pytest.fail("the server did not become ready within 120 s")
            time.sleep(0.1)
        info = json.loads(self.connection.read_text())
        self.url, self.token = info["url"], info["token"]
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def kill(self):
        """SIGKILL: no shutdown, no final commit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory(prefix="wasmpar-dashboard-", dir=os.environ.get("WASMPAR_WORK")) as work:
        c = Cluster(Path(work))
        c.start()
        mandelbrot = (GUESTS / "mandelbrot.wasm").read_bytes()
        r = c.http.post("/v1/components", params={"name": "mandelbrot"}, content=mandelbrot,
                        headers={"Content-Type": "application/wasm"})
        assert r.status_code == 201, r.text
        try:
            yield c
        finally:
            c.stop()
            log = Path(work) / "server.log"
            if log.exists():
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                (ARTIFACTS / "dashboard-server.log").write_bytes(log.read_bytes())


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def new_page(browser, **options):
    page = browser.new_page(**options)
    if DEV_ASSETS:
        files = {"/": ("index.html", "text/html"), "/dashboard/app.js": ("app.js", "text/javascript"),
                 "/dashboard/app.css": ("app.css", "text/css")}

        def serve(route):
            path = "/" + route.request.url.split("/", 3)[3].split("#")[0]
            name, kind = files[path]
            route.fulfill(body=(Path(DEV_ASSETS) / name).read_text(), content_type=kind)

        for path in files:
            page.route(lambda url, path=path: url.split("#")[0].endswith(path) and url.count("/") == 2 + path.count("/"), serve)
    return page


def submit(c: Cluster, task: dict) -> str:
    r = c.http.post("/v1/tasks", json={**task, "block": False})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def wait_done(c: Cluster, task_id: str) -> dict:
    r = c.http.get(f"/v1/tasks/{task_id}", params={"wait": 60})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["status"] == "done", view
    return view


def render_task():
    w, h, it = RENDER
    return {"op": "apply", "component": "mandelbrot", "function": "render",
            "args": [w, h, it], "targets": [0]}


def map_task(n=40_000):
    xs = [-2.0 + 3.0 * (i % 200) / 200 for i in range(n)]
    ys = [-1.0 + 2.0 * (i // 200) / (n // 200) for i in range(n)]
    return {"op": "map", "component": "mandelbrot", "function": "mandel",
            "sequences": [xs, ys], "kwargs": {"max-iters": 400},
            "targets": "balanced", "chunksize": 500}


STATE = {}


def test_login_live_engines_tasks_and_image(cluster, browser):
    page = new_page(browser, viewport={"width": 1400, "height": 1100})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(cluster.url + "/")
    expect(page.locator("#login-form")).to_be_visible()

    page.fill("#token-input", "not-the-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong token")
    expect(page.locator("#app")).to_be_hidden()

    page.fill("#token-input", cluster.token)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#connection-state")).to_have_text("live", timeout=10_000)
    expect(page.locator("#engines tbody tr")).to_have_count(ENGINES)
    expect(page.locator('.component[data-component="mandelbrot"] .signature').first).to_be_visible()
    signatures = page.locator('.component[data-component="mandelbrot"] .signature').all_text_contents()
    assert "render: func(width: u32, height: u32, max-iters: u32) -> u32" in signatures, signatures

    completed_before = page.evaluate(
        "() => [...document.querySelectorAll('#engines td.completed')].reduce((a, td) => a + Number(td.textContent), 0)")

    map_id = submit(cluster, map_task())
    render_id = submit(cluster, render_task())

    # The tasks appear through the event stream and finish there.
    for task_id in (map_id, render_id):
        row = page.locator(f'#tasks li[data-task-id="{task_id}"]')
        expect(row).to_be_visible(timeout=30_000)
        expect(row).to_have_attribute("data-status", "done", timeout=120_000)
    # The engine table updates live (one snapshot a second over the stream).
    page.wait_for_function(
        "(before) => [...document.querySelectorAll('#engines td.completed')]"
        ".reduce((a, td) => a + Number(td.textContent), 0) > before",
        arg=completed_before, timeout=15_000)
    page.wait_for_function("() => Number(document.querySelector('#throughput').dataset.samples || 0) >= 2",
                           timeout=15_000)
    # The map's 40 000 calls land in the throughput chart's samples.
    page.wait_for_function("() => Number(document.querySelector('#throughput').dataset.max || 0) >= 1000",
                           timeout=15_000)

    # The render's detail: per-engine output with the PNG shown.
    page.click(f'#tasks li[data-task-id="{render_id}"]')
    expect(page.locator("#detail-status")).to_have_text("done")
    image = page.locator("#detail img.output-image").first
    expect(image).to_be_visible(timeout=10_000)
    size = image.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size == [True, RENDER[0], RENDER[1]], size
    expect(page.locator("#detail-result")).to_contain_text(str(len(base64.b64decode(
        cluster.http.get(f"/v1/tasks/{render_id}").json()["outputs"][0]["images"][0]))))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert not errors, errors
    STATE["render_id"] = render_id
    STATE["render_view"] = wait_done(cluster, render_id)
    page.close()


def test_token_in_the_url_fragment_signs_in_and_leaves_the_address_bar(cluster, browser):
    page = new_page(browser)
    page.goto(f"{cluster.url}/#token={cluster.token}")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#engines tbody tr")).to_have_count(ENGINES)
    assert "token" not in page.url, page.url
    page.close()


def test_api_routes_behind_the_token(cluster):
    bare = httpx.Client(base_url=cluster.url, timeout=10)
    for path in ("/v1/events", "/metrics", "/v1/tasks"):
        r = bare.get(path)
        assert r.status_code == 401, (path, r.status_code, r.text)
    # The page itself is public: it holds no data.
    page = bare.get("/")
    assert page.status_code == 200 and "login-form" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_metrics_in_prometheus_format(cluster):
    wait_done(cluster, submit(cluster, {"op": "apply", "component": "mandelbrot", "function": "mandel",
                                        "args": [0.0, 0.0, 50], "targets": "all"}))
    r = cluster.http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("wasmpar_tasks_submitted", "wasmpar_tasks_finished", "wasmpar_calls", "wasmpar_call_duration_seconds",
                 "wasmpar_engines", "wasmpar_queue_depth", "wasmpar_bytes_pushed", "wasmpar_bytes_pulled"):
        assert name in families, (name, sorted(families))
    value = lambda fam, suffix="", **labels: sum(
        s.value for s in families[fam].samples
        if s.name == fam + suffix and all(s.labels.get(k) == v for k, v in labels.items()))
    assert value("wasmpar_engines") == ENGINES
    assert value("wasmpar_tasks_submitted", "_total") >= 3
    assert value("wasmpar_tasks_finished", "_total", status="done") >= 3
    assert value("wasmpar_calls", "_total") >= ENGINES
    assert value("wasmpar_call_duration_seconds", "_count") >= ENGINES


def test_history_query(cluster):
    render_id = STATE.get("render_id") or pytest.fail("the browser test did not run")
    deadline = time.monotonic() + 5
    while True:  # the store commits within its batch window
        r = cluster.http.get("/v1/tasks", params={"limit": 100, "component": "mandelbrot"})
        assert r.status_code == 200, r.text
        ids = [t["id"] for t in r.json()["tasks"]]
        if render_id in ids or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert render_id in ids, ids
    r = cluster.http.get("/v1/tasks", params={"status": "finished"})
    assert r.status_code == 400, r.text
    assert "unknown task status" in r.json()["error"]["message"]


def test_restart_after_sigkill_keeps_finished_and_marks_running_lost(cluster):
    render_id = STATE.get("render_id") or pytest.fail("the browser test did not run")
    long_id = submit(cluster, {**map_task(400_000), "kwargs": {"max-iters": 5000}})
    deadline = time.monotonic() + 30
    while cluster.http.get(f"/v1/tasks/{long_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the long task never started"
        time.sleep(0.05)
    time.sleep(0.5)  # beyond the batch window: the running record is committed
    cluster.kill()
    cluster.start()
    again = cluster.http.get(f"/v1/tasks/{render_id}")
    assert again.status_code == 200, again.text
    assert again.json() == STATE["render_view"], "a finished task answers exactly as before the restart"
    lost = cluster.http.get(f"/v1/tasks/{long_id}")
    assert lost.status_code == 200, lost.text
    lost = lost.json()
    assert lost["status"] == "lost", lost
    assert lost["error"]["kind"] == "LostError", lost["error"]
