"""Every store answers the same random sequences of calls identically: the
memory, SQLite and Redis stores, driven as the add-on drives a store, give
the same records but for their times.

Each seed makes a sequence of calls - starts, reads (``update``, with
``ended`` for the read that ends the body), owners, stages, ends, discards,
cancels, polls and listings - over a few ids and owners, runs it against a
fresh store of each kind, and compares every answer. Times differ (the
stores' clocks are not one), so a record is compared with its times
replaced by whether they are set, and its key by the upload it belongs to.
"""
from __future__ import annotations

import dataclasses
import random

import pytest

from tests.stores import BACKENDS, Progress

KINDS = ("memory", "sqlite", "redis")
IDS = ("a", "b", None)
OWNERS = ("alice", "bob", None)
STEPS = 40
SEEDS = 100


class Upload:
    """One upload as the add-on drives it, the same for every store."""

    def __init__(self, number: int, upload_id: str | None, size: int | None,
                 multipart: bool) -> None:
        self.number = number
        self.id = upload_id
        self.size = size
        self.multipart = multipart
        """Whether the body has file parts: ``files`` is a list at every
        write of it, or ``None`` at every write (the interface's rule)."""
        self.received = 0
        self.ended = False
        self.owner_known = False
        self.finished = False
        self.discarded = False
        self.cancel_learnt = False
        """A read answered that the upload was cancelled: it ends next."""
        self.keys: dict[str, str] = {}
        self.progress: dict[str, Progress] = {}

    @property
    def writable(self) -> bool:
        return not (self.finished or self.discarded)


class Run:
    """One sequence of calls against one store of each kind."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.backends = {kind: BACKENDS[kind](timeout=300.0, stall_timeout=3600.0,
                                              max_uploads=1000) for kind in KINDS}
        self.uploads: list[Upload] = []

    def each(self, call) -> dict[str, object]:
        """``call(kind, store)`` for every store: their answers."""
        return {kind: call(kind, backend.store) for kind, backend in self.backends.items()}

    def same(self, what: str, answers: dict[str, object]) -> None:
        normal = {kind: self.normal(kind, answer) for kind, answer in answers.items()}
        first = normal[KINDS[0]]
        assert all(answer == first for answer in normal.values()), (what, normal)

    def normal(self, kind: str, answer: object) -> object:
        """An answer with times as "set or not" and keys as upload numbers."""
        if isinstance(answer, list):
            return [self.normal(kind, item) for item in answer]
        if answer is None or isinstance(answer, bool):
            return answer
        record = dataclasses.asdict(answer)
        for name in ("started", "updated", "finished", "body_end"):
            record[name] = record[name] is not None
        owners = {upload.keys[kind]: upload.number for upload in self.uploads}
        record["key"] = owners[record.pop("key")]
        return record

    # -- the steps ---------------------------------------------------------------

    def start(self) -> None:
        upload = Upload(len(self.uploads), self.rng.choice(IDS), self.rng.choice((100, None)),
                        self.rng.random() < 0.5)
        self.uploads.append(upload)
        for kind, backend in self.backends.items():
            if kind != "redis":
                backend.advance(0.001)  # no two uploads start at the same instant
            progress = Progress()
            upload.progress[kind] = progress
            upload.keys[kind] = backend.store.start(upload.id, "/up", upload.size, progress)

    def read(self, upload: Upload) -> None:
        """The app reads some bytes; the last read of a sized body, or a
        chunked body's end, says ``ended``."""
        upload.received += self.rng.randrange(0, 40)
        if upload.size is not None:
            upload.received = min(upload.received, upload.size)
            ended = upload.received == upload.size
        else:
            ended = self.rng.random() < 0.3
        files = [{"field": "f", "filename": "x", "received": upload.received,
                  "done": ended}] if upload.multipart else None
        upload.ended = ended

        def update(kind, store):
            progress = upload.progress[kind]
            progress.received, progress.files = upload.received, files
            if ended:
                progress.receiving = False
                if not progress.cancelled:
                    progress.body_end = self.backends[kind].now()
            if store.throttled:
                return bool(store.update(upload.keys[kind], upload.received, files, ended))
            return progress.cancelled

        answers = self.each(update)
        self.same("update", answers)
        upload.cancel_learnt = answers[KINDS[0]]

    def set_owner(self, upload: Upload) -> None:
        owner = self.rng.choice(OWNERS)
        upload.owner_known = True
        self.each(lambda kind, store: store.set_owner(upload.keys[kind], owner))

    def stage(self, upload: Upload) -> None:
        name, done = self.rng.choice(("scan", "resize")), self.rng.choice((None, 1, 2))
        self.each(lambda kind, store: store.stage(upload.keys[kind], name, done, 2))

    def finish(self, upload: Upload) -> None:
        """The end, as the add-on reports it: cancelled (409) when a read
        learnt of a cancel; else done, or an error status, or an exception."""
        if upload.cancel_learnt:
            status, failed, cancelled = 409, True, True
        else:
            (status, failed), cancelled = self.rng.choice(((200, False), (500, False),
                                                           (None, True))), False
        upload.finished = True

        def finish(kind, store):
            progress = upload.progress[kind]
            progress.receiving = False
            store.finish(upload.keys[kind], upload.received, progress.files, status,
                         failed, cancelled)

        self.each(finish)

    def discard(self, upload: Upload) -> None:
        upload.discarded = True
        self.each(lambda kind, store: store.discard(upload.keys[kind]))

    def get(self) -> None:
        upload_id, owner = self.rng.choice(IDS[:2]), self.rng.choice(OWNERS)
        self.same(f"get {upload_id} {owner}", self.each(
            lambda kind, store: store.get(upload_id, owner)))

    def list(self) -> None:
        owner = self.rng.choice(OWNERS[:2])
        self.same(f"list {owner}", self.each(lambda kind, store: store.list(owner)))

    def cancel(self) -> None:
        upload_id, owner = self.rng.choice(IDS[:2]), self.rng.choice(OWNERS)
        self.same(f"cancel {upload_id} {owner}", self.each(
            lambda kind, store: store.cancel(upload_id, owner)))

    def step(self) -> None:
        live = [upload for upload in self.uploads if upload.writable]
        ops = ["start", "get", "list", "cancel"]
        if live:
            ops += ["read", "read", "read", "owner", "stage", "finish", "discard"]
        op = self.rng.choice(ops)
        if op in ("start", "get", "list", "cancel"):
            getattr(self, op)()
            return
        upload = self.rng.choice(live)
        if upload.cancel_learnt and op != "discard":
            op = "finish"  # the read raised UploadCancelled: the request ends
        elif op == "read" and upload.ended or op == "owner" and upload.owner_known:
            op = "stage"
        {"read": self.read, "owner": self.set_owner, "stage": self.stage,
         "finish": self.finish, "discard": self.discard}[op](upload)

    def compare_everything(self) -> None:
        for upload_id in IDS[:2]:
            for owner in OWNERS:
                self.same(f"final get {upload_id} {owner}", self.each(
                    lambda kind, store: store.get(upload_id, owner)))
        for owner in OWNERS[:2]:
            self.same(f"final list {owner}", self.each(lambda kind, store: store.list(owner)))


@pytest.mark.parametrize("seed", range(SEEDS))
def test_every_store_answers_a_random_sequence_of_calls_alike(seed):
    run = Run(random.Random(seed))
    for _ in range(STEPS):
        run.step()
    run.compare_everything()
