"""The demo app's views, through WebTest; its .ini files; and its sign-in
check (``check_credentials``: the demo is code users copy)."""
import hashlib
import http.client
import io
import json
import re
import time
import urllib.parse
from pathlib import Path

import pytest
import webtest
from pyramid.exceptions import ConfigurationError

from tests.demo_app import ini, make_app
from tests.e2e.client import UploadThread, get_json
from tests.e2e.servers import serve
from upload_progress_demo.security import check_credentials
from upload_progress_demo.throttle import ThrottledInput, parse_rate

ROOT = Path(__file__).resolve().parent.parent
CLIENT_URL = "http://localhost/upload-progress/static/upload-progress.js"
MiB = 1024 * 1024


class RecordingInput:
    """A non-seekable ``wsgi.input``, as real servers give, that records the
    size of every read."""

    def __init__(self, raw):
        self.raw = raw
        self.reads = []

    def read(self, size=-1):
        self.reads.append(size)
        return self.raw.read(size)

    def readline(self, size=-1):
        return self.raw.readline(size)


class RecordReads:
    """WSGI middleware: swaps in a ``RecordingInput``; keeps the last one."""

    def __init__(self, app):
        self.app = app
        self.last = None

    def __call__(self, environ, start_response):
        self.last = environ["wsgi.input"] = RecordingInput(environ["wsgi.input"])
        environ.pop("webob.is_body_seekable", None)
        return self.app(environ, start_response)


@pytest.fixture
def recorder(tmp_path):
    return RecordReads(make_app(**{"demo.upload_dir": str(tmp_path),
                                   "demo.max_upload_size": "1000000",
                                   "demo.processing_delay": "0"}))


@pytest.fixture
def app(recorder):
    return webtest.TestApp(recorder)


def sign_in(app, name="alice", password="alice"):
    form = app.get("/").forms[0]
    form["name"], form["password"] = name, password
    return form.submit()


def csrf_token(page):
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)[1]


def post_form(app, files, *, token=None, upload_id="demo-1", status=200):
    """POST ``files`` (``(name, bytes)`` pairs) as the page does: one
    multipart form, every file in its field ``files``."""
    token = token if token is not None else csrf_token(app.get("/"))
    return app.post(f"/upload?X-Progress-ID={upload_id}",
                    upload_files=[("files", name, content) for name, content in files],
                    headers={"X-CSRF-Token": token}, status=status)


def test_anonymous_visitors_get_the_sign_in_form_with_a_csrf_token():
    page = webtest.TestApp(make_app()).get("/")
    form = page.forms[0]
    assert form.action == "http://localhost/login"
    assert form["csrf_token"].value == csrf_token(page)
    assert "alice / alice" in page.text


def test_signing_in_without_the_csrf_token_is_refused(app):
    app.post("/login", {"name": "alice", "password": "alice"}, status=400)


def test_a_wrong_password_shows_the_form_again_with_a_message(app):
    page = sign_in(app, password="wrong")
    assert "Unknown user or wrong password." in page.text
    assert 'id="signin"' in page.text


def test_a_signed_in_user_gets_the_upload_page_importing_the_shipped_client(app):
    page = sign_in(app).follow()
    assert '<strong id="user">alice</strong>' in page.text
    importmap = re.search(r'<script type="importmap">(.*?)</script>', page.text)[1]
    assert CLIENT_URL in importmap
    assert b"export const {" in app.get(CLIENT_URL).body
    assert "upload-progress.js" not in {p.name for p in (ROOT / "demo").rglob("*.js")}


def test_user_names_reach_the_page_escaped():
    app = webtest.TestApp(make_app(**{"demo.users": "<b>eve</b>:pw"}))
    page = sign_in(app, "<b>eve</b>", "pw").follow()
    assert "&lt;b&gt;eve&lt;/b&gt;" in page.text
    assert "<b>eve</b>" not in page.text


def test_a_form_of_files_is_read_in_pieces_checked_stored_and_deleted(app, recorder, tmp_path):
    sign_in(app)
    first, second = bytes(range(256)) * 1200, b"second file" * 1000  # 300 KiB, 11 kB
    answer = post_form(app, [("first.bin", first), ("second.txt", second)]).json
    assert [(f["name"], f["received"], f["sha256"]) for f in answer["files"]] == [
        ("first.bin", len(first), hashlib.sha256(first).hexdigest()),
        ("second.txt", len(second), hashlib.sha256(second).hexdigest())]
    assert answer["received"] == len(first) + len(second)
    assert {Path(f["stored_as"]).parent for f in answer["files"]} == {tmp_path}
    assert list(tmp_path.iterdir()) == []
    assert 0 < max(recorder.last.reads) <= 64 * 1024
    assert len(recorder.last.reads) >= len(first) // (64 * 1024)


