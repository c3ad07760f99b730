"""make run keeps jobs and history across a restart, in its state folder."""

from __future__ import annotations

import http.client

from tests.e2e.conftest import LocalServer, request


def test_jobs_and_history_survive_a_restart(tmp_path):
    first = LocalServer(tmp_path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", first.port, timeout=10)
        body = {
            "name": "keeps",
            "job_type": "interval",
            "interval_seconds": 86400,
            "task_name": "nexus.echo",
        }
        status, job = request(conn, "POST", "/api/v1/jobs", body)
        assert status == 201
        status, started = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute")
        assert status == 200
        conn.close()
    finally:
        first.stop()
    assert (tmp_path / "nexus-local.jsonl").exists()

    second = LocalServer(tmp_path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", second.port, timeout=10)
        status, again = request(conn, "GET", f"/api/v1/jobs/{job['id']}")
        assert (status, again["name"]) == (200, "keeps")
        status, runs = request(conn, "GET", f"/api/v1/jobs/{job['id']}/executions")
        assert [r["task_id"] for r in runs] == [started["task_id"]]
        status, stats = request(conn, "GET", "/api/v1/jobs/stats/overview")
        assert stats["total_jobs"] == 1
        conn.close()
    finally:
        second.stop()
