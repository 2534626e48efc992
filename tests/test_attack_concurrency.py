"""Attack: 200 concurrent uploads by 10 users on a real gunicorn, polled.

DESIGN.md, "Whose upload it is" and "The report view": a listing holds the
requesting owner's uploads only; by id, another owner's upload answers
exactly like an id not yet arrived (``starting``) - except while it is
pending (its owner not yet looked up), when the id is the secret. Every
upload ends ``done`` with ``received == size``.
"""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests.e2e.client import UploadThread, get_json
from tests.e2e.servers import serve

pytestmark = pytest.mark.e2e

USERS = [f"user{n}" for n in range(10)]
PER_USER = 20
SIZE = 64 * 1024
DEADLINE = 60.0


def leaks_in(user, status, answer, asked_for=None):
    """What a poll by ``user`` shows that is not theirs to see."""
    if status != 200:
        return [f"{user}: status {status} for {asked_for}: {answer}"]
    if asked_for is None:
        return [f"{user} listed {u['id']}" for u in answer["uploads"]
                if not (u["id"] or "").startswith(user + "-")]
    if asked_for.startswith(user + "-"):
        return []
    pending = answer["state"] == "uploading" and answer["received"] == 0
    if answer["state"] != "starting" and not pending:
        return [f"{user} saw {asked_for}: {answer}"]
    return []


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


def test_200_concurrent_uploads_by_10_users_never_leak_and_all_end_done():
    settings = json.dumps({"upload_progress.threshold": "0"})
    with serve("gunicorn", "tests.plain_app:app", threads=240,
               env={"UPLOAD_PROGRESS_SETTINGS": settings}) as server:
        uploads = {
            f"{user}-{n}": UploadThread(server.port, f"/upload?X-Progress-ID={user}-{n}",
                                        size=SIZE, chunk=16 * 1024, delay=0.15,
                                        headers={"X-User": user}, timeout=30)
            for user in USERS for n in range(PER_USER)}
        stop = threading.Event()
        found: list[str] = []
        pollers = [threading.Thread(target=poll_until, args=(server, user, stop, found),
                                    daemon=True) for user in USERS]
        for thread in [*uploads.values(), *pollers]:
            thread.start()
        try:
            started = time.monotonic()
            answers = {upload_id: thread.join_result(DEADLINE - (time.monotonic() - started))
                       for upload_id, thread in uploads.items()}
        finally:
            stop.set()
            for poller in pollers:
                poller.join(DEADLINE)
        assert not found, found[:10]
        assert all(r.status == 200 and r.json()["read"] == SIZE for r in answers.values())
        for user in USERS:
            _, _, listing = get_json(server.port, "/upload-progress", {"X-User": user})
            assert sorted(u["id"] for u in listing["uploads"]) == \
                sorted(f"{user}-{n}" for n in range(PER_USER))
            assert {(u["state"], u["received"], u["size"]) for u in listing["uploads"]} == \
                {("done", SIZE, SIZE)}
