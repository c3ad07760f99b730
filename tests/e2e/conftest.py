"""The make-run server as a real process, shared by the end-to-end tests."""

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


@pytest.fixture(scope="session")
def banner(server: int) -> str:
    return BANNER[0]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
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
            str(tmp_path_factory.mktemp("state")),
        ],
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
