"""The documentation builds without a warning, its references resolve, and
its Python examples run: the Sphinx builds of ``docs/``, run into a
temporary folder. Without Sphinx these tests are skipped, except in CI
(``CI`` set), where that is a failure."""
import os
import subprocess
import re
import sys
from pathlib import Path

import pytest

from pyramid_upload_progress.settings import PREFIX, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.fixture(scope="module", autouse=True)
def sphinx_installed():
    try:
        import repoze.sphinx.autointerface  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as exc:
        message = f"Sphinx is not installed ({exc}): pip install -e '.[docs]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def sphinx_build(builder: str, source: Path, out: Path) -> subprocess.CompletedProcess:
    """``sphinx-build -W -n``: a warning, an unresolved reference included,
    fails the build."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q",
         "-b", builder, str(source), str(out)],
        capture_output=True, text=True, timeout=120)


def test_the_html_builds_without_a_warning(tmp_path):
    build = sphinx_build("html", DOCS, tmp_path)
    assert build.returncode == 0, build.stderr + build.stdout
    settings = (tmp_path / "settings.html").read_text()
    assert all(f"{PREFIX}{setting.name}" in settings for setting in SETTINGS)
    assert "MappingUploadProgressStore" in (tmp_path / "custom-store.html").read_text()


def test_the_python_examples_run(tmp_path):
    build = sphinx_build("doctest", DOCS, tmp_path)
    assert build.returncode == 0, build.stderr + build.stdout
    assert " 0 failures in tests" in (tmp_path / "output.txt").read_text()


def test_the_settings_page_fails_on_drift_and_a_missing_store_shows_a_note(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        "extensions = ['upload_progress_docs']\n")
    meanings = "".join(f"   {setting.name}\n      The meaning.\n"
                       for setting in SETTINGS if setting.name != "client")
    (source / "index.rst").write_text(
        "Drift\n=====\n\n.. upload-progress-settings::\n\n" + meanings
        + "\n.. if-importable:: json\n\n   IMPORTED-MARK\n"
        + "\n.. if-importable:: no_such_module_of_ours\n\n   NOT-SHOWN-MARK\n")
    build = sphinx_build("html", source, tmp_path / "html")
    assert build.returncode != 0
    assert "settings without a meaning: client" in build.stderr
    page = (tmp_path / "html" / "index.html").read_text()
    assert "IMPORTED-MARK" in page
    assert "NOT-SHOWN-MARK" not in page
    assert "no_such_module_of_ours" in page and "does not in this one" in page


def test_a_python_example_that_no_test_runs_fails_the_build(tmp_path):
    source = tmp_path / "docs"
    (source / "examples").mkdir(parents=True)
    (source / "examples" / "imported.py").write_text("ANSWER = 42\n")
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        "extensions = ['sphinx.ext.doctest', 'upload_progress_docs']\n")
    (source / "index.rst").write_text(
        "Examples\n========\n\n"
        ".. testcode::\n\n   print('run by -b doctest')\n\n"
        ".. testoutput::\n\n   run by -b doctest\n\n"
        ".. doctest::\n\n   >>> 6 * 7\n   42\n\n"
        ".. literalinclude:: examples/imported.py\n   :language: python\n\n"
        ".. code-block:: javascript\n\n   upload(url, body);\n\n"
        ".. code-block:: python\n\n   new_random_token()  # never run\n")
    build = sphinx_build("html", source, tmp_path / "html")
    assert build.returncode != 0
    [warning] = [line for line in build.stderr.splitlines() if "WARNING" in line]
    assert "index.rst:24: WARNING: a Python example that no test runs" in warning
    fixed = (source / "index.rst").read_text().replace(".. code-block:: python", ".. testcode::")
    (source / "index.rst").write_text(fixed)
    assert sphinx_build("html", source, tmp_path / "fixed").returncode == 0


def test_every_example_file_is_imported_by_a_test():
    tests = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    for example in (DOCS / "examples").glob("*.py"):
        assert f"from {example.stem} import" in tests or f"import {example.stem}" in tests, example


def test_the_complete_page_example_serves_its_page_and_takes_an_upload():
    import webtest
    sys.path.insert(0, str(DOCS / "examples"))
    try:
        from upload_page import main
    finally:
        sys.path.remove(str(DOCS / "examples"))
    app = webtest.TestApp(main({}))
    page = app.get("/").text
    client_url = re.search(r"import \{ upload \} from '(http://localhost(/upload-progress/static/"
                           r"upload-progress\.js\?v=\w+))';", page)
    assert client_url, page
    assert b"upload," in app.get(client_url.group(2)).body  # what the ES module exports
    assert app.post("/upload?X-Progress-ID=page-1", b"x" * 200_000).json == {"received": 200_000}
    upload = app.get("/upload-progress?X-Progress-ID=page-1").json
    assert (upload["state"], upload["received"]) == ("done", 200_000)


def test_the_quick_start_changes_two_lines_of_the_starters_ini_and_keeps_port_6543():
    quickstart = (DOCS / "quickstart.rst").read_text()
    diff = quickstart.split(".. code-block:: diff", 1)[1].split("\n\n", 2)[1]
    changed = [line.strip() for line in diff.splitlines()
               if line.strip()[:1] in ("+", "-") and not line.strip().startswith(("+++", "---"))]
    assert changed == ["+    pyramid_upload_progress", "-use = egg:waitress#main",
                       "+use = egg:pyramid_upload_progress#waitress"]
    assert "listen = localhost:6543" in diff
    assert "    bind = localhost:6543\n    worker_class = gthread" in quickstart
    assert "pip install -e ." in quickstart and "Windows" in quickstart
