"""Whose upload it is: a poll answers only the owner's records.

A listing holds the requesting owner's uploads only; by id, another owner's
upload answers exactly like an id not yet arrived (``starting``), except
while it is pending (its owner not yet looked up), when the id is the
secret; an anonymous upload is seen by its id alone. The owner comes from
the security policy or the owner setting. Attacked with 200 concurrent
uploads by 10 users on a real gunicorn, polled (every upload ends ``done``
with ``received == size``), and with guessed and reused ids in process with
every store.
"""
from __future__ import annotations

import json
import random
import threading
import time

import pytest
import webtest

from tests.apps import (
    Background,
    basic_app,
    held_upload,
    make_app,
    poll,
    read_all,
    store_of,
    upload,
)
from tests.e2e.client import UploadThread, get_json
from tests.e2e.servers import serve
from tests.store_kinds import each_store, store_settings


def test_listing_has_the_principals_finished_upload(app):
    upload(app, upload_id="up1")
    [record] = poll(app).json["uploads"]
    assert record["id"] == "up1"
    assert record["state"] == "done"
    assert record["received"] == record["size"] == 2000
    assert record["status"] == 200
    assert record["percent"] == 100.0


def test_listing_is_newest_first(app):
    for upload_id in ("first", "second", "third"):
        upload(app, upload_id=upload_id)
    assert [u["id"] for u in poll(app).json["uploads"]] == ["third", "second", "first"]


def test_an_upload_without_an_id_is_listed_with_id_null(app):
    upload(app)
    [record] = poll(app).json["uploads"]
    assert record["id"] is None


def test_listing_shows_only_the_principals_uploads(app):
    upload(app, upload_id="alices", user="alice")
    upload(app, upload_id="bobs", user="bob")
    assert [u["id"] for u in poll(app, user="bob").json["uploads"]] == ["bobs"]


def test_listing_without_a_principal_is_empty(app):
    upload(app, upload_id="anon", user=None)
    upload(app, upload_id="alices")
    assert poll(app, user=None).json == {"uploads": []}


def test_lookup_by_id_answers_the_owner(app):
    upload(app, upload_id="mine")
    answer = poll(app, "mine").json
    assert answer["id"] == "mine"
    assert answer["state"] == "done"


def test_another_principals_id_answers_starting(app):
    upload(app, upload_id="secret", user="alice")
    answer = poll(app, "secret", user="bob").json
    assert answer == poll(app, "never-seen", user="bob").json | {"id": "secret"}
    assert answer["state"] == "starting"
    assert answer["received"] == 0
    assert answer["size"] is None


def test_an_anonymous_upload_is_visible_by_its_id_alone(app):
    upload(app, upload_id="anon", user=None)
    assert poll(app, "anon", user="bob").json["state"] == "done"
    assert poll(app, "anon", user=None).json["state"] == "done"


def test_a_reused_id_replaces_the_principals_old_record(app):
    upload(app, upload_id="again", size=1500)
    upload(app, upload_id="again", size=2500)
    uploads = poll(app).json["uploads"]
    assert [(u["id"], u["size"]) for u in uploads] == [("again", 2500)]


def session_owner(request):
    return request.headers.get("X-Session")


def test_the_owner_setting_decides_whose_upload_it_is():
    app = webtest.TestApp(basic_app(
        {"upload_progress.owner": "tests.test_ownership.session_owner"}))
    app.post("/upload?X-Progress-ID=s1", b"x" * 10, headers={"X-Session": "sess-a"})
    listing = app.get("/upload-progress", headers={"X-Session": "sess-a"}).json
    assert [u["id"] for u in listing["uploads"]] == ["s1"]
    assert app.get("/upload-progress", headers={"X-Session": "sess-b"}).json == {"uploads": []}
    other = app.get("/upload-progress?X-Progress-ID=s1", headers={"X-Session": "sess-b"})
    assert other.json["state"] == "starting"


def int_owner(request):
    user = request.headers.get("X-User")
    return None if user is None else int(user)


def test_an_int_principal_owns_its_uploads():
    app = webtest.TestApp(basic_app(
        {"upload_progress.owner": "tests.test_ownership.int_owner"}))
    app.post("/upload?X-Progress-ID=i1", b"x", headers={"X-User": "7"})
    assert app.get("/upload-progress", headers={"X-User": "7"}).json["uploads"][0]["id"] == "i1"


def failing_owner(request):
    raise LookupError("the user table is not there")


def test_an_owner_lookup_that_raises_leaves_the_upload_untracked_and_served(caplog):
    app = webtest.TestApp(basic_app(
        {"upload_progress.owner": "tests.test_ownership.failing_owner"}))
    res = app.post("/upload?X-Progress-ID=o1", b"x" * 10)
    assert res.json == {"read": 10}
    assert store_of(app).get("o1", None) is None
    assert "owner" in caplog.text


# -- a poll of your own id answers your upload, not someone else's ------------

