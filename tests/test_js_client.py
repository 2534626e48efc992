"""The JavaScript client as front-end developers take it: its own tests
under node's test runner, its npm package (``npm pack``, installed from the
tarball, bundled by esbuild) and its types (``tsc --checkJs``).

node and npm come from the machine; typescript and esbuild from the npm
registry, installed once into ``.cache/npm`` (never committed). Without
them these tests are skipped, and under ``CI`` they fail.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "pyramid_upload_progress" / "static"
NPM_PREFIX = ROOT / ".cache" / "npm"
NPM_TOOLS = {"typescript": "5.9.3", "esbuild": "0.28.2"}
PACKAGE = "pyramid-upload-progress"
TIMEOUT = 300  # seconds any one command may take


def unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        unavailable(f"{program} is needed (Node.js 20 or later: apt-get install nodejs npm)")
    return path


def run(*command, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert result.returncode == 0, f"{command}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return result


def npm_semver(version: str) -> str:
    """The npm version of a Python version: 0.1.0.dev0 -> 0.1.0-dev.0."""
    parsed = Version(version)
    release = ".".join(str(n) for n in (parsed.release + (0, 0))[:3])
    pre = [f"{parsed.pre[0]}.{parsed.pre[1]}"] if parsed.pre else []
    dev = [f"dev.{parsed.dev}"] if parsed.dev is not None else []
    tail = ".".join(pre + dev)
    return f"{release}-{tail}" if tail else release


@pytest.fixture(scope="module")
def node() -> str:
    path = require("node")
    major = int(run(path, "-p", "process.versions.node", cwd=ROOT).stdout.split(".")[0])
    if major < 20:
        unavailable(f"the client's tests need Node.js 20 or later (mock timers), not {major}")
    return path


@pytest.fixture(scope="module")
def npm_tools(node) -> Path:
    """The bin directory of typescript and esbuild, installed if need be."""
    npm = require("npm")
    bin_dir = NPM_PREFIX / "node_modules" / ".bin"
    wanted = [f"{name}@{version}" for name, version in NPM_TOOLS.items()]
    installed = {name: NPM_PREFIX / "node_modules" / name / "package.json" for name in NPM_TOOLS}
    if any(not path.exists() or json.loads(path.read_text())["version"] != NPM_TOOLS[name]
           for name, path in installed.items()):
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        result = run(npm, "install", "--prefix", str(NPM_PREFIX), "--no-save", "--no-audit",
                     "--no-fund", *wanted, cwd=ROOT, check=False)
        if result.returncode:
            unavailable(f"npm install {' '.join(wanted)} failed:\n{result.stderr[-2000:]}")
    return bin_dir


@pytest.fixture(scope="module")
def tarball(node, tmp_path_factory) -> Path:
    """The client's npm package, made by ``npm pack``."""
    packed = tmp_path_factory.mktemp("packed")
    run(require("npm"), "pack", "--pack-destination", str(packed), cwd=STATIC)
    [made] = packed.iterdir()
    return made


@pytest.fixture(scope="module")
def project(tarball, tmp_path_factory) -> Path:
    """A front-end project with the client installed from its npm tarball."""
    npm = require("npm")
    project = tmp_path_factory.mktemp("app")
    (project / "package.json").write_text(json.dumps({"name": "app", "private": True,
                                                      "type": "module"}))
    run(npm, "install", "--offline", "--no-audit", "--no-fund", str(tarball), cwd=project)
    return project


