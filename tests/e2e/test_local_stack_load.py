"""make run under a burst of writes keeps every one of them, and its counters right.

Each request goes on a connection of its own, as separate clients' do, so the server and the
embedded AWS behind it see them all at once.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.conftest import LocalServer, request

CREATES = 300
CREATORS = 100
UPDATERS = 8
EXISTING = 4
JOB = {"name": "j", "job_type": "interval", "interval_seconds": 3600, "task_name": "nexus.echo"}


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        return request(conn, method, path, body)
    finally:
        conn.close()


@pytest.fixture
def local(tmp_path) -> Any:
    server = LocalServer(tmp_path)
    yield server
    server.stop()


def test_three_hundred_creates_racing_updates_are_all_kept_and_counted(local):
    port = local.port
    existing = []
    for _ in range(EXISTING):
        status, job = call(port, "POST", "/api/v1/jobs/", JOB)
        assert status == 201, job
        existing.append(job["id"])

    creating = threading.Event()
    creating.set()
    updates: Counter[int] = Counter()

    def update(n: int) -> None:
        # Every updater writes every existing job in turn, so they collide on each.
        i = 0
        while creating.is_set():
            job_id = existing[i % EXISTING]
            status, body = call(port, "PUT", f"/api/v1/jobs/{job_id}", {"priority": (n + i) % 10})
            assert status in (200, 409), (status, body)
            updates[status] += 1
            i += 1

    def create(_: int) -> tuple[int, Any]:
        return call(port, "POST", "/api/v1/jobs/", JOB)

    with ThreadPoolExecutor(UPDATERS) as updaters:
        racing = [updaters.submit(update, n) for n in range(UPDATERS)]
        try:
            with ThreadPoolExecutor(CREATORS) as creators:
                created = list(creators.map(create, range(CREATES)))
        finally:
            creating.clear()
        for updater in racing:
            updater.result()  # its assertion, if one failed

    assert Counter(status for status, _ in created) == {201: CREATES}
    ids = [job["id"] for _, job in created]
    assert len(set(ids)) == CREATES
    assert set(ids).isdisjoint(existing)
    unreadable = [i for i in ids if call(port, "GET", f"/api/v1/jobs/{i}")[0] != 200]
    assert unreadable == []
    status, stats = call(port, "GET", "/api/v1/jobs/stats/overview")
    assert status == 200
    assert stats["total_jobs"] == EXISTING + CREATES
    assert updates[200] > 0  # the updaters did race the creates
