"""The smoke check CI runs against `make run`, run here against the shared local server."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import ROOT


def test_the_smoke_script_passes_every_check_against_the_local_server(server):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "smoke.py"), f"http://127.0.0.1:{server}/api/v1"],
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
        [sys.executable, str(ROOT / "scripts" / "smoke.py"), "http://127.0.0.1:9/api/v1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].endswith(" failed")
    assert "0 failed" not in result.stdout.splitlines()[-1]
