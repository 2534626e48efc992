"""The public API's type hints hold: the package type-checks, and says so."""
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_ships_py_typed():
    assert files("pyramid_upload_progress").joinpath("py.typed").is_file()


def test_the_package_type_checks():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT,
                            capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
