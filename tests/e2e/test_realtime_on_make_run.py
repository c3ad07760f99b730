"""Real-time updates on `make run`: a WebSocket client sees jobs and runs change as they happen.

The events come from the embedded table's change stream through the same handlers as deployed
(local/realtime.py); docs/realtime.md is the protocol these tests hold the server to.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import E2E_KEY, request

# The delivery promise of the issue: each event reaches the client within a second of its write.
DELIVERY_SECONDS = 1.0


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def ws_url(conn: http.client.HTTPConnection) -> str:
    status, body = request(conn, "GET", "/api/v1/realtime")
    assert status == 200, body
    assert body["url"].startswith("ws://127.0.0.1:")
    return str(body["url"])


@contextmanager
def listening(url: str, key: str = E2E_KEY, jobs: Any = "*", **extra: Any) -> Iterator[Client]:
    with connect(f"{url}?token={key}", open_timeout=10) as ws:
        client = Client(ws)
        ws.send(json.dumps({"action": "subscribe", "jobs": jobs, **extra}))
        subscribed = client.next(lambda e: e["type"] == "subscribed", 10)
        assert subscribed["jobs"] == jobs
        yield client


class Client:
    """A subscriber that notes when each frame arrived."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[tuple[float, dict[str, Any]]] = []

    def next(self, wanted: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                kinds = [e["type"] for _, e in self.seen]
                raise AssertionError(f"no such event within {timeout} s; seen: {kinds}")
            try:
                raw = self.ws.recv(timeout=left)
            except TimeoutError:
                continue
            event = json.loads(raw)
            self.seen.append((time.time(), event))
            if wanted(event):
                return event

    def arrived(self, event: dict[str, Any]) -> float:
        return next(at for at, e in self.seen if e is event)


def a_job(interval: int = 2, **fields: Any) -> dict[str, Any]:
    return {
        "name": "live",
        "job_type": "interval",
        "interval_seconds": interval,
        "task_name": "nexus.echo",
        **fields,
    }


def test_a_subscriber_sees_the_job_created_then_its_runs_start_and_succeed_within_a_second(
    conn: http.client.HTTPConnection, ws_url: str
) -> None:
    with listening(ws_url) as client:
        sent_at = datetime.now(UTC)
        status, job = request(conn, "POST", "/api/v1/jobs", a_job())
        assert status == 201, job
        created = client.next(lambda e: e["type"] == "job.created", 10)
        assert created["job_id"] == job["id"]
        assert created["data"]["id"] == job["id"] and created["data"]["name"] == "live"
        assert client.arrived(created) - sent_at.timestamp() <= DELIVERY_SECONDS
        ours = lambda kind: lambda e: e["type"] == kind and e["job_id"] == job["id"]  # noqa: E731
        for _ in range(2):  # two runs, each started then succeeded, in that order
            started = client.next(ours("run.started"), 10)
            succeeded = client.next(ours("run.succeeded"), 10)
            assert started["data"]["id"] == succeeded["data"]["id"]
            assert started["data"]["status"] == "running"
            assert succeeded["data"]["status"] == "completed"
            assert succeeded["data"]["result"] is not None or "result" in succeeded["data"]
            for event in (started, succeeded):
                assert {"type", "job_id", "time", "recorded_at"} <= set(event)
                # From the write (the table's record of it) to this client.
                late = client.arrived(event) - parse_time(event["recorded_at"]).timestamp()
                assert late <= DELIVERY_SECONDS, (event["type"], late)
        request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")


def test_pause_resume_update_and_delete_each_reach_the_subscriber_as_their_own_event(
    conn: http.client.HTTPConnection, ws_url: str
) -> None:
    status, job = request(conn, "POST", "/api/v1/jobs", a_job(3600))
    assert status == 201
    with listening(ws_url, jobs=[job["id"]]) as client:
        of_job = lambda kind: lambda e: e["type"] == kind and e["job_id"] == job["id"]  # noqa: E731
        request(conn, "POST", f"/api/v1/jobs/{job['id']}/pause")
        assert client.next(of_job("job.paused"), 10)["data"]["is_active"] is False
        request(conn, "POST", f"/api/v1/jobs/{job['id']}/resume")
        assert client.next(of_job("job.resumed"), 10)["data"]["is_active"] is True
        request(conn, "PUT", f"/api/v1/jobs/{job['id']}", {"name": "renamed"})
        assert client.next(of_job("job.updated"), 10)["data"]["name"] == "renamed"
        request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")
        client.next(of_job("job.deleted"), 10)
        # One event per change: a deletion is not also a pause.
        kinds = [e["type"] for _, e in client.seen if e.get("job_id") == job["id"]]
        assert "job.paused" not in kinds[kinds.index("job.resumed") :]


def test_a_subscriber_to_one_job_hears_nothing_of_another(
    conn: http.client.HTTPConnection, ws_url: str
) -> None:
    _, mine = request(conn, "POST", "/api/v1/jobs", a_job(3600, name="mine"))
    with listening(ws_url, jobs=[mine["id"]]) as client:
        _, other = request(conn, "POST", "/api/v1/jobs", a_job(3600, name="other"))
        request(conn, "POST", f"/api/v1/jobs/{mine['id']}/pause")
        client.next(lambda e: e["type"] == "job.paused", 10)
        assert all(e.get("job_id") in (mine["id"], None) for _, e in client.seen)
    for job in (mine, other):
        request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("", 401),
        ("nxs_not-a-key", 401),
        ("nxs_000000000000_" + "A" * 43, 401),
    ],
    ids=["no key", "malformed", "unknown"],
)
def test_a_connection_without_a_valid_key_is_refused(ws_url: str, token: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws_url}?token={token}" if token else ws_url, open_timeout=10)
    assert refused.value.response.status_code == status


