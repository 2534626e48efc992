"""The SQLite store end to end: gunicorn (gthread) with 4 worker processes
sharing one file, with ``--preload`` and without; many uploads at once; a
file that is locked, deleted or made read-only while uploads go on.

Polls are made on fresh connections, so any worker may answer; the app
says which one did (``tests/e2e/worker_app.py``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.e2e.client import ALICE, UploadThread, payload, slow_upload, worker_answer
from tests.e2e.servers import serve
from tests.read_only import read_only

pytestmark = pytest.mark.e2e

APP = "tests.e2e.worker_app:app"
WORKERS = 4


@contextlib.contextmanager
def sqlite_server(path, *, preload=False, threads=16, **settings):
    """gunicorn with 4 workers, the SQLite store at ``path``."""
    env = {
        "UPLOAD_PROGRESS_SETTINGS": json.dumps({
            "upload_progress.store": "sqlite",
            "upload_progress.sqlite.path": str(path),
            **settings,
        }),
        "GUNICORN_CMD_ARGS": "--preload" if preload else "",
    }
    with serve("gunicorn", APP, env=env, workers=WORKERS, threads=threads) as server:
        # serve() returns once one worker answers; wait for all to load the
        # app (bounded), so that none makes the store during a fault.
        loads = 1 if preload else WORKERS
        deadline = time.monotonic() + 20
        while (server.output().count("app loaded in") < loads
               or server.output().count("Booting worker") < WORKERS):
            assert time.monotonic() < deadline, "the workers did not all start"
            time.sleep(0.05)
        yield server


def upload(server, upload_id, user, size, chunk=64 * 1024, delay=0.02):
    """A tracked upload; returns (response, seconds it took)."""
    began = time.monotonic()
    response = slow_upload(server.port, f"/upload?X-Progress-ID={upload_id}", size=size,
                           chunk=chunk, delay=delay, headers={"X-User": user})
    return response, time.monotonic() - began


def served_whole(response, size):
    """Whether the app answered 200 having read the whole body intact."""
    return response.status == 200 and response.json() == {
        "read": size, "sha256": hashlib.sha256(payload(size)).hexdigest()}


def wait_for_state(server, upload_id, user, state, timeout=10.0):
    """Poll until ``state`` (bounded); return the answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, answer = worker_answer(server.port, upload_id, {"X-User": user})
        if status == 200 and answer["state"] == state:
            return answer
        time.sleep(0.02)
    raise AssertionError(f"{upload_id} never reached {state!r}: last {status} {answer}")


# -- progress from every worker ------------------------------------------------

@pytest.mark.parametrize("preload", [False, True], ids=["fork-then-load", "preload"])
def test_every_worker_answers_a_slow_uploads_progress(tmp_path, preload):
    size, chunk = 2 * 1024 * 1024, 32 * 1024
    upload_id = uuid.uuid4().hex
    with sqlite_server(tmp_path / "progress.sqlite3", preload=preload,
                       **{"upload_progress.update_interval": "0.05"}) as server:
        loads = server.output().count("app loaded in")
        thread = UploadThread(server.port, f"/upload?X-Progress-ID={upload_id}",
                              size=size, chunk=chunk, delay=0.03,
                              headers=ALICE)
        thread.start()
        wait_for_state(server, upload_id, "alice", "uploading")
        answers, workers = [], set()
        while thread.is_alive() and thread.sent < size - 8 * chunk and len(answers) < 40:
            status, pid, answer = worker_answer(server.port, upload_id, ALICE)
            assert status == 200
            answers.append(answer)
            workers.add(pid)
            time.sleep(0.02)
        assert served_whole(thread.join_result(), size)
        wait_for_state(server, upload_id, "alice", "done")
        finals = {}
        deadline = time.monotonic() + 10
        while len(finals) < WORKERS and time.monotonic() < deadline:
            status, pid, answer = worker_answer(server.port, upload_id, ALICE)
            finals[pid] = (status, answer["state"], answer["received"])
            time.sleep(0.01)

    assert loads == (1 if preload else WORKERS)
    assert len(answers) >= 20
    assert {answer["state"] for answer in answers} == {"uploading"}
    received = [answer["received"] for answer in answers]
    assert received == sorted(received) and received[-1] > received[0]
    assert len(workers) >= 2
    assert len(finals) == WORKERS
    assert set(finals.values()) == {(200, "done", size)}


# -- many uploads at once -----------------------------------------------------

