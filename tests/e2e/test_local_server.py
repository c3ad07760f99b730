"""`make run`'s server, started as a real process: the API at http://127.0.0.1:PORT/api/v1."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BANNER: list[str] = []


@pytest.fixture(scope="module")
def banner(server: int) -> str:
    return BANNER[0]


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NEXUS_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.run", "--port", str(port), "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    # The server prints its banner once the embedded AWS and the API are both listening.
    output = []
    for line in proc.stdout:
        output.append(line)
        if "NEXUS API on" in line:
            BANNER.append(line.strip())
            break
    else:
        raise RuntimeError("the local server exited:\n" + "".join(output))
    # Keep reading what it prints, so a full pipe never blocks the server.
    stdout = proc.stdout
    drain = threading.Thread(target=lambda: [None for _ in stdout], daemon=True)
    drain.start()
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    drain.join(timeout=5)
    stdout.close()


@pytest.fixture
def conn(server: int) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    yield connection
    connection.close()


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    payload = None if body is None else json.dumps(body)
    conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    return response.status, (json.loads(raw) if raw else None)


def test_the_api_is_served_under_api_v1_with_keep_alive(conn):
    status, job = request(
        conn,
        "POST",
        "/api/v1/jobs/",
        {"name": "e2e", "job_type": "interval", "interval_seconds": 60, "task_name": "nexus.echo"},
    )
    assert status == 201, job
    assert request(conn, "GET", f"/api/v1/jobs/{job['id']}") == (200, job)
    status, listed = request(conn, "GET", "/api/v1/jobs?limit=5")
    assert status == 200 and job["id"] in [j["id"] for j in listed]
    status, started = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute", {"task_args": [1]})
    assert status == 200, started
    status, runs = request(conn, "GET", f"/api/v1/jobs/{job['id']}/executions")
    assert status == 200 and [r["task_id"] for r in runs] == [started["task_id"]]
    status, stats = request(conn, "GET", "/api/v1/jobs/stats/overview")
    assert status == 200 and stats["total_jobs"] >= 1
    assert request(conn, "DELETE", f"/api/v1/jobs/{job['id']}") == (204, None)
    assert request(conn, "GET", f"/api/v1/jobs/{job['id']}") == (404, {"detail": "Job not found"})


def test_paths_outside_the_stage_get_api_gateways_403(conn):
    for path in ("/v1/jobs", "/jobs", "/", "/apix/v1/jobs"):
        status, body = request(conn, "GET", path)
        assert status == 403, path
        assert body == {"message": "Forbidden"}
    # The connection is still usable after a 403 that carried a body.
    status, _ = request(conn, "POST", "/nope", {"a": 1})
    assert status == 403
    assert request(conn, "GET", "/api/v1/cron/presets")[0] == 200


def test_the_embedded_aws_listens_on_loopback_only(server, banner):
    # moto's ThreadedMotoServer binds every interface unless told otherwise.
    endpoint = banner.split("embedded AWS at ")[1].rstrip(")")
    assert endpoint.startswith("http://127.0.0.1:")
