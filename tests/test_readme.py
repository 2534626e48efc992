"""The README stays the short version, and true: its test command is CI's,
its picture and the files it names exist, it repeats no docs page, and its
client snippet moves a bar in Chromium."""
import re
import time
from pathlib import Path

import docutils.core
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_the_short_version():
    assert len(README.splitlines()) < 150


def test_the_readmes_test_command_is_ci_which_installs_debian_packages_only_as_root():
    [command] = [line.strip() for line in README.splitlines() if ".ci/run" in line
                 and line.startswith("    ")]
    assert command == "bash .ci/run"
    assert re.search(r'if command -v apt-get .* && \[ "\$\(id -u\)" = 0 \]; then', CI)
    assert "python3 -m venv .venv && .venv/bin/pip install -e '.[testing]' && " \
           ".venv/bin/python -m pytest" in CI


def test_the_picture_is_a_png_in_the_repository():
    [path] = re.findall(r"^\.\. image:: (\S+)$", README, re.MULTILINE)
    assert not path.startswith(("http:", "https:", "/"))  # renders on GitHub and in twine check
    assert (ROOT / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_every_file_the_readme_names_exists():
    named = set(re.findall(r"``((?:docs|demo|benchmarks)/[\w./-]+|[A-Z]+\.rst)``", README))
    named.discard("docs/_build/html/index.html")  # made by the docs build command
    assert {"docs/deployment.rst", "docs/quickstart.rst", "CHANGES.rst"} <= named
    assert [name for name in named if not (ROOT / name).exists()] == []


def prose(text: str) -> set[str]:
    """The sentences of a reST text's paragraphs, whitespace folded."""
    paragraphs = re.split(r"\n\s*\n", text)
    words = " ".join(p for p in paragraphs if not p.startswith((" ", ".."))).split()
    return {s for s in re.split(r"(?<=[.:;!?])\s", " ".join(words)) if len(s) >= 40}


def test_the_readme_repeats_no_docs_page():
    readme = prose(README)
    for page in (ROOT / "docs").glob("*.rst"):
        assert readme.isdisjoint(prose(page.read_text())), page.name


@pytest.mark.parametrize("name", ["README.rst", "CHANGES.rst"])
def test_the_text_is_valid_restructuredtext(name):
    docutils.core.publish_string((ROOT / name).read_text(), writer_name="null",
                                 settings_overrides={"halt_level": 2, "report_level": 5})


def readme_snippet() -> str:
    """The README's HTML client snippet, as written."""
    block = README.split(".. code-block:: html", 1)[1].split("\n\n", 2)[1]
    return "\n".join(line[4:] for line in block.splitlines())


def readme_app():
    """For gunicorn: the README's snippet at ``/``, the rest (the upload view,
    the report view, the client) from docs/examples/upload_page.py."""
    from upload_page import main

    app = main({})
    page = ("<!doctype html><meta charset='utf-8'>\n" + readme_snippet()).encode()

    def serve(environ, start_response):
        if environ["PATH_INFO"] != "/":
            return app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page]
    return serve


def test_the_readmes_client_snippet_is_ten_lines_that_move_a_bar(tmp_path):
    from tests.browser import quit_chromium, start_chromium
    from tests.e2e.servers import serve

    assert len(readme_snippet().splitlines()) == 10
    upload = tmp_path / "photo.jpg"
    upload.write_bytes(bytes(range(256)) * 12288)  # 3 MiB
    examples = str(ROOT / "docs" / "examples")
    with serve("gunicorn", "tests.test_readme:readme_app()", env={"PYTHONPATH": examples}) as server:
        session, profile = start_chromium()
        try:  # the browser sends 1 MiB a second, as the quick start's throttling does
            session.execute_cdp_cmd("Network.enable", {})
            session.execute_cdp_cmd("Network.emulateNetworkConditions", {
                "offline": False, "latency": 0, "downloadThroughput": -1,
                "uploadThroughput": 1024 * 1024})
            session.get(server.url + "/")
            session.find_element("name", "files").send_keys(str(upload))
            session.find_element("css selector", "#photos button").click()
            values, deadline = [], time.monotonic() + 20
            while (not values or values[-1] < 100) and time.monotonic() < deadline:
                values.append(session.execute_script("return document.getElementById('bar').value"))
                time.sleep(0.05)
        finally:
            quit_chromium(session, profile)
    assert values[-1] == 100, values
    rising = [value for value in values if 0 < value < 100]
    assert len(set(rising)) >= 3 and rising == sorted(rising), values