def test_the_client_passes_its_node_tests(node):
    result = run(node, "--test", "tests/js/", cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert re.search(r"^# pass [1-9]", result.stdout, re.M), result.stdout[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, re.M)


def test_package_json_carries_the_python_version_and_license():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    package = json.loads((STATIC / "package.json").read_text())
    assert package["version"] == npm_semver(setup["metadata"]["version"])
    assert package["license"] == setup["metadata"]["license_expression"]
    assert npm_semver("1.2.0") == "1.2.0" and npm_semver("1.2rc1") == "1.2.0-rc.1"


def test_npm_pack_makes_a_tarball_of_the_client(tarball):
    package = json.loads((STATIC / "package.json").read_text())
    assert tarball.name == f"{PACKAGE}-{package['version']}.tgz"
    with tarfile.open(tarball) as packed:
        names = sorted(packed.getnames())
    assert names == ["package/package.json", "package/upload-progress.d.ts",
                     "package/upload-progress.global.js", "package/upload-progress.js"]


def test_the_installed_package_is_imported_and_bundled_by_esbuild(project, npm_tools, node,
                                                                  tmp_path):
    (project / "entry.js").write_text(
        "import { upload, watch, newUploadId, UploadError } from 'pyramid-upload-progress';\n"
        "console.log(JSON.stringify({upload: typeof upload, watch: typeof watch,\n"
        "  id: newUploadId(), error: new UploadError('ReportError', 'refused').name}));\n")
    run(str(npm_tools / "esbuild"), "entry.js", "--bundle", "--format=esm",
        "--outfile=bundle.mjs", cwd=project)
    alone = tmp_path / "bundle.mjs"  # away from node_modules: the bundle holds the client
    shutil.copy(project / "bundle.mjs", alone)
    answer = json.loads(run(node, str(alone), cwd=tmp_path).stdout)
    assert answer["upload"] == answer["watch"] == "function"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", answer["id"])
    assert answer["error"] == "ReportError"


GOOD_USE = """// @ts-check
import { upload, watch, watchUploads } from 'pyramid-upload-progress';

const sending = upload('/upload', new FormData(), {
  headers: { 'X-CSRF-Token': 'token' },
  credentials: 'include',
  progressUrl: 'https://progress.example/upload-progress',
  onProgress(up, transfer) {
    const percent = up.received ? up.percent : transfer.percent;
    console.log(percent?.toFixed(1), up.stage?.name, up.files?.[0]?.filename, transfer.buffering);
  },
});
sending.done.then((response) => response.status, (error) => error.upload?.status);
watch(sending.id, { onProgress: (up) => up.received }).done.catch((error) => error.status);
watchUploads((uploads) => uploads.map((up) => up.state), { interval: 700 }).stop();
"""
CLASSIC_USE = """// @ts-check
/// <reference types="pyramid-upload-progress" />
UploadProgress.upload('/upload', new Blob(['x']), { interval: 300 }).cancel();
"""


def tsc(npm_tools, project, name, source):
    (project / name).write_text(source)
    return run(str(npm_tools / "tsc"), "--noEmit", "--allowJs", "--checkJs", "--strict",
               "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler",
               "--lib", "es2022,dom", name, cwd=project, check=False)


@pytest.mark.parametrize("name,source", [("good.js", GOOD_USE), ("classic.js", CLASSIC_USE)])
def test_tsc_checkjs_accepts_the_documented_use(npm_tools, project, name, source):
    result = tsc(npm_tools, project, name, source)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("mistake,error", [
    ("onProgress(up, transfer)", "'onProgres' does not exist"),
    ("credentials: 'include'", "not assignable to type 'RequestCredentials"),
    ("console.log(percent?.toFixed(1)", "'toFixd' does not exist"),
])
def test_tsc_checkjs_refuses_a_misspelt_option_or_field(npm_tools, project, mistake, error):
    wrong = {"onProgress(up, transfer)": "onProgres(up, transfer)",
             "credentials: 'include'": "credentials: 'always'",
             "console.log(percent?.toFixed(1)": "console.log(percent?.toFixd(1)"}[mistake]
    assert mistake in GOOD_USE
    result = tsc(npm_tools, project, "bad.js", GOOD_USE.replace(mistake, wrong))
    assert result.returncode != 0
    assert error in result.stdout, result.stdout
