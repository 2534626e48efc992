"""Two directives and a check that keep the documentation true to the code.

``.. upload-progress-settings::`` writes the settings, one entry each, from
:data:`pyramid_upload_progress.settings.SETTINGS`: names, order and
defaults come from the code, the meanings from the directive's content (a
setting's name, then its meaning indented under it). A setting of the code
without a meaning, or a meaning of no setting, fails the build.

``.. if-importable:: dotted.module`` renders its content when the module
imports, and otherwise a note saying that it does not here: the API of a
store whose library (redis-py) is not installed.

Every Python example runs: a Python code block must be a ``testcode`` or
``doctest`` block (``-b doctest`` runs it), or a ``literalinclude`` of a
file under ``docs/examples/`` or ``tests/`` (the test suite imports it). Any
other Python block is a warning naming it, which ``-W`` makes an error.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from pyramid_upload_progress.settings import INCLUDE_TIME, PREFIX, SETTINGS


def shown(default: object) -> str:
    """A default as the settings page shows it: as one would write it in an .ini."""
    if default is None:
        return "(none)"
    if isinstance(default, bool):
        return f"``{str(default).lower()}``"
    if isinstance(default, float):
        return f"``{default:g}``"
    return f"``{default}``"


class SettingsTable(SphinxDirective):
    has_content = True

    def meanings(self) -> dict[str, list[str]]:
        meanings: dict[str, list[str]] = {}
        lines: list[str] | None = None
        for line in self.content:
            if line and not line[0].isspace():
                lines = meanings.setdefault(line.strip(), [])
            elif lines is not None:
                lines.append(line.strip())
            elif line.strip():
                raise self.error(f"a meaning before any setting name: {line!r}")
        return meanings

    def run(self) -> list[nodes.Node]:
        meanings = self.meanings()
        names = [setting.name for setting in SETTINGS]
        if missing := [name for name in names if name not in meanings]:
            raise self.error(f"settings without a meaning: {', '.join(missing)}")
        if unknown := sorted(set(meanings) - set(names)):
            raise self.error(f"meanings of no setting: {', '.join(unknown)}")
        rows: list[str] = []
        for setting in SETTINGS:
            meaning = list(meanings[setting.name])
            while meaning and not meaning[-1]:
                meaning.pop()
            if setting.name in INCLUDE_TIME:
                meaning += ["", "Read when ``config.include`` is called (it places routes)."]
            rows += [f"``{PREFIX}{setting.name}`` — default {shown(setting.default)}",
                     *(f"   {line}" if line else "" for line in meaning), ""]
        container = nodes.container(classes=["upload-progress-settings"])
        self.state.nested_parse(StringList(rows, self.get_source_info()[0]),
                                self.content_offset, container)
        return [container]


class IfImportable(SphinxDirective):
    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        module = self.arguments[0]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            note = nodes.note()
            self.state.nested_parse(StringList([
                f"The reference of ``{module}`` appears here in a build where it "
                f"imports; it does not in this one ({exc}).",
            ], self.get_source_info()[0]), self.content_offset, note)
            return [note]
        container = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, container)
        return container.children


PYTHON = {"python", "python3", "py", "py3", "pycon"}
RUN_BY_TESTS = ("docs/examples", "tests")  # folders of the repository that tests import
logger = logging.getLogger(__name__)


def check_python_examples(app, doctree: nodes.document) -> None:
    """Warn of each Python example that no test runs."""
    root = Path(app.srcdir).resolve().parent
    folders = [root / folder for folder in RUN_BY_TESTS]
    for block in doctree.findall(nodes.literal_block):
        if block.get("language") not in PYTHON or "testnodetype" in block:
            continue
        included = block.get("source")  # a literalinclude's file
        if included and any(Path(included).resolve().is_relative_to(f) for f in folders):
            continue
        logger.warning("a Python example that no test runs: make it a testcode or doctest "
                       "block, or literalinclude it from docs/examples/ (which a test imports)",
                       location=block)


def setup(app):
    app.add_directive("upload-progress-settings", SettingsTable)
    app.add_directive("if-importable", IfImportable)
    app.connect("doctree-read", check_python_examples)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