def test_an_anonymous_body_with_my_id_does_not_take_over_my_poll(app):
    upload(app, upload_id="X", size=5000)
    app.post("/nowhere?X-Progress-ID=X", b"abc", status=404)
    answer = poll(app, "X").json
    assert (answer["state"], answer["received"], answer["path"]) == ("done", 5000, "/upload")


USERS = [f"user{n}" for n in range(10)]


PER_USER = 20


SIZE = 64 * 1024


GUESSED = (0, 7)
"""The ids of each user that mallory (signed in, ``SIZE + 1`` bytes) and
anonymous clients (``SIZE + 2``) send bodies with too."""


DEADLINE = 60.0


def leaks_in(user, status, answer, asked_for=None):
    """What a poll by ``user`` shows that is not theirs to see: by id, an
    upload of another owner unless pending (the id is then the secret) or
    ownerless (visible by its id alone); mallory's never, once known."""
    if status != 200:
        return [f"{user}: status {status} for {asked_for}: {answer}"]
    if asked_for is None:
        return [f"{user} listed {u['id']} ({u['size']} bytes)" for u in answer["uploads"]
                if not (u["id"] or "").startswith(user + "-") or u["size"] != SIZE]
    pending = answer["state"] == "uploading" and answer["received"] == 0
    if answer["state"] == "starting" or pending or answer["size"] == SIZE + 2:
        return []
    if asked_for.startswith(user + "-") and answer["size"] == SIZE:
        return []
    return [f"{user} saw {asked_for}: {answer}"]


def poll_until(server, user, stop, found):
    others = [f"{other}-{n}" for other in USERS if other != user for n in (0, 7, 19)]
    turn = 0
    while not stop.is_set():
        headers = {"X-User": user}
        status, _, answer = get_json(server.port, "/upload-progress", headers)
        found += leaks_in(user, status, answer)
        for upload_id in (others[turn % len(others)], f"{user}-{turn % PER_USER}"):
            status, _, answer = get_json(
                server.port, f"/upload-progress?X-Progress-ID={upload_id}", headers)
            found += leaks_in(user, status, answer, upload_id)
        turn += 1


def listing_when_ended(server, user, count):
    """``user``'s listing once ``count`` uploads have ended (bounded wait: a
    record ends as the server closes the response, after the client has it)."""
    deadline = time.monotonic() + 10
    while True:
        _, _, listing = get_json(server.port, "/upload-progress", {"X-User": user})
        ended = [u for u in listing["uploads"] if u["finished"] is not None]
        if len(ended) >= count or time.monotonic() > deadline:
            return listing["uploads"]
        time.sleep(0.05)


