"""The plain app on the Redis store under real servers, as the Redis and
Redis Cluster end-to-end tests serve it: the environment that sets it up,
uploads that a test polls while they arrive, and what their answers must
show.

The app is ``tests/plain_app.py`` (through ``tests/e2e/worker_app.py``, which
says which worker answered); it answers an upload with its size and
SHA-256, so a test sees that the bytes arrived intact.
"""
from __future__ import annotations

import hashlib
import json
import time

from tests.e2e.client import ALICE, UploadThread, payload, poll, wait_for, worker_answer
from tests.redis_server import fresh_prefix

APP = "tests.e2e.worker_app:app"
SIZE = 1024 * 1024
CHUNK = 64 * 1024
DELAY = 0.05
SOCKET_TIMEOUT = 0.3


def app_env(redis_url, prefix=None, **settings):
    """The environment that makes plain_app use the Redis store."""
    return {"UPLOAD_PROGRESS_SETTINGS": json.dumps({
        "upload_progress.store": "redis",
        "upload_progress.redis.url": redis_url,
        "upload_progress.redis.prefix": prefix or fresh_prefix(),
        "upload_progress.redis.socket_timeout": str(SOCKET_TIMEOUT),
        "upload_progress.update_interval": "0.05",
        **settings,
    })}


def digest(size):
    return hashlib.sha256(payload(size)).hexdigest()


def upload(server, upload_id, size=SIZE, chunk=CHUNK, delay=DELAY):
    thread = UploadThread(server.port, f"/upload?X-Progress-ID={upload_id}", size=size,
                          chunk=chunk, delay=delay, headers=ALICE)
    thread.start()
    return thread


def polls_while_sending(server, thread, upload_id, size=SIZE):
    """Poll on fresh connections from the first ``uploading`` answer until
    the client has sent nearly all: (answers, pids that answered)."""
    wait_for(lambda: poll(server.port, upload_id)["state"] == "uploading", 10, "upload")
    answers, pids = [], set()
    while thread.sent < size - 2 * CHUNK:
        status, pid, answer = worker_answer(server.port, upload_id)
        assert status == 200, answer
        answers.append(answer)
        pids.add(pid)
        time.sleep(0.01)
    return answers, pids


def assert_seen_arriving(answers):
    received = [a["received"] for a in answers]
    assert len(answers) >= 20, received
    assert {a["state"] for a in answers} == {"uploading"}, answers
    assert received == sorted(received)
    assert len(set(received)) >= 3, received


def assert_done(answer, size=SIZE):
    assert (answer["state"], answer["received"], answer["status"]) == ("done", size, 200)
