"""The smoke check CI runs against `make run`, run here against the shared local server."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import E2E_KEY, ROOT


def test_the_smoke_script_passes_every_check_against_the_local_server(server):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "smoke.py"),
            f"http://127.0.0.1:{server}/api/v1",
            "--key",
            E2E_KEY,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].endswith(" passed, 0 failed")
    assert not [line for line in lines if line.startswith("FAIL")]


def test_the_smoke_script_fails_when_nothing_answers():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "smoke.py"),
            "http://127.0.0.1:9/api/v1",
            "--key",
            "k",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    last = result.stdout.splitlines()[-1]
    assert last.endswith(" failed")
    assert int(last.split(", ")[1].split()[0]) > 0, last
