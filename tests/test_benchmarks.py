"""The benchmark scripts keep running: ``benchmarks/run.py --quick`` prints
its table with every row, ``benchmarks/big_uploads.py --quick`` its figures
(timings are not judged here: a missed target is a finding, not a
failure). Row 3's servers are checked to be measured as the table says."""
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.client import get_json, read_response

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("1a", "1b", "1c", "2a", "2b", "3a", "3b", "3c", "4a", "4b", "5a", "5b", "6", "7a", "7b")
MIB = 1024 * 1024

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # a loaded machine starts servers slowly


def run_quick(*args: str, script: str = "run.py") -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def over_socket():
    """benchmarks/over_socket.py, imported as run.py imports it."""
    sys.path[:0] = [str(ROOT / "benchmarks")]
    try:
        import over_socket
        yield over_socket
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


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


def test_row_3_prints_the_allocator_settings_and_faults_beside_cpu(quick_table):
    assert ("row 3: each case on a server of its own, started fresh with GLIBC_TUNABLES="
            "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=8388608"
            in quick_table), quick_table
    notes = dict(line.strip().split(": ", 1) for line in quick_table.splitlines()
                 if re.match(r"  3[abc]: ", line))
    for row, cases in (("3a", ("untracked", "A/A", "tracked")),
                       ("3c", ("untracked", "A/A", "tracked")),
                       ("3b", ("nginx", "nginx+addon", "nginx+module"))):
        for case in cases:
            assert re.search(rf"\b{re.escape(case)} \d+\.\d\d s( \(\d+\.\d\dx\))?, [\d,]+ faults",
                             notes[row]), notes[row]


def test_row_3_servers_start_with_the_tunables_and_are_measured_in_the_worker(over_socket, tmp_path):
    pair = over_socket.SERVER_PAIRS[0]
    with over_socket.endpoint(pair, True, over_socket.ALLOCATOR, str(tmp_path)) as end:
        environ = Path(f"/proc/{end.worker}/environ").read_bytes()
        # glibc 2.36 parses the value in place: each ':' becomes a NUL.
        settings = over_socket.MALLOC_TUNABLES.encode().split(b":")
        assert re.search(b"\0GLIBC_TUNABLES=" + b"[:\0]".join(map(re.escape, settings)) + b"\0",
                         environ), environ
        # The worker, not the master: its parent is gunicorn (the master's is not).
        parent = int(Path(f"/proc/{end.worker}/stat").read_text().rpartition(")")[2].split()[1])
        assert b"gunicorn" in Path(f"/proc/{parent}/cmdline").read_bytes()
        upload = over_socket.measure(end, [("/drain?X-Progress-ID=w1", None)], 16 * MIB)
    assert upload.cpu > 0 and upload.rss > 0  # it read 16 MiB: it ran the app


def test_row_3c_tracks_with_the_runner_while_waitress_buffers(over_socket, tmp_path):
    pair = next(pair for pair in over_socket.SERVER_PAIRS if pair.row == "3c")
    with over_socket.endpoint(pair, False, over_socket.ALLOCATOR, str(tmp_path)) as end:
        assert b"--server\0waitress\0" in Path(f"/proc/{end.worker}/cmdline").read_bytes()
    with over_socket.endpoint(pair, True, over_socket.ALLOCATOR, str(tmp_path)) as end:
        # The process measured is the server itself: waitress has no worker child.
        assert b"--server\0waitress-runner\0" in Path(f"/proc/{end.worker}/cmdline").read_bytes()
        size, sent = 8 * MIB, 2 * MIB
        with socket.create_connection(("127.0.0.1", end.port), timeout=30) as sock:
            sock.sendall(f"POST /drain?X-Progress-ID=mid HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode()
                         + b"z" * sent)
            # waitress calls the app only once the whole body is in: a record
            # with 0 < received < size now is the runner's, counting as it buffers.
            seen = []

            def poll() -> bool:
                status, _, answer = get_json(
                    end.port, "/upload-progress?X-Progress-ID=mid", timeout=5)
                seen.append((status, answer.get("received"), answer.get("state")))
                return status == 200 and answer.get("received") == sent

            assert over_socket.bounded_wait(poll, 10, step=0.05), seen
            assert seen[-1][2] == "uploading", seen
            sock.sendall(b"z" * (size - sent))
            with sock.makefile("rb") as stream:
                response = read_response(stream)
        assert (response.status, response.body) == (200, str(size).encode())


def test_big_uploads_script_prints_cpu_faults_and_rss_per_case():
    output = run_quick(script="big_uploads.py")
    blocks = [block for block in output.split("\n\n") if "at once, per round:" in block]
    assert len(blocks) == 2, output  # one upload at a time, 8 at once
    for block in blocks:
        faults = {line.split("  ")[0]: int(line.split()[-5].replace(",", ""))
                  for line in block.splitlines() if line.startswith(("defaults", "tunables"))}
        assert set(faults) == {"defaults", "defaults A/A", "tunables"}, block
        # What the deployment recipe relies on: with glibc's defaults gunicorn's
        # read-ahead copies fault pages in on every read; with the tunables
        # they do not. Fault counts, not timings: here 53,000-66,000 against
        # 500-2,700 per round.
        assert faults["tunables"] * 5 < min(faults["defaults"], faults["defaults A/A"]), block
