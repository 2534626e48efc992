"""The JavaScript client in headless Chromium, loaded both ways (a classic
``<script src>`` and an ES module), against report answers a real
deployment can give: slow, hung, 503, HTML error pages, records with
hostile strings and fields of the wrong type; and the demo's page drawing
hostile records as text.

A small threaded HTTP server on a loopback port plays the app: it serves
the client's files as the package ships them, test pages, an upload
endpoint that reads the body, and a report view that answers as each test
needs (``/report/<mode>``).
"""
from __future__ import annotations

import json
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import quit_chromium, start_chromium

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
CLIENT_DIR = ROOT / "pyramid_upload_progress" / "static"
DEMO = ROOT / "demo" / "upload_progress_demo"
HOSTILE = '<img src=x onerror="window.pwned=1">"\'&</td>'
UPLOAD_DELAY = 1.0  # seconds the upload endpoint holds its answer: polls meanwhile
SLOW = 1.0  # seconds a slow report takes to answer
HANG = 60.0  # seconds a hung report takes: far longer than the client's timeout

HOSTILE_RECORD = {
    "id": HOSTILE, "state": "uploading", "received": 1000, "size": 4000, "percent": 25.0,
    "rate": 1000.0, "eta": 3.0, "started": 1.0, "finished": None, "path": HOSTILE,
    "status": None, "cancelled": False,
    "files": [{"field": HOSTILE, "filename": HOSTILE, "received": 900, "done": False}],
    "stage": {"name": HOSTILE, "done": 1, "total": 3}, HOSTILE: HOSTILE,
}
WRONG_TYPES = {
    "id": 5, "state": HOSTILE, "received": "1000", "size": -1, "percent": "NaN", "rate": [],
    "eta": {}, "started": "yesterday", "finished": True, "path": 7, "status": "500",
    "cancelled": "yes", "files": "all", "stage": HOSTILE,
}


def record(mode: str, upload_id: str, polls: int) -> tuple[int, str, str]:
    """(status, content type, body) of the report in ``mode``, at its ``polls``-th poll."""
    if mode == "503":
        return 503, "text/html", "<html><body><h1>503 Service Unavailable</h1></body></html>"
    if mode == "html":
        return 200, "text/html", '<html><script>var x = {"state": "done"};</script>Sign in</html>'
    if mode == "hostile":
        return 200, "application/json", json.dumps(HOSTILE_RECORD)
    if mode == "types":
        return 200, "application/json", json.dumps(WRONG_TYPES)
    state = "done" if polls > 3 else "uploading"
    return 200, "application/json", json.dumps(
        {**HOSTILE_RECORD, "id": upload_id, "state": state, "path": "/upload",
         "received": min(4000, 1000 * polls), "percent": min(100.0, 25.0 * polls),
         "files": None, "stage": None, HOSTILE: None})


class App(BaseHTTPRequestHandler):
    polls: dict[str, int] = {}

    def log_message(self, *args):
        pass

    def answer(self, status: int, content_type: str, body: str | bytes) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        folder, _, name = url.path.strip("/").partition("/")
        if folder == "static" and (CLIENT_DIR / name).is_file():
            self.answer(200, "text/javascript", (CLIENT_DIR / name).read_bytes())
        elif folder == "demo-static" and (DEMO / "static" / name).is_file():
            kind = "text/css" if name.endswith(".css") else "text/javascript"
            self.answer(200, kind, (DEMO / "static" / name).read_bytes())
        elif folder == "page":
            self.answer(200, "text/html", PAGES[name])
        elif folder == "demo":
            self.answer(200, "text/html", demo_page(f"/report/{name}"))
        elif folder == "report":
            if name == "slow":
                time.sleep(SLOW)
            if name == "hang":
                time.sleep(HANG)
            upload_id = query.get("X-Progress-ID", [""])[0]
            if not upload_id:  # the listing
                self.answer(200, "application/json", json.dumps({"uploads": [HOSTILE_RECORD]}))
                return
            App.polls[upload_id] = App.polls.get(upload_id, 0) + 1
            self.answer(*record(name, upload_id, App.polls[upload_id]))
        else:
            self.answer(404, "text/html", "<h1>Not found</h1>")

    def do_POST(self):
        received = 0
        length = int(self.headers.get("Content-Length", 0))
        while received < length:
            received += len(self.rfile.read(min(65536, length - received)))
        time.sleep(UPLOAD_DELAY)
        self.answer(200, "application/json", json.dumps(
            {"received": received, "files": [{"name": HOSTILE, "sha256": "ab" * 32}]}))


def demo_page(progress_url: str) -> str:
    """The demo's upload page, its report view the test's."""
    def template(name):
        return string.Template((DEMO / "templates" / name).read_text())
    main = template("uploads.html").substitute(
        user="alice", csrf_token="token", logout_url="/logout", upload_url="/upload",
        progress_url=progress_url, max_upload_size=str(64 * 1024 * 1024))
    return template("page.html").substitute(
        main=main, csrf_token="token", demo_js="/demo-static/demo.js",
        demo_css="/demo-static/demo.css",
        importmap=json.dumps({"imports": {"upload-progress": "/static/upload-progress.js"}}))


