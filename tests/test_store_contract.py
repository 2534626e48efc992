"""The store contract (:mod:`pyramid_upload_progress.testing`), run against
every store of the project, and shown to fail a store that breaks it.

What is specific to one store (the memory store's cap, Redis's key expiry,
SQLite's locking) lives in its own module.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyramid_upload_progress.testing import StoreContract

from tests.stores import memory_backend, redis_backend, redis_cluster_backend, sqlite_backend


class TestMemoryStore(StoreContract):
    make_backend = staticmethod(memory_backend)


class TestSQLiteStore(StoreContract):
    make_backend = staticmethod(sqlite_backend)


class TestRedisStore(StoreContract):
    make_backend = staticmethod(redis_backend)


class TestRedisClusterStore(StoreContract):
    make_backend = staticmethod(redis_cluster_backend)


EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
BROKEN_STORES = '''
from mapping_store import MappingUploadProgressStore
from pyramid_upload_progress.record import progressed
from pyramid_upload_progress.testing import Backend, FakeClock, StoreContract


class AnswersTheOldest(MappingUploadProgressStore):
    def _find(self, upload_id, owner, now):
        records = [self._load(key) for key in self._index("id:" + upload_id)]
        return next((r for r in records if r is not None and self._alive(r, now)
                     and (not r.owner_known or r.owner in (None, owner))), None)


class DropsProgressAfterACancel(MappingUploadProgressStore):
    def update(self, key, received, files, ended=False):
        record = self._load(key)
        if record is not None and record.cancelled:
            return True
        return super().update(key, received, files, ended)


def backend(store_class, timeout, stall_timeout):
    clock = FakeClock()
    store = store_class(timeout=timeout, stall_timeout=stall_timeout, clock=clock)
    return Backend(store, clock.advance, clock)


class TestAnswersTheOldest(StoreContract):
    def make_backend(self, *, timeout, stall_timeout, max_uploads):
        return backend(AnswersTheOldest, timeout, stall_timeout)


class TestDropsProgressAfterACancel(StoreContract):
    def make_backend(self, *, timeout, stall_timeout, max_uploads):
        return backend(DropsProgressAfterACancel, timeout, stall_timeout)
'''


@pytest.fixture(scope="module")
def broken_stores_failures(tmp_path_factory) -> set[str]:
    """The contract's tests that fail for two broken stores."""
    folder = tmp_path_factory.mktemp("broken")
    (folder / "test_broken.py").write_text(textwrap.dedent(BROKEN_STORES))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
         "-o", "addopts=", "test_broken.py"],
        cwd=folder, capture_output=True, text=True, timeout=110,
        env={**os.environ, "PYTHONPATH": str(EXAMPLES)})
    return {line.split()[1].split(" ")[0] for line in run.stdout.splitlines()
            if line.startswith("FAILED ")}


def test_the_suite_fails_a_store_whose_poll_answers_the_oldest_record(broken_stores_failures):
    failed = {name.split("::", 2)[2] for name in broken_stores_failures
              if "::TestAnswersTheOldest::" in name}
    assert failed == {"test_without_an_own_upload_a_poll_gets_the_newest_pending_one",
                      "test_reused_id_answers_with_the_new_upload_while_it_is_pending"}, failed


def test_the_suite_fails_a_store_that_drops_a_cancelled_uploads_progress(
        broken_stores_failures):
    failed = {name.split("::", 2)[2] for name in broken_stores_failures
              if "::TestDropsProgressAfterACancel::" in name}
    assert failed == {"test_a_cancelled_uploads_progress_goes_on_being_recorded",
                      "test_a_cancelled_upload_is_never_read_whole"}, failed
