"""An environment mod_wsgi's daemon can run the test apps from.

``mod_wsgi-express`` will not run an app as root: started by root, its
daemon runs as ``nobody:nogroup`` (``DAEMON_USER``), who must be able to
read the interpreter, the installed packages and the app. A developer's
virtual environment, run as that developer, qualifies; under root it often
does not (this project's CI image has its Python under ``/root``, mode 700).

``environment()`` then builds one the daemon can read, under ``/var/tmp``
(mode 0755), from Debian's ``/usr/bin/python3``: a virtual environment with
mod_wsgi compiled against that Python (once: keyed by a hash of that Python
and the requirement), and beside it a directory with the project installed
non-editably, its dependencies, and copies of the app modules the tests
serve (keyed by a hash of their files, so a change to the add-on costs a
``pip install``, not a compile).
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.servers import REPO_ROOT

#: The user and group the daemon runs the app as when started by root.
DAEMON_USER = ("nobody", "nogroup")
#: The Python a built environment is made from: Debian's, readable by all.
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: Where built environments are kept between runs.
CACHE = Path("/var/tmp")
#: The modules the mod_wsgi rows serve (each has an ``app``).
APP_MODULES = ("tests.plain_app",)
#: What ``pip install`` of the checkout installs: the code and its packaging.
PROJECT_FILES = ("pyramid_upload_progress", "pyproject.toml", "setup.cfg", "MANIFEST.in")
#: Compiled against the Python that runs it, never from a wheel made for another.
MOD_WSGI = ["--no-cache-dir", "--no-binary", "mod_wsgi", "mod_wsgi"]
#: Bound on one build step (compiling mod_wsgi takes about a minute).
BUILD_TIMEOUT = 480


@dataclass(frozen=True)
class Environment:
    """How to serve the apps: the ``mod_wsgi-express`` to run and the
    directory the app modules (and what they import) load from."""

    express: Path
    python_path: Path


def environment() -> Environment:
    """The current virtual environment if the daemon can serve the apps
    from it, else a built one (made now unless cached)."""
    return current() or _built()


def missing() -> str | None:
    """Why neither the current environment nor a built one can serve the
    apps here (what to install), or None."""
    if current() is not None:
        return None
    why = (f"mod_wsgi cannot serve the apps from {Path(sys.executable).parent} (no "
           f"mod_wsgi-express, or {_daemon_name()} cannot read it), and an environment "
           f"built from {SYSTEM_PYTHON} needs ")
    if not SYSTEM_PYTHON.exists():
        return why + "it (apt-get install python3 python3-venv python3-dev)"
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", _PACKAGES_MISSING], capture_output=True, text=True,
        timeout=30, check=True)
    packages = probe.stdout.split()
    if shutil.which("apxs") is None:
        packages += ["apache2-bin", "apache2-dev"]
    else:
        sbindir, progname = _apxs("SBINDIR", "PROGNAME")
        if not (Path(sbindir) / progname).exists():
            packages.append("apache2-bin")
    if packages:
        return why + f"apt-get install {' '.join(packages)}"
    return None


_PACKAGES_MISSING = """\
import importlib.util, os, sysconfig
if importlib.util.find_spec("ensurepip") is None:
    print("python3-venv")
if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
    print("python3-dev")
"""


@functools.cache
def current() -> Environment | None:
    """This virtual environment, if it has ``mod_wsgi-express`` and the
    daemon's user can import the apps with its Python."""
    express = Path(sys.executable).parent / "mod_wsgi-express"
    if not express.exists() or _as_daemon(sys.executable, REPO_ROOT).returncode != 0:
        return None
    return Environment(express, REPO_ROOT)


