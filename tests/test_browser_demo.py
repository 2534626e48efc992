"""The demo in a real browser: the bars move while the files go up.

Headless Chromium loads the demo, served by gunicorn (gthread) behind a
proxy that slows uploads down to ``RATE``; and, as a newcomer runs it,
served directly with development.ini's ``demo.read_rate``, no throttling
anywhere else. chromedriver waits for every
navigation, so the uploads are XHRs started by the page (as the shipped
client does them: one multipart form of the chosen files) and the test
reads the page while they run.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.browser import quit_chromium, start_chromium
from tests.e2e.client import get_json
from tests.e2e.proxy import ThrottlingProxy
from tests.e2e.servers import serve

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
RATE = 1 * MiB
SIZE = 5 * MiB
FILE_SIZE = 3 * MiB // 2  # of each file of a form of several
POLL = 0.05  # seconds between two looks at the page
PROCESSING_DELAY = 0.3  # seconds per processing step per file, after the body
UPLOAD_ITEM = """
const item = document.querySelector('#uploads > li');
return item && {id: item.dataset.uploadId, state: item.dataset.state,
  percent: item.dataset.percent, outcome: item.dataset.outcome,
  buffering: item.dataset.buffering, ending: item.dataset.ending,
  browserPercent: item.dataset.browserPercent,
  stage: item.dataset.stage, stageText: item.querySelector('.stage').textContent,
  files: [...item.querySelectorAll('.file')].map((row) => ({
    name: row.querySelector('.file-name').textContent,
    percent: Number(row.dataset.percent), done: row.dataset.done === 'true'})),
  result: item.querySelector('.result').textContent};
"""
LISTED = """
const row = document.querySelector(`#my-uploads tr[data-upload-id="${arguments[0]}"]`);
return row && {state: row.dataset.state, received: Number(row.dataset.received)};
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = {"demo.upload_dir": str(tmp_path_factory.mktemp("uploads")),
                "demo.processing_delay": str(PROCESSING_DELAY),
                "demo.read_rate": "off"}  # the proxy sets the pace
    with serve("gunicorn", "tests.demo_app:wsgi_app()",
               env={"UPLOAD_DEMO_SETTINGS": json.dumps(settings)}) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(server):
    with ThrottlingProxy(server.port, rate=RATE) as running:
        yield running


@pytest.fixture(scope="module")
def browser(proxy):
    session, profile = start_chromium()
    try:
        session.get(proxy.url + "/")
        session.find_element("name", "name").send_keys("alice")
        session.find_element("name", "password").send_keys("alice")
        session.find_element("css selector", "#signin button").click()
        assert session.find_element("id", "user").text == "alice"
        yield session
    finally:
        quit_chromium(session, profile)


@pytest.fixture
def upload_file(tmp_path):
    return make_file(tmp_path, "holiday-video.bin", SIZE)


