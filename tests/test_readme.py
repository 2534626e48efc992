"""The README stays true: its test command is CI's, its settings the code's."""
import re
from pathlib import Path

import docutils.core
import pytest

from pyramid_upload_progress.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text()


def test_ci_runs_the_readmes_test_command():
    [command] = [line.strip() for line in README.splitlines()
                 if line.strip().startswith("python3 -m venv") and "pytest" in line]
    assert command in (ROOT / ".ci" / "run").read_text()


def shown(default):
    """A default as the README's table shows it."""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_the_settings_table_documents_the_setting_with_its_default(setting):
    row = re.search(rf"^``upload_progress\.{re.escape(setting.name)}``\s+(.*)$",
                    README, re.MULTILINE)
    assert row, f"upload_progress.{setting.name} is not in the README's table"
    if setting.default is not None and setting.name != "owner":
        assert row.group(1).startswith(f"``{shown(setting.default)}``")


@pytest.mark.parametrize("name", ["README.rst", "CHANGES.rst"])
def test_the_text_is_valid_restructuredtext(name):
    docutils.core.publish_string((ROOT / name).read_text(), writer_name="null",
                                 settings_overrides={"halt_level": 2, "report_level": 5})
