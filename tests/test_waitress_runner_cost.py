"""The waitress runner's cost script keeps running: a small run prints its
table (figures are not judged here: speed is the benchmark's business)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_a_small_run_prints_the_runner_and_the_a_a_control():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "waitress_runner_cost.py"),
         "--size", "4", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    number = r"\s+\d+\.\d{3}"
    for label in ("plain", "runner", r"plain \(A/A\)"):
        assert re.search(rf"^{label}{number * 4}$", result.stdout, re.M), result.stdout