def test_the_upload_lists_each_file_and_ends_at_the_last_processing_stage(app):
    sign_in(app)
    post_form(app, [("a.bin", b"a" * 3000), ("b.bin", b"b" * 2000)], upload_id="staged-1")
    record = app.get("/upload-progress?X-Progress-ID=staged-1").json
    assert record["state"] == "done"
    assert [(f["filename"], f["received"], f["done"]) for f in record["files"]] == [
        ("a.bin", 3000, True), ("b.bin", 2000, True)]
    assert record["stage"] == {"name": "storing", "done": 2, "total": 2}


def test_the_upload_ends_done_in_the_users_listing_and_nobody_elses(app):
    sign_in(app)
    post_form(app, [("x.bin", b"x" * 5000)], upload_id="listed-1")
    [mine] = app.get("/upload-progress").json["uploads"]
    assert (mine["id"], mine["state"]) == ("listed-1", "done")
    assert mine["received"] == mine["size"] > 5000
    bob = webtest.TestApp(app.app)
    sign_in(bob, "bob", "bob")
    assert bob.get("/upload-progress").json == {"uploads": []}


def test_an_upload_over_the_limit_is_refused_unread_with_a_413(app, recorder):
    sign_in(app)
    answer = post_form(app, [("big.bin", b"x" * 1000001)], upload_id="big-1", status=413).json
    assert "larger than this demo's limit of 1000000 bytes" in answer["error"]
    assert recorder.last.reads == []
    record = app.get("/upload-progress?X-Progress-ID=big-1").json
    assert (record["state"], record["status"]) == ("error", 413)


def test_a_body_that_is_not_a_form_is_refused_with_a_415(app):
    sign_in(app)
    answer = app.post("/upload", b"x" * 10, status=415, headers={
        "X-CSRF-Token": csrf_token(app.get("/")), "Content-Type": "application/octet-stream"})
    assert "multipart/form-data" in answer.json["error"]


def test_a_form_without_a_content_length_is_refused_unread_with_a_411(app, recorder):
    sign_in(app)
    request = webtest.TestRequest.blank(
        "/upload", method="POST", headers={"X-CSRF-Token": csrf_token(app.get("/"))},
        content_type="multipart/form-data; boundary=x")
    request.environ["wsgi.input"] = io.BytesIO(b"--x--\r\n")
    request.environ.pop("CONTENT_LENGTH", None)
    assert app.do_request(request, status=411).json["error"]
    assert recorder.last.reads == []


def test_uploading_without_signing_in_is_a_403_json_error(app):
    token = csrf_token(app.get("/"))
    answer = post_form(app, [("x.bin", b"x" * 10)], token=token, status=403).json
    assert answer["error"]


def test_uploading_without_the_csrf_header_is_a_400_json_error(app):
    sign_in(app)
    assert post_form(app, [("x.bin", b"x" * 10)], token="forged", status=400).json["error"]


def test_signing_out_forgets_the_user(app):
    page = sign_in(app).follow()
    page.forms[0].submit().follow()
    assert 'id="signin"' in app.get("/").text
    assert app.get("/upload-progress").json == {"uploads": []}


def test_the_demo_needs_a_secret():
    with pytest.raises(ConfigurationError, match="demo.secret"):
        make_app(**{"demo.secret": ""})


@pytest.mark.parametrize("setting", ["demo.max_upload_size", "demo.processing_delay"])
@pytest.mark.parametrize("value", ["-1", "lots"])
def test_a_bad_number_setting_stops_the_demo_naming_it(setting, value):
    with pytest.raises(ConfigurationError, match=f"{setting} = '{value}'"):
        make_app(**{setting: value})


def test_development_ini_serves_with_gunicorn_gthread_on_the_readmes_port():
    server = dict(ini().items("server:main"))
    assert (server["use"], server["worker_class"]) == ("egg:gunicorn#main", "gthread")
    assert server["control_socket_disable"] == "true"
    assert int(server["threads"]) >= 8
    assert server["bind"] == "127.0.0.1:6543"
    assert "http://127.0.0.1:6543/" in (ROOT / "README.rst").read_text()


def test_development_ini_serves_windows_with_the_waitress_runner_on_the_same_port():
    server = dict(ini().items("server:waitress"))
    assert server["use"] == "egg:pyramid_upload_progress#waitress"
    assert server["listen"] == "127.0.0.1:6543"
    assert "pserve demo\\development.ini --server-name waitress" in (
        ROOT / "docs" / "demo.rst").read_text()


def test_production_ini_runs_several_workers_on_the_redis_store():
    production = ini("production.ini")
    assert production.get("app:main", "upload_progress.store") == "redis"
    assert production.get("app:main", "upload_progress.redis.url") == "redis://127.0.0.1:6379/0"
    assert int(production.get("server:main", "workers")) > 1
    assert production.get("server:main", "worker_class") == "gthread"


def test_the_readme_starts_the_demo_with_development_ini_in_one_command():
    [command] = [line.strip() for line in (ROOT / "README.rst").read_text().splitlines()
                 if line.strip().startswith("python3 -m venv") and "pserve" in line]
    assert "-e '.[demo]' -e ./demo" in command
    assert command.endswith("pserve demo/development.ini")


