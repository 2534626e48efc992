"""Virtual environments with one waitress version each, for the runner's e2e tests.

The ``waitress`` extra supports a range of waitress versions (``OLDEST`` to
``NEWEST``); the runner relies on waitress internals, so its end-to-end
tests run on both ends of the range. :func:`waitress_venv` makes a virtual
environment with that waitress, this project installed (editable: the
code under test is the working tree's) and the test apps' dependencies,
from the package index pip is set up for, and keeps it for later runs in
the temporary directory, under a name made of the version, this
repository's path and ``setup.cfg``'s content. A venv that cannot be made
skips the test, except under CI (``CI`` set), where it fails.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e.servers import REPO_ROOT

OLDEST = "1.4.4"
NEWEST = "3.0.2"

#: What the e2e apps need beside the project and waitress.
APP_REQUIREMENTS = ("pyramid_tm", "pyramid_retry", "transaction", "sqlalchemy",
                    "zope.sqlalchemy", "redis>=5")
BUILD_TIMEOUT = 600


def waitress_venv(version: str) -> Path:
    """The ``bin`` directory of a venv with ``waitress==version``."""
    key = hashlib.sha256(
        f"{REPO_ROOT}\n{sys.version}\n".encode() + (REPO_ROOT / "setup.cfg").read_bytes()
    ).hexdigest()[:12]
    home = Path(tempfile.gettempdir(), "pyramid_upload_progress-venvs")
    home.mkdir(exist_ok=True)
    venv = home / f"waitress-{version}-{key}"
    with open(home / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            _build(venv, version)
    return venv / "bin"


def _build(venv: Path, version: str) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=BUILD_TIMEOUT)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
             "-e", str(REPO_ROOT), f"waitress=={version}", *APP_REQUIREMENTS],
            check=True, capture_output=True, timeout=BUILD_TIMEOUT, cwd=REPO_ROOT)
        found = subprocess.run(
            [str(venv / "bin" / "python"), "-c",
             "import importlib.metadata as m; print(m.version('waitress'))"],
            check=True, capture_output=True, text=True, timeout=60).stdout.strip()
        if found != version:
            raise RuntimeError(f"the venv has waitress {found}, not {version}")
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(venv)
        detail = getattr(exc, "stderr", b"") or b""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        message = f"could not make a venv with waitress {version}: {exc}\n{detail[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    (venv / "ready").touch()
