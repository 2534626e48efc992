"""The release as people will install it: the sdist and the wheel built
by ``python -m build``, checked by ``twine check``; the wheel installed in
a fresh virtual environment serving an app over a real socket; the sdist
unpacked as a fresh tree, whose tests collect and whose docs build with the
README's command.

Building needs setuptools from a package index (build isolation), as
``pip install -e .`` does.
"""
from __future__ import annotations

import email
import json
import shlex
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.e2e.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pyramid_upload_progress"
README = (ROOT / "README.rst").read_text()

pytestmark = pytest.mark.timeout(600)


def run(*argv, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(map(str, argv))}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    build = run(sys.executable, "-m", "build", "--outdir", str(out), str(ROOT))
    assert "would be ignored" not in build.stdout + build.stderr
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def unpacked_sdist(dist, tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("sdist")
    with tarfile.open(dist["sdist"]) as archive:
        archive.extractall(where, filter="data")
    [tree] = where.iterdir()
    return tree


def test_twine_check_passes(dist):
    check = run(sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"])
    assert check.stdout.count("PASSED") == 2, check.stdout


def test_the_wheel_holds_the_package_with_its_client_lua_script_and_py_typed(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = {name for name in wheel.namelist() if not name.startswith(f"{PACKAGE}-")}
    source = {path.relative_to(ROOT).as_posix() for path in (ROOT / PACKAGE).rglob("*")
              if path.is_file() and "__pycache__" not in path.parts}
    assert names == source
    assert {f"{PACKAGE}/static/upload-progress.js", f"{PACKAGE}/stores/redis.lua",
            f"{PACKAGE}/py.typed"} <= names


def test_the_metadata_says_license_python_versions_and_renders_the_readme(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(wheel.read(name))
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata["Author"]
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers  # what CI tests
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert metadata["Description-Content-Type"] == "text/x-rst"
    assert README.splitlines()[0] in metadata.get_payload()


APP = """
import sys, wsgiref.simple_server
import pyramid_upload_progress
from pyramid.config import Configurator
from pyramid.response import Response

def receive(request):
    return Response(json={'received': len(request.body)})

with Configurator() as config:
    config.include('pyramid_upload_progress')
    config.add_route('upload', '/upload')
    config.add_view(receive, route_name='upload')
    app = config.make_wsgi_app()
server = wsgiref.simple_server.make_server('127.0.0.1', int(sys.argv[1]), app)
print(pyramid_upload_progress.__file__, flush=True)  # listening
server.timeout = 30
for _ in range(4):  # the requests of the test, then exit
    server.handle_request()
"""


def test_an_app_served_from_the_installed_wheel_serves_the_client_and_tracks(dist, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", dist["wheel"])
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    server = subprocess.Popen([python, "app.py", str(port)], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        installed = server.stdout.readline().strip()
        assert installed.startswith(str(venv)), installed  # the wheel's, not the checkout's
        base = f"http://127.0.0.1:{port}"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"{base}/upload-progress/static/upload-progress.js",
                         timeout=10) as client:
            assert b"export const {" in client.read()  # the ES module's face
        with direct.open(f"{base}/upload-progress/static/upload-progress.global.js",
                         timeout=10) as client:
            assert b"function upload(" in client.read()  # the client itself
        upload = urllib.request.Request(f"{base}/upload?X-Progress-ID=wheel-1",
                                        data=b"x" * 300_000, method="POST")
        with direct.open(upload, timeout=10) as answer:
            assert json.load(answer) == {"received": 300_000}
        with direct.open(f"{base}/upload-progress?X-Progress-ID=wheel-1", timeout=10) as poll:
            record = json.load(poll)
        assert (record["state"], record["received"]) == ("done", 300_000), record
    finally:
        server.kill()
        server.communicate(timeout=10)


def test_the_sdist_holds_every_test_helper_and_its_tests_run_there(unpacked_sdist):
    for needed in ("tests/__init__.py", "tests/stores.py", "tests/apps.py", "tests/conftest.py",
                   "tests/e2e/servers.py", "docs/conf.py", "demo/development.ini",
                   "benchmarks/run.py", ".ci/run"):
        assert (unpacked_sdist / needed).is_file(), needed
    collected = run(sys.executable, "-m", "pytest", "--collect-only", "-q",
                    "-p", "no:cacheprovider", cwd=unpacked_sdist)
    assert "error" not in collected.stdout.lower().splitlines()[-1], collected.stdout
    run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "tests/test_readme.py", "tests/test_record.py", "tests/test_demo.py",
        "-k", "not loopback", cwd=unpacked_sdist)


def test_the_readmes_docs_command_builds_the_docs_in_a_fresh_tree(unpacked_sdist):
    [command] = [line.strip() for line in README.splitlines() if "sphinx-build" in line]
    assert command.startswith("python3 -m venv .venv && ")
    run("bash", "-c", command, cwd=unpacked_sdist, timeout=600)
    assert "pyramid_upload_progress" in (
        unpacked_sdist / "docs" / "_build" / "html" / "index.html").read_text()
