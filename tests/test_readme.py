"""The README stays true: its test command is CI's, its settings the code's."""
import re
from dataclasses import fields
from pathlib import Path

from pyramid_upload_progress.settings import UploadProgressSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text()


def test_ci_runs_the_readmes_test_command():
    [command] = [line.strip() for line in README.splitlines()
                 if line.strip().startswith("python3 -m venv") and "pytest" in line]
    assert command in (ROOT / ".ci" / "run").read_text()


def test_the_settings_table_lists_every_setting():
    documented = set(re.findall(r"``upload_progress\.([a-z_.]+)``", README))
    names = {f.name.replace("redis_", "redis.").replace("store_factory", "store")
             for f in fields(UploadProgressSettings)}
    assert names <= documented
