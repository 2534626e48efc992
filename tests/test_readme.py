"""The README stays the short version, and true: its test command is CI's,
its picture and the files it names exist, and it repeats no docs page."""
import re
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