def test_two_hundred_concurrent_uploads_are_all_tracked_and_served(tmp_path):
    count, size, pollers = 200, 512 * 1024, 4
    ids = [f"many-{n}-{uuid.uuid4().hex[:8]}" for n in range(count)]
    owners = [f"user-{n % 20}" for n in range(count)]
    latencies: list[float] = []
    statuses: list[int] = []

    def poll_while_uploading(first):
        n = first
        while any(thread.is_alive() for thread in threads) and len(latencies) < 5000:
            began = time.monotonic()
            status, _, _ = worker_answer(server.port, ids[n % count],
                                         {"X-User": owners[n % count]})
            latencies.append(time.monotonic() - began)
            statuses.append(status)
            n += pollers

    with sqlite_server(tmp_path / "progress.sqlite3", threads=128) as server:
        threads = [UploadThread(server.port, f"/upload?X-Progress-ID={ids[n]}",
                                size=size, chunk=32 * 1024, delay=0.15,
                                headers={"X-User": owners[n]})
                   for n in range(count)]
        # Started over a second, as clients come, and each lasting over two:
        # all 200 are in flight at once (a burst of 200 in the same few ms on
        # 2 cores leaves some writes waiting past the lock timeout).
        for thread in threads:
            thread.start()
            time.sleep(0.005)
        in_flight = sum(thread.is_alive() for thread in threads)
        polling = [threading.Thread(target=poll_while_uploading, args=(n,))
                   for n in range(pollers)]
        for poller in polling:
            poller.start()
        responses = [thread.join_result() for thread in threads]
        for poller in polling:
            poller.join(60)
        # An upload's record ends when the server closes the response, just
        # after the client has it: wait for that (bounded).
        finals = [wait_for_state(server, ids[n], owners[n], "done") for n in range(count)]
        output = server.output()

    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"\n{len(latencies)} polls under {count} concurrent uploads (4 workers): "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms")
    assert in_flight == count
    assert len(latencies) >= 100
    assert set(statuses) == {200}
    assert all(served_whole(response, size) for response in responses)
    assert "database is locked" not in output
    assert {answer["received"] for answer in finals} == {size}
    assert p99 < 1.0


# -- faults -------------------------------------------------------------------

LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


@contextlib.contextmanager
def write_locked(path, seconds):
    """Another process holds the write lock (``BEGIN IMMEDIATE``)."""
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait(5)


def test_a_write_lock_held_elsewhere_never_delays_an_upload(tmp_path):
    path = tmp_path / "progress.sqlite3"
    size = 1024 * 1024
    with sqlite_server(path, **{"upload_progress.update_interval": "0.05"}) as server:
        response, unlocked = upload(server, "warm-up", "alice", size)
        response, unlocked = upload(server, "unlocked", "alice", size)
        assert served_whole(response, size)
        through = UploadThread(server.port, "/upload?X-Progress-ID=through", size=size,
                               chunk=64 * 1024, delay=0.02, headers=ALICE)
        began = time.monotonic()
        through.start()
        wait_for_state(server, "through", "alice", "uploading")
        with write_locked(path, 5):
            locked_response, locked = upload(server, "locked", "alice", size)
            through_response = through.join_result()
            through_took = time.monotonic() - began
            poll_began = time.monotonic()
            during = worker_answer(server.port, "locked", ALICE)
            poll_took = time.monotonic() - poll_began
        response, _ = upload(server, "after", "alice", size)
        after = wait_for_state(server, "after", "alice", "done")

    print(f"\n1 MiB upload: {unlocked:.3f} s unlocked, {locked:.3f} s started under "
          f"the lock, {through_took:.3f} s with the lock taken mid-upload")
    assert served_whole(locked_response, size) and served_whole(through_response, size)
    assert locked < unlocked + 0.4
    assert through_took < unlocked + 0.6
    # Untracked: its start could not write. Reads went on meanwhile.
    assert (during[0], during[2]["state"]) == (200, "starting") and poll_took < 0.5
    assert served_whole(response, size) and after["received"] == size


def test_a_deleted_file_leaves_uploads_served_and_tracking_resumes(tmp_path):
    path = tmp_path / "progress.sqlite3"
    size = 1024 * 1024
    with sqlite_server(path, **{"upload_progress.update_interval": "0.05"}) as server:
        thread = UploadThread(server.port, "/upload?X-Progress-ID=across", size=size,
                              chunk=32 * 1024, delay=0.03, headers=ALICE)
        thread.start()
        wait_for_state(server, "across", "alice", "uploading")
        os.unlink(path)
        across = thread.join_result()
        status, _, lost = worker_answer(server.port, "across", ALICE)
        response, _ = upload(server, "after", "alice", size)
        after = wait_for_state(server, "after", "alice", "done")

    assert served_whole(across, size) and served_whole(response, size)
    # The upload in progress went with the file: its id answers as unknown.
    assert (status, lost["state"]) == (200, "starting")
    assert after["received"] == size


def test_a_read_only_file_leaves_uploads_served(tmp_path):
    path = tmp_path / "progress.sqlite3"
    size = 512 * 1024
    with sqlite_server(path, threads=4) as server:
        upload(server, "before", "alice", size)
        with read_only(path):
            responses = [upload(server, f"during-{n}", "alice", size)[0] for n in range(3)]
            during = [worker_answer(server.port, f"during-{n}", ALICE) for n in range(3)]
        # A connection opened while the file was read-only is replaced after
        # its first failed write; so within a few uploads tracking is back.
        for attempt in range(WORKERS * 4 + 1):
            response, _ = upload(server, f"after-{attempt}", "alice", size)
            assert served_whole(response, size)
            _, _, after = worker_answer(server.port, f"after-{attempt}", ALICE)
            if after["state"] == "done":
                break

    assert all(served_whole(response, size) for response in responses)
    # Connections opened before go on writing into the -wal file; new ones
    # cannot write: such uploads are untracked. Polls answer either way.
    assert {status for status, _, _ in during} <= {200, 503}
    assert {answer["state"] for _, _, answer in during} <= {"done", "starting"}
    assert after["state"] == "done"