def test_a_key_without_jobs_read_is_refused_and_no_key_is_ever_logged(
    conn: http.client.HTTPConnection, ws_url: str, server_output: Callable[[], str]
) -> None:
    status, key = request(
        conn, "POST", "/api/v1/keys", {"name": "runner only", "scopes": ["jobs:execute"]}
    )
    assert status == 201
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws_url}?token={key['key']}", open_timeout=10)
    assert refused.value.response.status_code == 403
    with listening(ws_url):
        pass
    output = server_output()
    assert key["key"] not in output and E2E_KEY not in output


def test_a_message_the_server_cannot_use_is_answered_with_what_is_wrong(ws_url: str) -> None:
    with connect(f"{ws_url}?token={E2E_KEY}", open_timeout=10) as ws:
        client = Client(ws)
        for message, named in (
            ("not json", "not JSON"),
            (json.dumps({"action": "listen"}), "action"),
            (json.dumps({"action": "subscribe", "jobs": [0]}), "jobs"),
            (json.dumps({"action": "subscribe", "jobs": "*", "since": "yesterday"}), "since"),
            (
                json.dumps({"action": "subscribe", "jobs": "*", "since": "2020-01-01T00:00:00Z"}),
                "24 hours",
            ),
        ):
            ws.send(message)
            error = client.next(lambda e: e["type"] in ("error", "subscribed"), 10)
            assert error["type"] == "error" and named in error["detail"]
        ws.send(json.dumps({"action": "ping"}))
        assert client.next(lambda e: True, 10)["type"] == "pong"


def test_a_client_that_reconnects_with_since_gets_what_it_missed(
    conn: http.client.HTTPConnection, ws_url: str
) -> None:
    with listening(ws_url) as client:
        _, job = request(conn, "POST", "/api/v1/jobs", a_job(1, name="missed"))
        created = client.next(lambda e: e["type"] == "job.created", 10)
        last_seen = created["time"]
    # Away while it runs: at least two runs end before the client comes back.
    history: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, history = request(conn, "GET", f"/api/v1/jobs/{job['id']}/executions")
        if sum(run["status"] == "completed" for run in history) >= 2:
            break
        time.sleep(0.5)
    request(conn, "POST", f"/api/v1/jobs/{job['id']}/pause")
    finished = {run["id"] for run in history if run["status"] == "completed"}
    assert len(finished) >= 2
    with listening(ws_url, jobs=[job["id"]], since=last_seen) as back:
        done = back.next(lambda e: e["type"] == "replay.done", 20)
        replayed = [e for _, e in back.seen if e.get("replay")]
        assert done["count"] == len(replayed) and done["truncated"] is False
        succeeded = {e["data"]["id"] for e in replayed if e["type"] == "run.succeeded"}
        assert finished <= succeeded
        assert "job.paused" in {e["type"] for e in replayed}
        times = [e["time"] for e in replayed]
        assert times == sorted(times)
    request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")


def test_revoking_a_key_closes_its_open_connections(
    conn: http.client.HTTPConnection, ws_url: str
) -> None:
    body = {"name": "watcher", "scopes": ["jobs:read"]}
    status, key = request(conn, "POST", "/api/v1/keys", body)
    assert status == 201
    with listening(ws_url, key=key["key"]) as client:
        assert request(conn, "DELETE", f"/api/v1/keys/{key['id']}")[0] == 204
        with pytest.raises(ConnectionClosed):
            client.next(lambda e: False, 10)
