"""The public API's type hints hold: the package type-checks, and says so;
mypy checks a store against the store Protocol, and rejects a broken one."""
import os
import subprocess
import sys
import textwrap
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STORES = '''
from mapping_store import MappingUploadProgressStore

from pyramid_upload_progress.interfaces import LiveProgress, UploadProgressStore
from pyramid_upload_progress.record import FileProgress, UploadRecord
from pyramid_upload_progress.stores.memory import MemoryUploadProgressStore
from pyramid_upload_progress.stores.redis import RedisUploadProgressStore
from pyramid_upload_progress.stores.sqlite import SQLiteUploadProgressStore
from pyramid_upload_progress.testing import Progress


def stores(memory: MemoryUploadProgressStore, sqlite: SQLiteUploadProgressStore,
           redis: RedisUploadProgressStore,
           example: MappingUploadProgressStore) -> list[UploadProgressStore]:
    return [memory, sqlite, redis, example]


live: LiveProgress = Progress()


class NoCancel:
    """Every method of a store but ``cancel``."""

    throttled = True

    def start(self, upload_id: str | None, path: str, size: int | None,
              progress: LiveProgress) -> str | None:
        raise NotImplementedError

    def update(self, key: str, received: int, files: list[FileProgress] | None,
               ended: bool = False) -> bool:
        raise NotImplementedError

    def set_owner(self, key: str, owner: str | None) -> None:
        raise NotImplementedError

    def stage(self, key: str, name: str, done: int | None, total: int | None) -> None:
        raise NotImplementedError

    def finish(self, key: str, received: int, files: list[FileProgress] | None,
               status: int | None, failed: bool, cancelled: bool) -> None:
        raise NotImplementedError

    def discard(self, key: str) -> None:
        raise NotImplementedError

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        raise NotImplementedError

    def list(self, owner: str) -> list[UploadRecord]:
        raise NotImplementedError


class UpdateWithoutEnded(MemoryUploadProgressStore):
    def update(self, key: str, received: int,  # type: ignore[override]
               files: list[FileProgress] | None) -> bool:
        return False


missing: UploadProgressStore = NoCancel()  # MISSING
old: UploadProgressStore = UpdateWithoutEnded()  # OLD
'''


def test_the_package_ships_py_typed():
    assert files("pyramid_upload_progress").joinpath("py.typed").is_file()


def test_the_package_type_checks():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT,
                            capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_checks_stores_against_the_protocol(tmp_path):
    """The project's stores and the docs' example pass; a store without
    ``cancel``, or with an ``update`` of before ``ended``, is rejected."""
    checked = tmp_path / "check_stores.py"
    checked.write_text(textwrap.dedent(STORES))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", str(checked)], cwd=ROOT,
        capture_output=True, text=True, timeout=110,
        env={**os.environ, "MYPYPATH": str(ROOT / "docs" / "examples")})
    lines = checked.read_text().splitlines()
    expected = [n for n, line in enumerate(lines, 1) if line.endswith(("# MISSING", "# OLD"))]
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert [int(line.split(":")[1]) for line in errors] == expected, result.stdout
    assert f'{expected[0]}: note: "NoCancel" is missing following "UploadProgressStore" ' \
        f"protocol member:\n{checked}:{expected[0]}: note:     cancel\n" in result.stdout
    assert "Got:\n" in result.stdout and "def update(self, key: str, received: int, " \
        "files: list[FileProgress] | None) -> bool\n" in result.stdout, result.stdout