@pytest.mark.parametrize("text, rate", [
    ("2MiB", 2 * 1024 * 1024), ("512 KiB", 512 * 1024), ("1.5MiB", 3 * 512 * 1024),
    ("3MB", 3_000_000), ("100kB", 100_000), ("65536", 65536), ("1GiB", 1 << 30),
    ("0", 0), ("", 0), ("off", 0)])
def test_the_read_rate_is_parsed_with_its_unit(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-1MiB", "2 MiB/s", "2Mib", "nan"])
def test_a_bad_read_rate_stops_the_demo_naming_it(text):
    with pytest.raises(ConfigurationError, match=f"demo.read_rate = '{re.escape(text)}'"):
        make_app(**{"demo.read_rate": text})


def test_development_ini_reads_uploads_at_2_mib_a_second_and_production_ini_at_full_speed():
    assert ini().get("app:main", "demo.read_rate") == "2MiB"
    assert ini("production.ini").get("app:main", "demo.read_rate", fallback="0") in ("0", "off")


class Clock:
    """A clock that only sleeping moves."""

    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds


@pytest.mark.parametrize("how", ["read", "read-all", "readline", "iterate"])
def test_the_throttled_input_gives_every_byte_no_faster_than_the_rate(how):
    body = b"".join(b"line %d\n" % n for n in range(20000))  # ~150 kB
    clock = Clock()
    throttled = ThrottledInput(io.BytesIO(body), 50_000, clock=lambda: clock.now, sleep=clock.sleep)
    if how == "read":
        got = b"".join(iter(lambda: throttled.read(65536), b""))
    elif how == "read-all":
        got = throttled.read()
    elif how == "readline":
        got = b"".join(iter(throttled.readline, b""))
    else:
        got = b"".join(throttled)
    assert got == body
    # the last piece is read without a wait: all but one piece is paid for
    assert len(body) / 50_000 - 0.1 <= clock.now <= len(body) / 50_000 + 0.01


def sign_in_over_http(port):
    """alice's session cookie and CSRF token, signed in over a real socket."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        page = connection.getresponse()
        text = page.read().decode()
        cookie = page.getheader("Set-Cookie").split(";")[0]
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', text)[1]
        form = urllib.parse.urlencode({"name": "alice", "password": "alice", "csrf_token": token})
        connection.request("POST", "/login", form, {
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        signed_in = connection.getresponse()
        signed_in.read()
        assert signed_in.status == 303
        cookie = signed_in.getheader("Set-Cookie").split(";")[0]
        connection.request("GET", "/", headers={"Cookie": cookie})
        page = connection.getresponse()  # a new CSRF token, in a new cookie
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.read().decode())[1]
        return page.getheader("Set-Cookie", cookie).split(";")[0], token
    finally:
        connection.close()


@pytest.mark.e2e
def test_on_loopback_the_demo_as_configured_shows_the_upload_rising(tmp_path):
    """development.ini's demo.read_rate: polls see the bar move although the
    client sends the whole body at once over loopback."""
    size = 3 * MiB
    settings = {"demo.upload_dir": str(tmp_path), "demo.processing_delay": "0"}
    with serve("gunicorn", "tests.demo_app:wsgi_app()",
               env={"UPLOAD_DEMO_SETTINGS": json.dumps(settings)}) as server:
        cookie, token = sign_in_over_http(server.port)
        headers = {"Cookie": cookie}
        upload = UploadThread(server.port, "/upload?X-Progress-ID=rising-1", size=size,
                              chunk=size, delay=0, multipart="files",
                              headers={**headers, "X-CSRF-Token": token})
        started = time.monotonic()
        upload.start()
        seen = []
        while upload.is_alive() and time.monotonic() - started < 30:
            status, _, record = get_json(server.port, "/upload-progress?X-Progress-ID=rising-1",
                                         headers)
            assert status == 200
            if record["state"] == "uploading" and record["received"] < record["size"]:
                seen.append(record["received"])
            time.sleep(0.1)
        response = upload.join_result()
        took = time.monotonic() - started
    print(f"\npolls while a {size} B form went up in {took:.2f} s on loopback: {seen}")
    assert response.status == 200, response.body
    assert response.json()["received"] == size
    assert len(set(seen)) >= 5, seen
    assert seen == sorted(seen)
    assert took >= size / (2 * MiB) * 0.9


# -- the demo checks a sign-in itself (check_credentials) ------------------------

USERS = {"alice": "secret", "bob": "hunter2"}


def test_a_users_own_password_is_taken():
    assert check_credentials(USERS, "alice", "secret")


@pytest.mark.parametrize("login, password", [("alice", "hunter2"), ("alice", ""),
                                             ("eve", "secret"), ("", ""),
                                             ("alice", "secret ")])
def test_anything_else_is_refused(login, password):
    assert not check_credentials(USERS, login, password)