@functools.cache
def _built() -> Environment:
    """The built environment, made unless a finished one is cached."""
    python = SYSTEM_PYTHON.resolve()
    # Per user too: one user cannot use (or trust) another's.
    key = _digest(str(os.geteuid()), str(python), *MOD_WSGI)
    root = CACHE / f"pyramid_upload_progress-mod_wsgi-{key}"
    root.mkdir(exist_ok=True)
    if root.lstat().st_uid != os.geteuid():
        raise RuntimeError(f"{root} belongs to another user: remove it")
    os.chmod(root, 0o755)
    venv = _cached(root / "venv", lambda path: _make_venv(python, path))
    sources = [REPO_ROOT / name for name in PROJECT_FILES] + _app_files()
    apps = _cached(root / f"apps-{_digest(*sources)}", lambda path: _install_apps(venv, path))
    check = _as_daemon(str(venv / "bin" / "python"), apps)
    if check.returncode != 0:
        raise RuntimeError(f"{_daemon_name()} cannot import {', '.join(APP_MODULES)} from "
                           f"{apps} with {venv}:\n{check.stderr}")
    return Environment(venv / "bin" / "mod_wsgi-express", apps)


def _make_venv(python: Path, path: Path) -> None:
    """A virtual environment of ``python`` with mod_wsgi compiled for it."""
    _step([str(python), "-m", "venv", str(path)])
    _step([str(path / "bin" / "python"), "-m", "pip", "install", "-q", *MOD_WSGI])


def _install_apps(venv: Path, path: Path) -> None:
    """The project (copied, not editable) and its dependencies, plus the
    app modules, in ``path``."""
    _step([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--target", str(path),
           str(REPO_ROOT)])
    for source in _app_files():
        target = path / source.relative_to(REPO_ROOT)
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)


def _app_files() -> list[Path]:
    """The app modules' files and their packages' ``__init__.py``."""
    files: list[Path] = []
    for module in APP_MODULES:
        *packages, name = module.split(".")
        for depth in range(1, len(packages) + 1):
            files.append(REPO_ROOT.joinpath(*packages[:depth], "__init__.py"))
        files.append(REPO_ROOT.joinpath(*packages, f"{name}.py"))
    return list(dict.fromkeys(files))


def _cached(path: Path, build: Callable[[Path], None]) -> Path:
    """``path``, built by ``build(path)`` unless a finished build is there.
    A lock beside it lets one process build at a time; a build left half
    made (no ``.complete`` marker) is made again."""
    done = path / ".complete"
    with open(f"{path}.lock", "w") as lock, _umask(0o022):
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            build(path)
            done.touch()
    return path


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    """Files made meanwhile are readable by all, whatever the caller's umask."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _step(argv: list[str]) -> None:
    """Run one build step; fail with its output if it fails."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")


def _as_daemon(python: str, python_path: Path) -> subprocess.CompletedProcess[str]:
    """Import the app modules with ``python`` from ``python_path`` as the
    daemon's user."""
    argv = [python, "-c", "; ".join(f"import {module}" for module in APP_MODULES)]
    if os.geteuid() == 0:
        argv = ["setpriv", f"--reuid={DAEMON_USER[0]}", f"--regid={DAEMON_USER[1]}",
                "--clear-groups", "--", *argv]
    env = {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": str(python_path)}
    return subprocess.run(argv, cwd="/", env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def _daemon_name() -> str:
    """Who the daemon runs the app as here."""
    return DAEMON_USER[0] if os.geteuid() == 0 else "this user"


def _apxs(*names: str) -> list[str]:
    """Apache's build settings, as its ``apxs -q`` gives them."""
    out = subprocess.run(["apxs", "-q", *names], capture_output=True, text=True, timeout=30,
                         check=True)
    return out.stdout.strip().split(";;")


def _digest(*parts: str | Path) -> str:
    """A short hash of strings, and of files and trees of the checkout by
    their paths in it and their contents."""
    digest = hashlib.sha256()
    for part in parts:
        files = sorted(part.rglob("*")) if isinstance(part, Path) and part.is_dir() else [part]
        for item in files:
            if isinstance(item, str):
                digest.update(item.encode() + b"\0")
            elif item.is_file() and "__pycache__" not in item.parts:
                digest.update(str(item.relative_to(REPO_ROOT)).encode() + b"\0")
                digest.update(item.read_bytes())
    return digest.hexdigest()[:16]