def make_file(directory, name, size):
    path = directory / name
    path.write_bytes(bytes(range(256)) * (size // 256))
    return path


def start_upload(browser, *paths):
    """Choose the files and press Upload; return the new upload's id."""
    previous = browser.execute_script(UPLOAD_ITEM)
    browser.find_element("id", "files").send_keys("\n".join(map(str, paths)))
    browser.find_element("css selector", "#upload-form button").click()
    item = wait_for(browser, UPLOAD_ITEM, lambda i: i and i != previous and i["id"])
    return item["id"]


def wait_for(browser, script, condition, *args, timeout=15.0):
    """Run ``script`` in the page until ``condition`` holds of its answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = browser.execute_script(script, *args)
        if condition(answer):
            return answer
        assert time.monotonic() < deadline, f"gave up after {timeout} s: {answer}"
        time.sleep(POLL)


def percents_until(browser, condition, seen, timeout=15.0):
    """Record the bar's percent while it uploads, until ``condition``."""
    def look(item):
        if item["state"] == "uploading" and item["percent"] is not None:
            seen.append(float(item["percent"]))
        return condition(item)
    return wait_for(browser, UPLOAD_ITEM, look, timeout=timeout)


def server_record(browser, server, upload_id):
    """The upload as the report view tells its owner (alice's cookie)."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    status, _, record = get_json(server.port, f"/upload-progress?X-Progress-ID={upload_id}",
                                 {"Cookie": cookie})
    assert status == 200
    return record


def test_the_bar_moves_and_a_second_window_lists_the_upload(
        browser, server, upload_file, tmp_path_factory):
    upload_id = start_upload(browser, upload_file)
    first_window = browser.current_window_handle
    seen = []
    percents_until(browser, lambda i: float(i["percent"] or 0) >= 20, seen)
    wait_for(browser, LISTED, lambda row: row and row["state"] == "uploading", upload_id)
    screenshot = tmp_path_factory.mktemp("screenshots") / "mid-upload.png"
    browser.save_screenshot(str(screenshot))
    print(f"\nmid-upload screenshot: {screenshot} (bar at {seen[-1]} %)")

    page = browser.current_url
    browser.switch_to.new_window("window")
    browser.get(page)
    received = set()
    wait_for(browser, LISTED,
             lambda row: row and (row["state"] != "uploading" or received.add(row["received"])
                                  or len(received) >= 2), upload_id)
    browser.close()
    browser.switch_to.window(first_window)

    final = percents_until(browser, lambda i: i["outcome"] is not None, seen)
    intermediate = [p for p in seen if 0 < p < 100]
    assert len(set(intermediate)) >= 3, seen
    assert intermediate == sorted(intermediate)
    assert len(received) >= 2, "the second window saw the upload move"
    assert final["outcome"] == "stored", final
    assert f"({SIZE} bytes" in final["result"]
    assert final["buffering"] == "false"
    record = server_record(browser, server, upload_id)
    assert (record["state"], record["status"]) == ("done", 200)
    assert record["received"] == record["size"] > SIZE  # the form around the file
    assert [(f["filename"], f["received"], f["done"]) for f in record["files"]] == [
        ("holiday-video.bin", SIZE, True)]


def test_a_form_of_several_files_draws_a_bar_per_file_one_after_the_other(
        browser, server, tmp_path, tmp_path_factory):
    names = ["beach.jpg", "<img src=x onerror=alert(1)> dune.jpg", "harbour.jpg"]
    paths = [make_file(tmp_path, name, FILE_SIZE) for name in names]
    upload_id = start_upload(browser, *paths)
    looks = []
    screenshot = tmp_path_factory.mktemp("screenshots") / "mid-upload-multi.png"

    def look(item):
        if item["state"] == "uploading" and len(item["files"]) == 3:
            looks.append([f["percent"] for f in item["files"]])
            first, second, third = looks[-1]
            if first == 100 and 20 <= second < 100 and not screenshot.exists():
                browser.save_screenshot(str(screenshot))
                print(f"\nmid-upload screenshot of a 3-file form: {screenshot} "
                      f"(total bar at {item['percent']} %, files at {looks[-1]} %)")
        return item["outcome"] is not None

    final = wait_for(browser, UPLOAD_ITEM, look)
    assert [f["name"] for f in final["files"]] == names  # as text, never as HTML
    assert final["outcome"] == "stored", final
    assert all(f["done"] and f["percent"] == 100 for f in final["files"]), final
    assert any(0 < first < 100 and second == third == 0 for first, second, third in looks), looks
    growing = [first for first, second, _ in looks if 0 < first < 100]
    assert len(set(growing)) >= 2 and growing == sorted(growing), looks
    for first, second, third in looks:
        assert second == 0 or first == 100, looks  # the second starts once the first is done
        assert third == 0 or second == 100, looks
    assert screenshot.exists(), looks
    record = server_record(browser, server, upload_id)
    assert [(f["filename"], f["received"], f["done"]) for f in record["files"]] == [
        (name, FILE_SIZE, True) for name in names]


def test_the_page_says_what_the_server_does_once_the_body_is_in(browser, server, tmp_path):
    paths = [make_file(tmp_path, f"scan-{n}.bin", 64 * 1024) for n in (1, 2)]
    upload_id = start_upload(browser, *paths)
    stages = set()

    def look(item):
        if item["stage"]:
            assert item["state"] == "uploading", item
            assert float(item["percent"]) == 100, item
            stages.add(item["stageText"])
        return item["outcome"] is not None

    final = wait_for(browser, UPLOAD_ITEM, look)
    assert final["outcome"] == "stored", final
    assert final["stageText"] == ""  # the stage is shown while it is going on only
    assert "The server has the whole upload and is now at: checksum…" in stages, stages
    assert stages & {f"The server has the whole upload and is now at: storing {n} of 2…"
                     for n in (0, 1, 2)}, stages
    record = server_record(browser, server, upload_id)
    assert (record["state"], record["stage"]) == ("done", {"name": "storing", "done": 2, "total": 2})


def test_cancel_stops_the_upload(browser, server, upload_file):
    upload_id = start_upload(browser, upload_file)
    percents_until(browser, lambda i: float(i["percent"] or 0) >= 10, [])
    browser.find_element("css selector", "#uploads > li .cancel").click()
    final = wait_for(browser, UPLOAD_ITEM, lambda i: i["outcome"] is not None)
    assert final["outcome"] == "cancelled", final
    assert final["ending"] in ("aborted", "409"), final  # the client stopped, or got the 409
    assert final["result"] == "Cancelled: the server stopped it too.", final
    wait_for(browser, LISTED, lambda row: row["state"] == "error", upload_id)
    record = server_record(browser, server, upload_id)
    assert (record["state"], record["cancelled"], record["status"]) == ("error", True, 409)
    assert record["received"] < SIZE


NGINX_STYLE_CLIENT = """
// Front-end code as written for nginx's upload progress module: the id in
// the upload's query string, polls with the X-Progress-ID header, a bar
// drawn from state, received and size.
var size = arguments[0], id = 'nginx' + Date.now();
var bar = document.createElement('progress');
bar.max = 1;
document.body.appendChild(bar);
window.nginxBar = {values: [], state: null};
var form = new FormData();
form.append('files', new Blob([new Uint8Array(size)]), 'nginx.bin');
var upload = new XMLHttpRequest();
upload.open('POST', '/upload?X-Progress-ID=' + id);
upload.setRequestHeader('X-CSRF-Token',
  document.querySelector('meta[name=csrf-token]').getAttribute('content'));
upload.send(form);
var timer = setInterval(function () {
  var poll = new XMLHttpRequest();
  poll.open('GET', '/upload-progress', true);
  poll.setRequestHeader('X-Progress-ID', id);
  poll.onreadystatechange = function () {
    if (poll.readyState != 4 || poll.status != 200) return;
    var progress = JSON.parse(poll.responseText);
    window.nginxBar.state = progress.state;
    if (progress.state == 'uploading') {
      bar.value = progress.received / progress.size;
      window.nginxBar.values.push(bar.value);
    } else if (progress.state == 'done' || progress.state == 'error') {
      clearInterval(timer);
    }
  };
  poll.send(null);
}, 250);
"""


def test_front_end_code_written_for_nginx_drives_a_bar(browser):
    browser.execute_script(NGINX_STYLE_CLIENT, 2 * MiB)
    bar = wait_for(browser, "return window.nginxBar",
                   lambda b: b["state"] in ("done", "error"))
    intermediate = [v for v in bar["values"] if 0 < v < 1]
    assert bar["state"] == "done"
    assert len(set(intermediate)) >= 3, bar
    assert intermediate == sorted(intermediate)


def test_a_buffering_proxy_shows_the_warning(browser, server, tmp_path, tmp_path_factory):
    upload_file = tmp_path / "buffered.bin"
    upload_file.write_bytes(bytes(2 * MiB))
    with ThrottlingProxy(server.port, rate=RATE, mode="buffering") as buffering:
        browser.get_log("browser")  # forget earlier messages
        browser.get(buffering.url + "/")
        start_upload(browser, upload_file)
        item = wait_for(browser, UPLOAD_ITEM, lambda i: i["buffering"] == "true")
        assert item["state"] in ("starting", "uploading")
        warning = browser.find_element("css selector", "#uploads > li .warning")
        assert warning.is_displayed()
        assert "has not seen the body yet: a proxy or the server is buffering it" in warning.text
        assert "nginx" not in warning.text
        # While the server has seen nothing, the bar follows the browser's count.
        assert float(item["browserPercent"]) >= 50, item
        screenshot = tmp_path_factory.mktemp("screenshots") / "buffering.png"
        browser.save_screenshot(str(screenshot))
        print(f"\nbuffering screenshot: {screenshot} (browser sent {item['browserPercent']} %)")
        # The proxy passes the body on only once it has all of it: on two
        # busy cores that may take a while.
        final = wait_for(browser, UPLOAD_ITEM, lambda i: i["outcome"] is not None,
                         timeout=45.0)
    assert final["outcome"] == "stored", final
    warnings = [entry["message"] for entry in browser.get_log("browser")
                if "a proxy or the server is buffering it" in entry["message"]]
    assert len(warnings) == 1, warnings
    assert "nginx" not in warnings[0]


def test_as_development_ini_serves_it_the_bar_moves_on_localhost_without_throttling(
        browser, proxy, tmp_path, tmp_path_factory):
    """No proxy, no throttling in the browser: only the demo's own
    ``demo.read_rate = 2MiB`` of development.ini."""
    upload_file = make_file(tmp_path, "holiday-video.bin", SIZE)
    settings = {"demo.upload_dir": str(tmp_path_factory.mktemp("uploads"))}
    with serve("gunicorn", "tests.demo_app:wsgi_app()",
               env={"UPLOAD_DEMO_SETTINGS": json.dumps(settings)}) as direct:
        try:
            browser.get(direct.url + "/")  # the session cookie is the proxy's: same host
            assert browser.find_element("id", "user").text == "alice"
            start_upload(browser, upload_file)
            seen = []
            percents_until(browser, lambda i: float(i["percent"] or 0) >= 40, seen)
            screenshot = tmp_path_factory.mktemp("screenshots") / "localhost-mid-upload.png"
            browser.save_screenshot(str(screenshot))
            print(f"\nmid-upload screenshot, no throttling: {screenshot} (bar at {seen[-1]} %)")
            final = percents_until(browser, lambda i: i["outcome"] is not None, seen)
        finally:
            browser.get(proxy.url + "/")
    intermediate = [p for p in seen if 0 < p < 100]
    assert len(set(intermediate)) >= 5, seen
    assert intermediate == sorted(intermediate)
    assert final["outcome"] == "stored", final


def test_throttling_as_the_docs_say_moves_the_bar_of_an_app_that_reads_at_full_speed(
        browser, proxy, tmp_path, tmp_path_factory):
    """The quick start's advice for your own app: the developer tools'
    network throttling (the same setting through the DevTools protocol)
    slows the upload itself; the demo reads at full speed here."""
    upload_file = make_file(tmp_path, "throttled.bin", 3 * MiB)
    settings = {"demo.upload_dir": str(tmp_path_factory.mktemp("uploads")),
                "demo.read_rate": "off"}
    with serve("gunicorn", "tests.demo_app:wsgi_app()",
               env={"UPLOAD_DEMO_SETTINGS": json.dumps(settings)}) as direct:
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1,
            "uploadThroughput": RATE})
        try:
            browser.get(direct.url + "/")
            start_upload(browser, upload_file)
            seen = []
            final = percents_until(browser, lambda i: i["outcome"] is not None, seen)
        finally:
            browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
                "offline": False, "latency": 0, "downloadThroughput": -1,
                "uploadThroughput": -1})
            browser.get(proxy.url + "/")
    intermediate = [p for p in seen if 0 < p < 100]
    assert len(set(intermediate)) >= 3, seen
    assert intermediate == sorted(intermediate)
    assert final["outcome"] == "stored", final