PAGES = {
    "classic": """<!doctype html><title>classic</title>
<script>window.before = Object.keys(window);</script>
<script src="/static/upload-progress.global.js"></script>
<script>window.added = Object.keys(window).filter((k) => !before.includes(k) && k !== 'before');
window.client = UploadProgress;</script>""",
    "module": """<!doctype html><title>module</title>
<script type="module">
import * as client from '/static/upload-progress.js';
window.client = client;
</script>""",
}

# Uploads 256 KiB with the client of the page, polling /report/<mode>;
# answers what onProgress saw and how the upload ended.
UPLOAD = """
const [mode, callback] = arguments;
const seen = [];
const sending = window.client.upload('/upload', new Blob([new Uint8Array(256 * 1024)]), {
  progressUrl: '/report/' + mode, interval: 100, timeout: 2000,
  onProgress: (up, transfer) => seen.push({state: up.state, received: up.received,
    percent: up.percent, path: up.path, stage: up.stage, files: up.files,
    sent: transfer.sent, total: transfer.total}),
});
const started = performance.now();
sending.done.then(
  (response) => callback({status: response.status, seen, final: response.upload,
    ms: performance.now() - started}),
  (error) => callback({error: error.name + ': ' + error.message, seen}));
"""


@pytest.fixture(scope="module")
def app():
    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(app):
    session, profile = start_chromium()
    session.set_script_timeout(30)
    try:
        yield session
    finally:
        quit_chromium(session, profile)


def load(browser, url):
    browser.get(url)
    deadline = time.monotonic() + 10
    while not browser.execute_script("return Boolean(window.client)"):
        assert time.monotonic() < deadline, "the client did not load"
        time.sleep(0.05)
    browser.get_log("browser")  # forget what loading said


def script_errors(browser):
    """Uncaught exceptions and unhandled rejections in the page."""
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and entry.get("source") == "javascript"]


@pytest.mark.parametrize("page", ["classic", "module"])
def test_the_client_loads_both_ways_and_uploads(browser, app, page):
    load(browser, f"{app}/page/{page}")
    if page == "classic":
        assert browser.execute_script("return window.added") == ["UploadProgress"]
    answer = browser.execute_async_script(UPLOAD, "normal")
    assert answer["status"] == 200, answer
    assert answer["final"]["state"] == "done"
    received = [s["received"] for s in answer["seen"] if s["state"] == "uploading"]
    assert received and received == sorted(received), answer["seen"]
    assert answer["seen"][-1]["sent"] == 256 * 1024
    assert script_errors(browser) == []


@pytest.mark.parametrize("mode", ["503", "html", "slow", "hang", "types", "hostile"])
def test_hostile_report_answers_never_break_the_upload(browser, app, mode):
    load(browser, f"{app}/page/module")
    answer = browser.execute_async_script(UPLOAD, mode)
    assert answer.get("status") == 200, answer
    assert answer["ms"] < HANG * 1000  # a hung poll is given up, not waited for
    for seen in answer["seen"]:
        assert seen["state"] in ("starting", "uploading", "done", "error")
        assert isinstance(seen["received"], int) and seen["received"] >= 0
        assert seen["percent"] is None or 0 <= seen["percent"] <= 100
    servers = [s for s in answer["seen"] if s["received"] or s["path"]]
    if mode in ("503", "html", "hang", "types"):
        assert servers == [], servers  # nothing but the browser's own count was shown
    if mode == "slow":
        assert servers, "a slow report is waited for"
    if mode == "hostile":
        assert servers[-1]["path"] == HOSTILE
        assert servers[-1]["stage"]["name"] == HOSTILE
        assert servers[-1]["files"][0]["filename"] == HOSTILE
    assert script_errors(browser) == []
    assert browser.execute_script("return window.pwned") is None


def test_the_demo_draws_a_hostile_record_as_text(browser, app, tmp_path):
    path = tmp_path / "upload.bin"
    path.write_bytes(bytes(256 * 1024))
    browser.get(f"{app}/demo/hostile")
    browser.find_element("id", "files").send_keys(str(path))
    browser.find_element("css selector", "#upload-form button").click()
    look = """
    const item = document.querySelector('#uploads > li');
    const row = document.querySelector('#my-uploads tr');
    return {outcome: item && item.dataset.outcome, stage: item && item.querySelector('.stage').textContent,
      result: item && item.querySelector('.result').textContent,
      cells: row ? [...row.cells].map((cell) => cell.textContent) : [],
      images: document.querySelectorAll('img').length, pwned: window.pwned ?? null};
    """
    deadline = time.monotonic() + 20
    seen_stage = set()
    while True:
        page = browser.execute_script(look)
        seen_stage.add(page["stage"])
        if page["outcome"]:
            break
        assert time.monotonic() < deadline, page
        time.sleep(0.05)
    assert f"The server has the whole upload and is now at: {HOSTILE} 1 of 3…" in seen_stage
    assert HOSTILE in page["result"]
    assert page["cells"][:3] == [HOSTILE[:8], HOSTILE, "uploading"]
    assert page["images"] == 0 and page["pwned"] is None
    assert script_errors(browser) == []
