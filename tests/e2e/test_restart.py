"""make run keeps jobs and history across a restart, in its state folder."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, free_port, request


def start(state: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NEXUS_"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.run",
            "--port",
            str(port),
            "--quiet",
            "--state-dir",
            str(state),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("State in"):
            return proc
    raise AssertionError("the server did not start")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return out


def test_jobs_and_history_survive_a_restart(tmp_path):
    port = free_port()
    first = start(tmp_path, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status, job = request(
            conn,
            "POST",
            "/api/v1/jobs",
            {
                "name": "keeps",
                "job_type": "interval",
                "interval_seconds": 86400,
                "task_name": "nexus.echo",
            },
        )
        assert status == 201
        status, started = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute")
        assert status == 200
        conn.close()
    finally:
        stop(first)
    assert (tmp_path / "nexus-local.jsonl").exists()

    second = start(tmp_path, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status, again = request(conn, "GET", f"/api/v1/jobs/{job['id']}")
        assert (status, again["name"]) == (200, "keeps")
        status, runs = request(conn, "GET", f"/api/v1/jobs/{job['id']}/executions")
        assert [r["task_id"] for r in runs] == [started["task_id"]]
        status, stats = request(conn, "GET", "/api/v1/jobs/stats/overview")
        assert stats["total_jobs"] == 1
        conn.close()
    finally:
        stop(second)
