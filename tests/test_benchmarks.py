"""The benchmark script keeps running: ``benchmarks/run.py --quick`` prints
its table with every row (figures are not judged here: a missed target is
a finding, not a failure)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("1a", "1b", "1c", "2a", "2b", "3a", "3b", "4a", "4b", "5a", "5b", "6", "7a", "7b")

pytestmark = pytest.mark.e2e


def run_quick(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def quick_table() -> str:
    return run_quick()


def test_quick_run_prints_every_row_with_a_result(quick_table):
    lines = quick_table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("row "))
    printed = {}
    for line in lines[header + 2:]:
        if not line.strip():
            break
        printed[line.split()[0]] = line
    assert set(ROWS) <= set(printed), quick_table
    for row in set(ROWS) - {"3b"}:  # 3b says so where nginx is missing
        assert re.search(r"\b(met|MISSED|MISSED \(within A/A noise\))$", printed[row]), printed[row]


def test_a_store_the_addon_rejects_is_skipped_with_a_note():
    # Not part of this release yet: skipped. Once it is, its rows appear.
    table = run_quick("--only", "4", "--stores", "sqlite")
    assert ("skipped: the add-on rejects the setting: upload_progress.store" in table
            or "report listing, sqlite store" in table), table


def test_paste_progress_is_the_peer_in_process(quick_table):
    row_1a = next(line for line in quick_table.splitlines() if line.startswith("1a "))
    assert re.search(r"\d+\.\d{3}\s+\d+\.\d{3}", row_1a), row_1a  # both ratios
    assert "paste crashed: TypeError" in quick_table  # readline(size), row 1c
