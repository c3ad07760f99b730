"""The make-run server as a real process, shared by the end-to-end tests."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The admin key the server is started with (NEXUS_ADMIN_KEY) and `request` sends.
E2E_KEY = "e2e-admin-key-0123456789abcdef"


BANNER: list[str] = []
SERVERS: list[LocalServer] = []


@pytest.fixture(scope="session")
def banner(server: int) -> str:
    return BANNER[0]


class LocalServer:
    """`python -m local.run` as a child process, keeping its state in `state`.

    It listens on ports the system picks as it binds them (`--port 0`), read back from its
    banner into `port`: a port picked free beforehand can be taken, before the server binds
    it, by any connection's ephemeral port (tests on other workers make many).
    `extra_env`: variables the stage would set (NEXUS_HTTP_ALLOW, say), for a module that
    starts a server of its own; the shared `server` sets none. `args`: more of local.run's
    options (`--no-engine`)."""

    def __init__(
        self, state: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NEXUS_"))}
        env["NEXUS_ADMIN_KEY"] = E2E_KEY
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.run",
                "--port",
                "0",
                "--ws-port",
                "0",
                "--quiet",
                "--state-dir",
                str(state),
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout
        # Ready once it says where its state is: the last line it prints before serving.
        output = []
        for line in self.stdout:
            output.append(line)
            if "NEXUS API on" in line:
                self.banner = line.strip()
            if line.startswith("State in"):
                break
        else:
            self.proc.wait(timeout=30)
            self.stdout.close()
            raise RuntimeError("the local server exited:\n" + "".join(output))
        found = re.search(r"NEXUS API on http://[^:]+:(\d+)/", self.banner)
        assert found, self.banner
        self.port = int(found.group(1))
        # Keep reading what it prints, so a full pipe never blocks the server; kept, so a
        # test can check what it logged (never a key).
        self.output = output
        self._drain = threading.Thread(target=lambda: self.output.extend(self.stdout), daemon=True)
        self._drain.start()

    def client(self, service: str) -> Any:
        """A boto3 client of the stack's embedded AWS (its address is in the banner)."""
        from typing import cast

        import boto3

        found = re.search(r"embedded AWS at (\S+?)\)", self.banner)
        assert found, self.banner
        return cast(Any, boto3.session.Session()).client(
            service,
            endpoint_url=found.group(1),
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(10)
        self.stdout.close()
        self._drain.join(timeout=5)
        self.stdout.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    local = LocalServer(tmp_path_factory.mktemp("state"))
    BANNER.append(local.banner)
    SERVERS.append(local)
    yield local.port
    local.stop()


@pytest.fixture
def server_output(server: int) -> Callable[[], str]:
    """What the shared make-run server has printed so far."""
    return lambda: "".join(SERVERS[-1].output)


@pytest.fixture
def conn(server: int) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    yield connection
    connection.close()


def until(find: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy answer of `find` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = E2E_KEY,
) -> tuple[int, Any]:
    """One call with the admin key (`key=None`: without any)."""
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    return response.status, (json.loads(raw) if raw else None)
