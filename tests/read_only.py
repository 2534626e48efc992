"""A file made read-only for a while, as a test of a store's faults needs."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def read_only(path: str | os.PathLike[str]) -> Iterator[None]:
    """``path`` read-only inside the block, even for root (by the immutable
    attribute, ``chattr +i``; the test is skipped where that is refused)."""
    if os.geteuid() != 0:
        os.chmod(path, 0o444)
        try:
            yield
        finally:
            os.chmod(path, 0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
        pytest.skip("cannot make a file read-only for root here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