@pytest.mark.e2e
@each_store()
def test_200_concurrent_uploads_by_10_users_never_leak_and_all_end_done(kind):
    """On one gunicorn process with the memory store, on two sharing Redis
    or SQLite; mallory and anonymous clients send bodies with guessed ids."""
    # The default update_interval: the test is about answers, not about how
    # many writes per second a store takes on 2 cores.
    settings = json.dumps(store_settings(kind, **{"upload_progress.threshold": "0",
                                                  "upload_progress.update_interval": "0.25"}))
    with serve("gunicorn", "tests.plain_app:app", threads=240,
               workers=1 if kind == "memory" else 2,
               env={"UPLOAD_PROGRESS_SETTINGS": settings}) as server:
        def upload(upload_id, size, headers):
            return UploadThread(server.port, f"/upload?X-Progress-ID={upload_id}",
                                size=size, chunk=16 * 1024, delay=0.15, headers=headers,
                                timeout=30)

        uploads = {f"{user}-{n}": upload(f"{user}-{n}", SIZE, {"X-User": user})
                   for user in USERS for n in range(PER_USER)}
        guessing = [upload(f"{user}-{n}", size, headers) for user in USERS for n in GUESSED
                    for size, headers in ((SIZE + 1, {"X-User": "mallory"}), (SIZE + 2, {}))]
        stop = threading.Event()
        found: list[str] = []
        pollers = [threading.Thread(target=poll_until, args=(server, user, stop, found),
                                    daemon=True) for user in USERS]
        for thread in [*uploads.values(), *guessing, *pollers]:
            thread.start()
        try:
            started = time.monotonic()
            answers = {upload_id: thread.join_result(DEADLINE - (time.monotonic() - started))
                       for upload_id, thread in uploads.items()}
            guessed = [thread.join_result(DEADLINE - (time.monotonic() - started))
                       for thread in guessing]
        finally:
            stop.set()
            for poller in pollers:
                poller.join(DEADLINE)
        assert not found, found[:10]
        assert all(r.status == 200 and r.json()["read"] == SIZE for r in answers.values())
        assert all(r.status == 200 for r in guessed)
        # SQLite: a write that waits on the lock past 0.1 s leaves its upload
        # untracked, as the contract says. The 0.1 s is wall-clock time, and
        # 480 threads of two processes on 2 cores queue for their GIL: alone,
        # 0 to 2 of these 230 uploads starting at once went untracked; inside
        # the whole suite, 10 once. Every upload was served (above); none
        # leaked; this bound says the store still tracks 9 in 10.
        untracked, allowed = 0, 23 if kind == "sqlite" else 0
        for user in USERS:
            listing = listing_when_ended(server, user, PER_USER)
            expected = {f"{user}-{n}" for n in range(PER_USER)}
            assert {u["id"] for u in listing} <= expected
            untracked += len(expected) - sum(
                (u["state"], u["received"], u["size"]) == ("done", SIZE, SIZE)
                for u in listing)
        mallorys = listing_when_ended(server, "mallory", len(guessing) // 2)
        assert {u["size"] for u in mallorys} <= {SIZE + 1}
        untracked += len(guessing) // 2 - sum(u["state"] == "done" for u in mallorys)
        assert untracked <= allowed, f"{untracked} of 230 uploads untracked"


# -- in process, with every store: guessed and reused ids ---------------------
#
# Each upload's size says whose it is. Every user first finishes an upload
# with an id they then reuse; then all uploads are held mid-body (their
# owners known): the users' own, mallory's (signed in) with every user's
# ids, and anonymous ones with every user's ids. Pollers - each user,
# mallory, an anonymous one - poll their own ids, the others' and their
# listings from threads, while the uploads are let go one by one.

MEMBERS = ["ann", "ben", "cat", "dan"]


IDS_EACH = 3


MALLORY, ANONYMOUS = 17_777, 16_666
"""The sizes of mallory's and the anonymous uploads."""


def own_size(user, old=False):
    return 20_000 + 1000 * MEMBERS.index(user) + (1 if old else 0)


def owner_by_size():
    owners = {MALLORY: "mallory", ANONYMOUS: None}
    for user in MEMBERS:
        owners[own_size(user)] = owners[own_size(user, old=True)] = user
    return owners


def crossed(poller, answer, owners):
    """The uploads in ``answer`` that ``poller`` may not see: another
    owner's (an anonymous upload is visible by its id to anyone)."""
    shown = answer.get("uploads", [answer])
    return [u for u in shown if u["size"] is not None
            and owners[u["size"]] not in (poller, None)]


def poll_everything(client, poller, stop, found, owners):
    headers = {"X-User": poller} if poller else {}
    ids = [f"{user}-{n}" for user in MEMBERS for n in range(IDS_EACH)]
    turn = 0
    while not stop.is_set() and turn < 2000:
        listing = client.get("/upload-progress", headers=headers).json
        found += [f"{poller} listed {u}" for u in crossed(poller, listing, owners)]
        if poller is None:
            found += [f"anonymous listing {listing}"] if listing["uploads"] else []
        elif any(owners[u["size"]] != poller for u in listing["uploads"]):
            found.append(f"{poller} listed an ownerless upload: {listing}")
        upload_id = ids[turn % len(ids)]
        answer = client.get(f"/upload-progress?X-Progress-ID={upload_id}",
                            headers=headers).json
        found += [f"{poller} polled {upload_id}: {u}" for u in crossed(poller, answer, owners)]
        if poller in MEMBERS and upload_id.startswith(poller + "-") \
                and answer["size"] != own_size(poller):
            found.append(f"{poller} polled own {upload_id}, got {answer}")
        turn += 1


@each_store()
def test_guessed_and_reused_ids_never_show_another_users_upload(kind):
    app = make_app({"read": read_all}, store_settings(kind))
    client = webtest.TestApp(app)
    owners = owner_by_size()
    for user in MEMBERS:
        client.post(f"/read?X-Progress-ID={user}-0", b"o" * own_size(user, old=True),
                    headers={"X-User": user})
    held = []
    for user, n in [(user, n) for user in MEMBERS for n in range(IDS_EACH)]:
        for uploader, size in ((user, own_size(user)), ("mallory", MALLORY),
                               (None, ANONYMOUS)):
            headers = {"X-User": uploader} if uploader else {}
            raw, thread = held_upload(app, b"u" * size, f"{user}-{n}", headers)
            held.append((raw, thread, size))
    stop = threading.Event()
    found: list[str] = []
    pollers = [Background(lambda poller=poller: poll_everything(
        webtest.TestApp(app), poller, stop, found, owners))
        for poller in [*MEMBERS, "mallory", None]]
    for poller in pollers:
        poller.start()
    try:
        for raw, thread, size in random.Random(14).sample(held, len(held)):
            time.sleep(0.005)
            raw.go.set()
            assert thread.result().json == {"read": size}
    finally:
        for raw, _, _ in held:
            raw.go.set()
        stop.set()
        for poller in pollers:
            poller.result()
    assert not found, found[:10]
    for user in MEMBERS:
        listing = client.get("/upload-progress", headers={"X-User": user}).json["uploads"]
        assert sorted((u["id"], u["state"], u["received"]) for u in listing) == \
            [(f"{user}-{n}", "done", own_size(user)) for n in range(IDS_EACH)]
